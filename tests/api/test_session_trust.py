"""Sessions checked moments ago are not read again on every request, yet a logout, a
disabled account, a password change or reset, and a landlord link change take effect on
the very next request."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.auth.service import AuthService, token_hash
from cunan.authz import local_principal
from cunan.storage.enums import UserRole
from tests.api.conftest import PASSWORD, Village, login


def _new_user(core: CunanApp, role: UserRole = UserRole.STAFF) -> tuple[str, int]:
    name = f"u{secrets.token_hex(4)}"
    return name, core.auth.create_user(local_principal("tests"), name, PASSWORD, role).id


def _trusted(api: FastAPI, client: TestClient) -> bool:
    """Whether the client's session is among the recently checked ones (so the next
    request would not read it from the database)."""
    auth: AuthService = api.state.auth
    return token_hash(client.cookies["cunan_session"]) in auth._trusted


def _me(client: TestClient) -> int:
    return client.get("/api/v1/auth/me").status_code


def test_a_checked_session_is_trusted_for_the_next_requests(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    name, _ = _new_user(core)
    client = login(api, name)
    assert _me(client) == 200
    assert _trusted(api, client)
    assert _me(client) == 200


Change = Callable[[FastAPI, CunanApp, TestClient, str, int], None]


def _logout(api: FastAPI, core: CunanApp, client: TestClient, name: str, user_id: int) -> None:
    token = client.cookies["cunan_session"]
    assert client.post("/api/v1/auth/logout").status_code == 204
    client.cookies.set("cunan_session", token)  # replayed, as a stolen cookie would be


def _disable(api: FastAPI, core: CunanApp, client: TestClient, name: str, user_id: int) -> None:
    admin = login(api, "admin")
    assert admin.patch(f"/api/v1/users/{user_id}", json={"disabled": True}).status_code == 200


def _change_password(
    api: FastAPI, core: CunanApp, client: TestClient, name: str, user_id: int
) -> None:
    other = login(api, name)  # the same account's other session changes the password
    body = {"old_password": PASSWORD, "new_password": "Another-horse-battery-7"}
    assert other.post("/api/v1/auth/password", json=body).status_code == 204


def _reset_password(
    api: FastAPI, core: CunanApp, client: TestClient, name: str, user_id: int
) -> None:
    admin = login(api, "admin")
    body = {"new_password": "Another-horse-battery-8"}
    assert admin.post(f"/api/v1/users/{user_id}/password", json=body).status_code == 204


@pytest.mark.parametrize(
    "change", [_logout, _disable, _change_password, _reset_password], ids=lambda c: c.__name__
)
def test_an_ended_session_is_refused_on_the_next_request(
    api: FastAPI, core: CunanApp, village: Village, change: Change
) -> None:
    name, user_id = _new_user(core)
    client = login(api, name)
    assert _me(client) == 200
    assert _trusted(api, client)
    change(api, core, client, name, user_id)
    assert _me(client) == 401


def test_a_landlord_link_change_is_seen_on_the_next_request(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    """A landlord account linked to a landlord record after its login sees that landlord's
    houses on its next request (its scope is part of the trusted principal)."""
    name, user_id = _new_user(core, UserRole.LANDLORD)
    client = login(api, name)
    assert client.get("/api/v1/houses").json()["total"] == 0
    assert _trusted(api, client)
    service = core.registry.service
    landlord = service.add_landlord(service.default_village_id(), "新房东", user_id=user_id)
    service.add_house(service.default_village_id(), "新路1号", landlord_id=landlord)
    assert client.get("/api/v1/houses").json()["total"] == 1
