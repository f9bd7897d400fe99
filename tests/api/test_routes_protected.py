"""Logged in by default: every route answers 401 without a session (a page: a redirect to the
login page) unless it is on the short, explicit public allowlist."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from cunan.api.app import PUBLIC_PATHS, TOKEN_PATHS, all_routes


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_needs_a_session_unless_allowlisted(
    api: FastAPI, clients: dict[str, TestClient]
) -> None:
    anonymous = clients["anonymous"]
    for route in api.routes:
        if isinstance(route, Mount):
            assert route.path in PUBLIC_PATHS, f"mount {route.path} is not on the allowlist"
    walked = sorted(set(all_routes(api)))
    pages: set[str] = set()
    for method, path in walked:
        if path in PUBLIC_PATHS or method == "HEAD":
            continue
        if path in TOKEN_PATHS:
            # A machine's own credential instead of a session: refused without it, and a
            # session does not stand in for it.
            for client in (anonymous, clients["admin"]):
                response = client.request(method, _concrete(path), content=b"{}")
                assert response.status_code == 401, (method, path, response.status_code)
            continue
        response = anonymous.request(method, _concrete(path), follow_redirects=False)
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["content-type"] == "application/problem+json"
        else:
            # A page sends the browser to log in first, then back where it was going.
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next=/"), (method, path)
            pages.add(path)
    # The walk saw the whole application: every path of the OpenAPI schema, and the docs.
    schema = clients["admin"].get("/api/v1/openapi.json").json()
    documented = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    assert documented <= set(walked)
    assert len(walked) > 25
    assert ("GET", "/api/v1/openapi.json") in walked
    # The pages were walked too: the dashboard, the case pages and their forms, the account.
    assert {"/", "/cases", "/cases/{case_id}", "/cases/{case_id}/enrol", "/account"} <= pages


def test_the_public_allowlist_is_short_and_answers_without_a_session(
    clients: dict[str, TestClient],
) -> None:
    assert len(PUBLIC_PATHS) <= 7
    # The login page is public; the pages behind it are not.
    assert clients["anonymous"].get("/login").status_code == 200
    response = clients["anonymous"].get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    # The docs' own files are public, the docs page and the schema are not.
    assert clients["anonymous"].get("/api/docs-assets/swagger-ui.css").status_code == 200
    assert clients["anonymous"].get("/api/docs").status_code == 401


def test_api_docs_are_offline_and_for_admins_only(clients: dict[str, TestClient]) -> None:
    page = clients["admin"].get("/api/docs")
    assert page.status_code == 200
    html = page.text
    # Every script and stylesheet comes from this server; no inline script.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/"), url
    assert "<script>" not in html
    schema = clients["admin"].get("/api/v1/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/people" in schema.json()["paths"]
    assert {"/api/v1/gas/businesses", "/api/v1/gas/devices", "/api/v1/gas/models"} <= set(
        schema.json()["paths"]
    )
    for role in ("staff", "auditor", "landlord_a", "business", "maintainer"):
        assert clients[role].get("/api/docs").status_code == 403
        assert clients[role].get("/api/v1/openapi.json").status_code == 403
