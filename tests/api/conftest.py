"""An installation with the API on each database engine, a small village, and one logged-in
client per role (admin, staff, auditor, two landlords, a gas business and a maintainer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.api.app import create_api
from cunan.app import CunanApp
from cunan.authz import local_principal
from cunan.config import Settings
from cunan.registry.datadir import initialise
from cunan.registry.records import NewPerson
from cunan.storage.enums import PersonCategory, UserRole
from tests.storage.dbfixtures import db_url

__all__ = ["db_url"]

PASSWORD = "Correct-horse-battery-9"
ORIGIN = "http://testserver"


@dataclass
class Village:
    """Ids of the village the API tests look at: each landlord's house, room and tenant."""

    house: dict[str, int]
    room: dict[str, int]
    tenant: dict[str, int]
    tenancy: dict[str, int]
    landlord: dict[str, int]
    users: dict[str, int]


def _settings(url: str) -> Settings:
    return Settings(database_url=url)


@pytest.fixture(scope="module")
def core(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CunanApp]:
    data = tmp_path_factory.mktemp("data") / "d"
    settings = _settings(db_url)
    initialise(
        data, settings, admin_username="admin", admin_password=PASSWORD, village_name="桃源村"
    ).close()
    app = CunanApp.open(settings, data)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def village(core: CunanApp) -> Village:
    service = core.registry.service
    village_id = service.default_village_id()
    admin = local_principal("tests")
    auth = create_api(core).state.auth
    users = {"admin": 1}
    for name, role in (
        ("staff", UserRole.STAFF),
        ("auditor", UserRole.AUDITOR),
        ("landlord_a", UserRole.LANDLORD),
        ("landlord_b", UserRole.LANDLORD),
        # Gas accounts: a business owner and a maintainer (tests/gas link them to businesses).
        ("business", UserRole.BUSINESS),
        ("maintainer", UserRole.MAINTAINER),
    ):
        users[name] = auth.create_user(admin, name, PASSWORD, role).id
    ids: dict[str, dict[str, int]] = {
        k: {} for k in ("house", "room", "tenant", "tenancy", "landlord")
    }
    start = date.today() - timedelta(days=30)
    for key in ("a", "b"):
        landlord = service.add_landlord(village_id, f"房东{key}", user_id=users[f"landlord_{key}"])
        house = service.add_house(village_id, f"幸福路{key}号", landlord_id=landlord)
        room = service.add_room(house, "101", capacity=2)
        person = service.add_person(
            NewPerson(
                name=f"租客{key}",
                village_id=village_id,
                category=PersonCategory.TENANT,
                non_face_note="checked by ID card",
            )
        )
        tenancy = service.add_tenancy(person, room, move_in=start, reported_by="tests")
        ids["landlord"][key] = landlord
        ids["house"][key] = house
        ids["room"][key] = room
        ids["tenant"][key] = person
        ids["tenancy"][key] = tenancy
    return Village(users=users, **ids)


@pytest.fixture(scope="module")
def api(core: CunanApp, village: Village) -> FastAPI:
    return create_api(core)


def login(api: FastAPI, username: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(api, headers={"origin": ORIGIN})
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return client


@pytest.fixture(scope="module")
def clients(api: FastAPI) -> dict[str, TestClient]:
    """One logged-in client per role; ``anonymous`` has no session."""
    out = {
        name: login(api, name)
        for name in (
            "admin",
            "staff",
            "auditor",
            "landlord_a",
            "landlord_b",
            "business",
            "maintainer",
        )
    }
    out["anonymous"] = TestClient(api, headers={"origin": ORIGIN})
    return out
