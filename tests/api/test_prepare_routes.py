"""Routes and templates prepared at start-up (``cunan serve``) answer as unprepared ones do."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.api.app import prepare_routes
from cunan.web.render import prepare_templates
from tests.api.conftest import Village, login


def test_prepared_routes_answer_as_before(api: FastAPI, village: Village) -> None:
    prepare_routes(api)
    prepare_routes(api)  # twice: nothing is added or changed
    prepare_templates()
    anonymous = TestClient(api)
    assert anonymous.get("/api/v1/health").status_code == 200
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/api/v1/no-such-route").status_code == 404
    assert anonymous.get("/cases", follow_redirects=False).status_code == 303
    staff = login(api, "staff")
    assert staff.get("/cases").status_code == 200
    assert staff.get("/api/v1/cases").status_code == 200
    assert staff.get("/cameras").status_code == 200
