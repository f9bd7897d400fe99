"""Defects a security review found: wildcard ID searches, token ids taken for account ids,
cross-site logins, passwords in camera paths, other people's import reports."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import PASSWORD, Village


def test_id_tail_is_never_a_pattern(clients: dict[str, TestClient], village: Village) -> None:
    staff = clients["staff"]
    for probe in ("1_", "%", "11010119900307123X", "abc"):
        refused = staff.get("/api/v1/people", params={"id_tail": probe})
        assert refused.status_code == 422, probe
    assert staff.get("/api/v1/people", params={"id_tail": "123X"}).status_code == 200


def test_a_token_is_not_the_account_with_the_same_id(
    api: FastAPI, clients: dict[str, TestClient], village: Village
) -> None:
    created = clients["admin"].post("/api/v1/tokens", json={"name": "probe", "role": "auditor"})
    token = created.json()
    bearer = TestClient(api, headers={"authorization": f"Bearer {token['secret']}"})
    # The token's own id names some account: reading it still needs the admin role.
    assert bearer.get(f"/api/v1/users/{token['token']['id']}").status_code == 403
    me = bearer.get("/api/v1/auth/me").json()
    assert me["user_id"] is None and me["via"] == "token"


def test_a_cross_site_login_is_refused(api: FastAPI, village: Village) -> None:
    client = TestClient(api, headers={"origin": "http://evil.example"})
    refused = client.post("/api/v1/auth/login", json={"username": "staff", "password": PASSWORD})
    assert refused.status_code == 403
    assert "cunan_session" not in client.cookies


def test_camera_listings_show_no_path_or_query(clients: dict[str, TestClient]) -> None:
    staff = clients["staff"]
    url = "rtsp://10.0.0.7:554/user=admin_password=S3CRET_channel=1_stream=0.sdp?real_stream"
    added = staff.post(
        "/api/v1/cameras",
        json={"name": "xm-cam", "url": url, "public_notice_posted": True, "enabled": False},
    )
    assert added.status_code == 201, added.text
    assert added.json()["url"] == "rtsp://10.0.0.7:554/…"
    listed = staff.get("/api/v1/cameras").text
    assert "S3CRET" not in listed
    # Only those who manage cameras make the server connect to one.
    snapshot = f"/api/v1/cameras/{added.json()['id']}/snapshot"
    assert clients["auditor"].get(snapshot).status_code == 403


def test_an_import_report_is_its_starters(
    clients: dict[str, TestClient], api: FastAPI, village: Village
) -> None:
    header = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期\n"
    started = clients["staff"].post(
        "/api/v1/imports", files={"roster": ("r.csv", header.encode(), "text/csv")}
    )
    assert started.status_code == 202, started.text
    job = started.json()["job_id"]
    admin_made = clients["admin"].post(
        "/api/v1/users", json={"username": "staff2", "password": PASSWORD, "role": "staff"}
    )
    assert admin_made.status_code == 201
    other = TestClient(api, headers={"origin": "http://testserver"})
    other.post("/api/v1/auth/login", json={"username": "staff2", "password": PASSWORD})
    assert other.get(f"/api/v1/imports/{job}").status_code == 404
    assert clients["staff"].get(f"/api/v1/imports/{job}").status_code == 200
    assert clients["admin"].get(f"/api/v1/imports/{job}").status_code == 200
