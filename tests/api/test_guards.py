"""Guards every request passes: CSRF origin checks, security headers, upload limits, bad
uploads that store nothing, problem+json errors."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.api.app import create_api
from cunan.app import CunanApp
from tests.api.conftest import PASSWORD, Village


def _logged_in(api: FastAPI, **headers: str) -> TestClient:
    """A client logged in from this site, which then sends ``headers`` (as a page of another
    site riding on the browser's cookie would)."""
    client = TestClient(api, headers={"origin": "http://testserver"})
    response = client.post("/api/v1/auth/login", json={"username": "staff", "password": PASSWORD})
    assert response.status_code == 200
    del client.headers["origin"]
    client.headers.update(headers)
    return client


def test_cross_site_state_changes_are_refused(api: FastAPI) -> None:
    evil = _logged_in(api, origin="http://evil.example")
    refused = evil.post("/api/v1/landlords", json={"name": "x"})
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:cunan:error:csrf"
    # Reads are not state changes.
    assert evil.get("/api/v1/people").status_code == 200
    cross_site = _logged_in(api, **{"sec-fetch-site": "cross-site"})
    assert cross_site.post("/api/v1/landlords", json={"name": "x"}).status_code == 403
    # No Origin and no Sec-Fetch-Site (a script with the cookie): the CSRF token is needed.
    bare = _logged_in(api)
    assert bare.post("/api/v1/landlords", json={"name": "x"}).status_code == 403
    token = bare.cookies["cunan_csrf"]
    ok = bare.post("/api/v1/landlords", json={"name": "csrf-ok"}, headers={"x-csrf-token": token})
    assert ok.status_code == 201
    # Another kind of Authorization header does not stand in for the CSRF check.
    basic = evil.post(
        "/api/v1/landlords", json={"name": "x"}, headers={"authorization": "Basic eDp4"}
    )
    assert basic.status_code == 403
    same = _logged_in(api, origin="http://testserver")
    assert same.post("/api/v1/landlords", json={"name": "same-origin"}).status_code == 201


def test_security_headers_on_every_answer(clients: dict[str, TestClient]) -> None:
    for response in (
        clients["anonymous"].get("/api/v1/health"),
        clients["anonymous"].get("/api/v1/people"),
        clients["staff"].get("/api/v1/people"),
    ):
        csp = response.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp
            and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        )
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


def test_uploads_over_the_limit_are_refused_before_reading(
    core: CunanApp, village: Village
) -> None:
    small = core.settings.model_copy(
        update={"web": core.settings.web.model_copy(update={"max_upload_mb": 1})}
    )
    original = core.settings
    core.settings = small
    try:
        api = create_api(core)
        client = _logged_in(api, origin="http://testserver")
        big = client.post(
            "/api/v1/identify", files={"image": ("big.jpg", b"\xff" * (2 * 2**20), "image/jpeg")}
        )
        assert big.status_code == 413
    finally:
        core.settings = original


def test_a_bad_photo_is_a_clear_error_and_stores_nothing(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    before = staff.get("/api/v1/people").json()["total"]
    for name, data in (
        ("photo.jpg", b"this is not an image"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
    ):
        response = staff.post(
            "/api/v1/people",
            data={"name": "坏照片", "consent_by": "王"},
            files={"photos": (name, data, "image/jpeg")},
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "photo 1" in response.json()["detail"]
    assert staff.get("/api/v1/people").json()["total"] == before
    no_consent = staff.post(
        "/api/v1/people", data={"name": "无同意"}, files={"photos": ("a", b"x")}
    )
    assert no_consent.status_code == 422


def test_errors_are_problem_json(clients: dict[str, TestClient]) -> None:
    staff = clients["staff"]
    missing = staff.get("/api/v1/people/424242")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:cunan:error:not_found"
    invalid = staff.get("/api/v1/people", params={"limit": "lots"})
    assert invalid.status_code == 422
    assert "limit" in invalid.json()["detail"]
    negative = staff.get("/api/v1/people", params={"offset": -1})
    assert negative.status_code == 422
