"""Registry changes a village needs through the API: places, edits, tenancies, consent."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cunan.app import CunanApp
from tests.api.conftest import Village


def test_staff_build_a_house_with_rooms_and_link_its_landlord(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    landlord = staff.post("/api/v1/landlords", json={"name": "新房东", "phone": "13800000000"})
    assert landlord.status_code == 201
    house = staff.post("/api/v1/houses", json={"address": "新村路9号"})
    assert house.status_code == 201
    house_id = house.json()["id"]
    rooms = [
        staff.post(f"/api/v1/houses/{house_id}/rooms", json={"label": label, "capacity": 2})
        for label in ("201", "202")
    ]
    assert [r.status_code for r in rooms] == [201, 201]
    linked = staff.patch(f"/api/v1/houses/{house_id}", json={"landlord_id": landlord.json()["id"]})
    assert linked.status_code == 204
    detail = staff.get(f"/api/v1/houses/{house_id}").json()
    assert detail["landlord_id"] == landlord.json()["id"]
    # Vacant rooms are listed with their capacity and nobody in them.
    assert [(r["label"], r["capacity"], r["occupants"]) for r in detail["rooms"]] == [
        ("201", 2, 0),
        ("202", 2, 0),
    ]
    # A duplicate room label is a conflict, not a server error.
    again = staff.post(f"/api/v1/houses/{house_id}/rooms", json={"label": "201"})
    assert again.status_code == 409
    # Landlords and auditors build nothing.
    for role in ("landlord_a", "auditor"):
        refused = clients[role].post("/api/v1/houses", json={"address": f"x{role}"})
        assert refused.status_code == 403


def test_room_capacity_cannot_drop_below_the_people_living_there(
    clients: dict[str, TestClient], village: Village, core: CunanApp
) -> None:
    staff = clients["staff"]
    room = village.room["a"]
    assert staff.patch(f"/api/v1/rooms/{room}", json={"capacity": 3}).status_code == 204
    # One tenant lives there: capacity 1 is still enough, 0 is invalid input.
    assert staff.patch(f"/api/v1/rooms/{room}", json={"capacity": 1}).status_code == 204
    assert staff.patch(f"/api/v1/rooms/{room}", json={"capacity": 0}).status_code == 422
    person = staff.post(
        "/api/v1/people",
        data={"name": "第二租客", "non_face_note": "ID card", "category": "tenant"},
    )
    assert person.status_code == 201, person.text
    full = staff.post(
        f"/api/v1/people/{person.json()['id']}/tenancies",
        json={"room_id": room, "move_in": "2026-11-01"},
    )
    assert full.status_code == 409, full.text
    assert staff.patch(f"/api/v1/rooms/{room}", json={"capacity": 2}).status_code == 204
    moved_in = staff.post(
        f"/api/v1/people/{person.json()['id']}/tenancies",
        json={"room_id": room, "move_in": "2026-11-01"},
    )
    assert moved_in.status_code == 201, moved_in.text
    too_small = staff.patch(f"/api/v1/rooms/{room}", json={"capacity": 1})
    assert too_small.status_code == 409
    assert "2 people" in too_small.json()["detail"]


def test_edit_a_person_and_the_audit_names_fields_not_values(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    person = staff.post("/api/v1/people", data={"name": "王五", "non_face_note": "ID card"})
    person_id = person.json()["id"]
    changed = staff.patch(f"/api/v1/people/{person_id}", json={"name": "王五五", "phone": "139"})
    assert changed.status_code == 204
    detail = staff.get(f"/api/v1/people/{person_id}").json()
    assert (detail["name"], detail["phone"]) == ("王五五", "139")
    entries = clients["admin"].get("/api/v1/audit", params={"action": "person.update"}).json()
    entry = next(e for e in entries["items"] if e["target_id"] == str(person_id))
    assert "王五五" not in entry["details"]
    assert "name" in entry["details"]
    missing = staff.patch("/api/v1/people/999999", json={"name": "x"})
    assert missing.status_code == 404


def test_withdrawn_consent_can_be_recorded_again(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    person_id = staff.post(
        "/api/v1/people", data={"name": "赵六", "non_face_note": "ID card"}
    ).json()["id"]
    # No consent yet: nothing to withdraw.
    nothing = staff.post(
        f"/api/v1/people/{person_id}/consent-withdrawal", json={"alternative_note": "ID"}
    )
    assert nothing.status_code == 422
    recorded = staff.post(f"/api/v1/people/{person_id}/consents", json={"collected_by": "网格员王"})
    assert recorded.status_code == 201
    assert staff.get(f"/api/v1/people/{person_id}").json()["has_valid_consent"] is True
    withdrawn = staff.post(
        f"/api/v1/people/{person_id}/consent-withdrawal", json={"alternative_note": "ID card"}
    )
    assert withdrawn.status_code == 200
    assert staff.get(f"/api/v1/people/{person_id}").json()["has_valid_consent"] is False
    again = staff.post(f"/api/v1/people/{person_id}/consents", json={"collected_by": "网格员李"})
    assert again.status_code == 201
    assert staff.get(f"/api/v1/people/{person_id}").json()["has_valid_consent"] is True
    removed = staff.delete(f"/api/v1/people/{person_id}")
    assert removed.status_code == 200
    assert staff.get(f"/api/v1/people/{person_id}").status_code == 404
