"""Password hashing is bounded: past the slots, a login waits briefly, then gets 503 with
Retry-After (nothing checked, no failure counted), so a login storm cannot starve pages."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.auth.service import AuthService, HashingBusyError, LoginResult
from cunan.config import WebSettings
from tests.api.conftest import ORIGIN, PASSWORD, Village


class GatedHasher(PasswordHasher):
    """argon2 as configured, but each verification first waits at a gate the test opens,
    so the test decides how long a hash holds its slot (without timing anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.inside = threading.Semaphore(0)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.inside.release()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().verify(hash, password)


def _auth(core: CunanApp, hasher: GatedHasher, **web: Any) -> AuthService:
    return AuthService(core.registry.database, core.audit, WebSettings(**web), hasher=hasher)


@contextmanager
def _held(auth: AuthService, hasher: GatedHasher, logins: int) -> Iterator[list[LoginResult]]:
    """``logins`` logins in other threads, each holding a hashing slot until the block ends."""
    hasher.gate.clear()
    done: list[LoginResult] = []
    threads = [
        threading.Thread(target=lambda: done.append(auth.login("staff", PASSWORD, client="t")))
        for _ in range(logins)
    ]
    for thread in threads:
        thread.start()
    for _ in range(logins):
        assert hasher.inside.acquire(timeout=60), "a login never reached its hash"
    try:
        yield done
    finally:
        hasher.gate.set()
        for thread in threads:
            thread.join(60)


def test_logins_past_the_slots_are_turned_away_without_counting_as_failures(
    core: CunanApp, village: Village
) -> None:
    hasher = GatedHasher()
    auth = _auth(
        core, hasher, login_hash_slots=2, login_hash_wait_s=0.0, login_max_failures_per_account=3
    )
    assert auth.hash_slots == 2
    with _held(auth, hasher, 2) as done:
        # Both slots busy: more logins (more than the failure limit) are refused as busy,
        # with a retry time, before any password is looked at.
        for _ in range(5):
            with pytest.raises(HashingBusyError) as busy:
                auth.login("staff", PASSWORD, client="t")
            assert busy.value.retry_after_s >= 1
        with pytest.raises(HashingBusyError):
            auth.login("staff", "wrong-password", client="t")
    # The two that held the slots logged in; the refused ones locked nothing.
    assert [r.principal.username for r in done] == ["staff", "staff"]
    assert auth.throttle.locked("staff", "t") is None
    assert auth.login("staff", PASSWORD, client="t").principal.username == "staff"


def test_a_slot_freed_while_waiting_is_taken(core: CunanApp, village: Village) -> None:
    hasher = GatedHasher()
    auth = _auth(core, hasher, login_hash_slots=1, login_hash_wait_s=60.0)
    with _held(auth, hasher, 1):
        waiting: list[object] = []
        thread = threading.Thread(
            target=lambda: waiting.append(auth.login("staff", PASSWORD, client="t"))
        )
        thread.start()
        # The waiting login has not hashed: the slot is still the first one's.
        assert not hasher.inside.acquire(timeout=0.2)
    thread.join(60)
    assert len(waiting) == 1 and isinstance(waiting[0], LoginResult)


def test_default_bound_is_one_hash_per_core(core: CunanApp, village: Village) -> None:
    assert _auth(core, GatedHasher()).hash_slots == (os.cpu_count() or 1)


def test_busy_login_answers_503_with_retry_after(api: FastAPI, core: CunanApp) -> None:
    hasher = GatedHasher()
    busy_auth = _auth(core, hasher, login_hash_slots=1, login_hash_wait_s=0.0)
    saved = api.state.auth
    api.state.auth = busy_auth
    try:
        client = TestClient(api, headers={"origin": ORIGIN})
        with _held(busy_auth, hasher, 1):
            body = {"username": "staff", "password": PASSWORD}
            answer = client.post("/api/v1/auth/login", json=body)
            assert answer.status_code == 503
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert int(answer.headers["retry-after"]) >= 1
            assert "cunan_session" not in client.cookies
            page = client.post(
                "/login",
                data={"username": "staff", "password": PASSWORD, "next": "/"},
                follow_redirects=False,
            )
            assert page.status_code == 503
            assert int(page.headers["retry-after"]) >= 1
            assert "cunan_session" not in page.cookies
        # Free again: the same login goes through.
        assert client.post("/api/v1/auth/login", json=body).status_code == 200
    finally:
        api.state.auth = saved
