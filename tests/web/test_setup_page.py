"""The first-run set-up page: the printed link creates the first administrator, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cunan.api.app import create_api
from cunan.app import CunanApp
from cunan.config import Settings
from cunan.registry.datadir import initialise

TOKEN = "one-time-token-for-the-test"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    initialise(
        data, Settings(), admin_username=None, admin_password=None, village_name="桃源村"
    ).close()
    core = CunanApp.open(Settings(), data)
    try:
        yield TestClient(create_api(core, setup_token=TOKEN))
    finally:
        core.close()


def test_the_link_creates_the_first_admin_once(client: TestClient) -> None:
    assert client.get("/setup", params={"token": "wrong"}).status_code == 403
    form = client.get("/setup", params={"token": TOKEN})
    assert form.status_code == 200
    english = TestClient(client.app).get("/setup", params={"token": TOKEN, "lang": "en"})
    assert "First-run set-up" in english.text
    assert 'name="password"' in form.text and "<script" not in form.text
    differ = client.post(
        "/setup",
        data={"token": TOKEN, "username": "boss", "password": "Str0ng-pass", "again": "other-pass"},
    )
    assert differ.status_code == 422 and "不一致" in differ.text
    short = client.post(
        "/setup", data={"token": TOKEN, "username": "boss", "password": "short", "again": "short"}
    )
    assert short.status_code == 422
    done = client.post(
        "/setup",
        data={
            "token": TOKEN,
            "username": "boss",
            "password": "Str0ng-pass",
            "again": "Str0ng-pass",
        },
    )
    assert done.status_code == 200
    # Through the catalogs like every page: Chinese by default, then on to the login page.
    assert "管理员已创建" in done.text and 'href="/login"' in done.text
    login = client.post("/api/v1/auth/login", json={"username": "boss", "password": "Str0ng-pass"})
    assert login.status_code == 200 and login.json()["user"]["role"] == "admin"
    # The link is spent.
    assert client.get("/setup", params={"token": TOKEN}).status_code == 403
    again = client.post(
        "/api/v1/auth/setup", json={"token": TOKEN, "username": "x", "password": "Str0ng-pass"}
    )
    assert again.status_code == 403
    css = client.get("/static/cunan.css")
    assert css.status_code == 200 and "http" not in css.text
