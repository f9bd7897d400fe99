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


def test_more_photos_must_show_the_enrolled_person(
    clients: dict[str, TestClient], village: Village
) -> None:
    examples = require_data("face_recognition_examples/examples")
    staff = clients["staff"]

    def upload(name: str) -> tuple[str, tuple[str, bytes, str]]:
        return ("photos", (name, (examples / name).read_bytes(), "image/jpeg"))

    created = staff.post(
        "/api/v1/people", data={"name": "奥巴马", "consent_by": "王"}, files=[upload("obama.jpg")]
    )
    assert created.status_code == 201, created.text
    person = created.json()["id"]
    other = staff.post(f"/api/v1/people/{person}/photos", files=[upload("biden.jpg")])
    assert other.status_code == 422 and "different people" in other.json()["detail"]
    same = staff.post(f"/api/v1/people/{person}/photos", files=[upload("obama2.jpg")])
    assert same.status_code == 201, same.text
