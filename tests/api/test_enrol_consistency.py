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


def test_the_same_face_under_another_name_is_refused_unless_allowed(
    clients: dict[str, TestClient], village: Village
) -> None:
    examples = require_data("face_recognition_examples/examples")
    staff = clients["staff"]
    # Biden: nobody else in this module's registry is enrolled with his face.
    photo = [("photos", ("a.jpg", (examples / "biden.jpg").read_bytes(), "image/jpeg"))]
    first = staff.post("/api/v1/people", data={"name": "甲", "consent_by": "王"}, files=photo)
    assert first.status_code == 201, first.text
    again = staff.post("/api/v1/people", data={"name": "乙", "consent_by": "王"}, files=photo)
    assert again.status_code == 422
    detail = again.json()["detail"]
    assert f"same face as person {first.json()['id']}" in detail and "allow_same_face" in detail
    twins = staff.post(
        "/api/v1/people",
        data={"name": "乙", "consent_by": "王", "allow_same_face": "true"},
        files=photo,
    )
    assert twins.status_code == 201, twins.text


def test_a_passport_number_is_accepted_when_stated(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    base = {"name": "John", "non_face_note": "护照核验"}
    bad = staff.post("/api/v1/people", data={**base, "id_number": "E12345678"})
    assert bad.status_code == 422 and "18 characters" in bad.json()["detail"]
    ok = staff.post(
        "/api/v1/people", data={**base, "id_number": "E12345678", "id_type": "passport"}
    )
    assert ok.status_code == 201, ok.text
