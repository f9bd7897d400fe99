"""Logins, sessions, throttling, passwords, disabled accounts and API tokens."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.auth.service import AuthService
from cunan.auth.throttle import LoginThrottle
from cunan.authz import local_principal
from cunan.config import WebSettings
from cunan.errors import Unauthenticated
from cunan.storage.auth_repository import AuthRepository
from cunan.storage.enums import UserRole
from tests.api.conftest import ORIGIN, PASSWORD, Village, login


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _auth(core: CunanApp, clock: Callable[[], datetime], **web: int) -> AuthService:
    return AuthService(core.registry.database, core.audit, WebSettings(**web), clock=clock)


def test_wrong_password_and_unknown_user_look_the_same(api: FastAPI) -> None:
    client = TestClient(api, headers={"origin": ORIGIN})
    wrong = client.post("/api/v1/auth/login", json={"username": "staff", "password": "nope-nope"})
    unknown = client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert "cunan_session" not in client.cookies


def test_session_cookie_is_httponly_and_samesite(api: FastAPI) -> None:
    client = TestClient(api, headers={"origin": ORIGIN})
    response = client.post("/api/v1/auth/login", json={"username": "staff", "password": PASSWORD})
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith("cunan_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    # Plain HTTP on the LAN: not Secure (the browser would drop it); over TLS it is.
    assert "Secure" not in cookie


def test_sessions_end_when_idle_and_at_their_absolute_expiry(
    core: CunanApp, village: Village
) -> None:
    clock = Clock()
    auth = _auth(core, clock, session_idle_minutes=30, session_absolute_hours=2)
    token = auth.login("staff", PASSWORD, client="t1").token
    clock.now += timedelta(minutes=20)
    assert auth.principal_for_session(token).username == "staff"  # and refreshes last seen
    clock.now += timedelta(minutes=29)
    assert auth.principal_for_session(token).username == "staff"
    clock.now += timedelta(minutes=31)
    try:
        auth.principal_for_session(token)
        raise AssertionError("an idle session must end")
    except Unauthenticated:
        pass
    active = auth.login("staff", PASSWORD, client="t1").token
    for _ in range(8):  # active every 20 minutes for 160 minutes
        clock.now += timedelta(minutes=20)
        try:
            auth.principal_for_session(active)
        except Unauthenticated:
            break
    else:
        raise AssertionError("a session must end at its absolute expiry")


def _stored_last_seen(core: CunanApp, auth: AuthService, token: str) -> datetime:
    from cunan.auth.service import token_hash

    with core.registry.database.read() as session:
        row = AuthRepository(session).session_by_hash(token_hash(token))
        assert row is not None
        return row.last_seen_at


def test_a_session_in_use_never_waits_for_the_writer_to_record_it(
    core: CunanApp, village: Village
) -> None:
    clock = Clock()
    auth = _auth(core, clock, session_idle_minutes=30, session_absolute_hours=8)
    token = auth.login("staff", PASSWORD, client="t1").token
    logged_in = _stored_last_seen(core, auth, token)
    holding, checked = threading.Event(), threading.Event()
    waited: list[bool] = []

    def writer() -> None:
        # A long write (case grouping, an import) holds the writer until the check is done.
        with core.registry.database.transaction():
            holding.set()
            waited.append(not checked.wait(30))

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(30)
    try:
        clock.now += timedelta(minutes=20)
        assert auth.principal_for_session(token).username == "staff"
        clock.now += timedelta(minutes=20)
        # 40 minutes after the stored "last seen", yet seen 20 minutes ago: still live.
        auth._trusted.clear()
        assert auth.principal_for_session(token).username == "staff"
    finally:
        checked.set()
        thread.join()
    assert waited == [False], "the session check waited for the writer"
    if core.registry.database.is_sqlite:
        # Not written while the writer was busy ...
        assert _stored_last_seen(core, auth, token) == logged_in
    # ... and written by the next check that finds the writer free.
    clock.now += timedelta(minutes=1)
    auth._trusted.clear()
    assert auth.principal_for_session(token).username == "staff"
    assert _stored_last_seen(core, auth, token) >= logged_in + timedelta(minutes=40)


def test_logout_revokes_the_session(api: FastAPI) -> None:
    client = login(api, "auditor")
    assert client.get("/api/v1/auth/me").status_code == 200
    token = client.cookies["cunan_session"]
    assert client.post("/api/v1/auth/logout").status_code == 204
    replay = TestClient(api, cookies={"cunan_session": token})
    assert replay.get("/api/v1/auth/me").status_code == 401


def test_login_throttle_locks_an_account_and_a_client_and_audits_it(
    core: CunanApp, village: Village
) -> None:
    clock = Clock()
    ticks = [0.0]
    throttle = LoginThrottle(
        max_per_account=3, max_per_client=5, window_s=900, clock=lambda: ticks[0]
    )
    auth = AuthService(
        core.registry.database, core.audit, WebSettings(), clock=clock, throttle=throttle
    )
    for _ in range(3):
        with contextlib.suppress(Unauthenticated):
            auth.login("landlord_b", "wrong-password", client="10.9.9.9")
    # Locked now, even with the right password.
    try:
        auth.login("landlord_b", PASSWORD, client="10.9.9.8")
        raise AssertionError("the account must be locked")
    except Unauthenticated:
        raise AssertionError("a locked account answers 'locked', not 'wrong password'") from None
    except Exception as exc:  # noqa: BLE001 - checked below
        assert type(exc).__name__ == "LoginLockedError"
    assert any(e.action == "login.locked" for e in core.audit.recent(limit=20))
    ticks[0] += 901
    assert auth.login("landlord_b", PASSWORD, client="10.9.9.8").principal.username == "landlord_b"


def test_locked_login_answers_429_with_retry_after(api: FastAPI, core: CunanApp) -> None:
    auth: AuthService = api.state.auth
    saved = auth.throttle
    auth.throttle = LoginThrottle(max_per_account=1, max_per_client=100, window_s=600)
    try:
        client = TestClient(api, headers={"origin": ORIGIN})
        body = {"username": "auditor", "password": "wrong-password"}
        assert client.post("/api/v1/auth/login", json=body).status_code == 401
        locked = client.post("/api/v1/auth/login", json=body)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
    finally:
        auth.throttle = saved


def test_password_change_ends_every_session(api: FastAPI, core: CunanApp) -> None:
    admin = local_principal("tests")
    auth: AuthService = api.state.auth
    auth.create_user(admin, "changer", PASSWORD, UserRole.STAFF)
    first, second = login(api, "changer"), login(api, "changer")
    wrong = first.post(
        "/api/v1/auth/password", json={"old_password": "bad-old-pw", "new_password": "N3w-pass-9"}
    )
    assert wrong.status_code == 422
    changed = first.post(
        "/api/v1/auth/password", json={"old_password": PASSWORD, "new_password": "N3w-pass-9"}
    )
    assert changed.status_code == 204
    # Every session of the account ends, the one that changed the password too.
    assert second.get("/api/v1/auth/me").status_code == 401
    assert first.get("/api/v1/auth/me").status_code == 401
    assert login(api, "changer", "N3w-pass-9").get("/api/v1/auth/me").status_code == 200


def test_disabling_an_account_ends_its_sessions_and_the_last_admin_stays(
    api: FastAPI, clients: dict[str, TestClient]
) -> None:
    admin = clients["admin"]
    made = admin.post(
        "/api/v1/users", json={"username": "temp", "password": PASSWORD, "role": "staff"}
    ).json()
    temp = login(api, "temp")
    assert admin.patch(f"/api/v1/users/{made['id']}", json={"disabled": True}).status_code == 200
    assert temp.get("/api/v1/auth/me").status_code == 401
    assert (
        TestClient(api)
        .post("/api/v1/auth/login", json={"username": "temp", "password": PASSWORD})
        .status_code
        == 401
    )
    me = admin.get("/api/v1/auth/me").json()
    last = admin.patch(f"/api/v1/users/{me['user_id']}", json={"disabled": True})
    assert last.status_code == 409
    reset = admin.post(f"/api/v1/users/{made['id']}/password", json={"new_password": "Res3t-pw-9"})
    assert reset.status_code == 204


def test_api_tokens_are_shown_once_hashed_at_rest_and_revocable(
    api: FastAPI, clients: dict[str, TestClient], core: CunanApp
) -> None:
    admin = clients["admin"]
    created = admin.post("/api/v1/tokens", json={"name": "district", "role": "auditor"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    token_id = created.json()["token"]["id"]
    with core.registry.database.read() as session:
        from sqlalchemy import text

        stored = [r[0] for r in session.execute(text("SELECT token_hash FROM api_tokens"))]
    assert secret not in stored
    bearer = TestClient(api, headers={"authorization": f"Bearer {secret}"})
    assert bearer.get("/api/v1/audit").status_code == 200
    # Token requests carry no cookie: no CSRF check, but the role still applies.
    assert bearer.post("/api/v1/houses", json={"address": "x"}).status_code == 403
    assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    assert bearer.get("/api/v1/audit").status_code == 401
    # Roles scoped to their own account (landlord, gas business, maintainer) get no tokens:
    # a token has no account, so it would see nothing.
    for role in ("landlord", "business", "maintainer"):
        refused = admin.post("/api/v1/tokens", json={"name": "x", "role": role})
        assert refused.status_code == 422, role
        assert "log in themselves" in refused.text


def test_the_throttle_stays_bounded_and_audits_a_lock_once_per_window() -> None:
    from cunan.auth import throttle as module

    ticks = [0.0]
    throttle = LoginThrottle(
        max_per_account=2, max_per_client=1000, window_s=60, clock=lambda: ticks[0]
    )
    # Asking about made-up usernames stores nothing.
    for n in range(500):
        assert throttle.locked(f"ghost{n}", "10.0.0.1") is None
    assert len(throttle._failures) == 0
    for n in range(module.MAX_KEYS + 50):
        throttle.failed(f"user{n}", "10.0.0.2")
    assert len(throttle._failures) <= module.MAX_KEYS
    throttle.failed("victim", "10.0.0.3")
    throttle.failed("victim", "10.0.0.3")
    assert throttle.locked("victim", "10.0.0.3") == "account"
    assert throttle.first_refusal("victim", "10.0.0.3") is True
    assert throttle.first_refusal("victim", "10.0.0.3") is False
    ticks[0] += 61
    assert throttle.locked("victim", "10.0.0.3") is None
    assert throttle.first_refusal("victim", "10.0.0.3") is True
