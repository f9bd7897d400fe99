"""Enrolment over the API applies the consistency rule: one person's photos show one face."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import Village
from tests.conftest import require_data


def test_photos_of_two_people_enrol_nobody(
    clients: dict[str, TestClient], village: Village
) -> None:
    examples = require_data("face_recognition_examples/examples")
    staff = clients["staff"]
    before = staff.get("/api/v1/people").json()["total"]
    response = staff.post(
        "/api/v1/people",
        data={"name": "两个人", "consent_by": "王"},
        files=[
            ("photos", ("a.jpg", (examples / "obama.jpg").read_bytes(), "image/jpeg")),
            ("photos", ("b.jpg", (examples / "biden.jpg").read_bytes(), "image/jpeg")),
        ],
    )
    assert response.status_code == 422, response.text
    assert "(the photos show different people): photo 1 and photo 2" in response.json()["detail"]
    assert staff.get("/api/v1/people").json()["total"] == before
