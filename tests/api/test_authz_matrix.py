"""Every role against every route, and a landlord against their own and another's records."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Village

ROLES = ("admin", "staff", "auditor", "landlord_a", "business", "maintainer")

#: (method, path, body, {role: expected status}). Paths use ``{own}``/``{other}`` for the
#: landlord_a's own record and landlord_b's; other roles see both.
MATRIX: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    (
        "GET",
        "/api/v1/people",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 200,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/houses",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 200,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/cases",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/cases/987654/candidates",
        None,
        {
            "admin": 404,
            "staff": 404,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/sightings",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/cameras",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/audit",
        None,
        {
            "admin": 200,
            "staff": 403,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "POST",
        "/api/v1/audit/verify",
        None,
        {
            "admin": 200,
            "staff": 403,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/privacy",
        None,
        {
            "admin": 200,
            "staff": 403,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/stats/cases",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/users",
        None,
        {
            "admin": 200,
            "staff": 403,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/tokens",
        None,
        {
            "admin": 200,
            "staff": 403,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "POST",
        "/api/v1/users",
        {"username": "x-{role}", "password": "Correct-horse-9", "role": "staff"},
        {
            "admin": 201,
            "staff": 403,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "GET",
        "/api/v1/auth/me",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 200,
            "business": 200,
            "maintainer": 200,
        },
    ),
    (
        "POST",
        "/api/v1/cases/999999/false-alarm",
        None,
        {
            "admin": 404,
            "staff": 404,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    # Permitted like identify (staff and admins): the others are refused before the uploads
    # are read; without the two images the permitted get 422.
    (
        "POST",
        "/api/v1/faces/compare",
        None,
        {
            "admin": 422,
            "staff": 422,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "POST",
        "/api/v1/identify",
        None,
        {
            "admin": 422,
            "staff": 422,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    # The gas registry: everyone with gas.read lists (business and maintainer accounts their
    # own businesses only, tests/gas/test_registry_api.py); staff and admins change it.
    (
        "GET",
        "/api/v1/gas/businesses",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 200,
            "maintainer": 200,
        },
    ),
    (
        "GET",
        "/api/v1/gas/devices",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 200,
            "maintainer": 200,
        },
    ),
    (
        "GET",
        "/api/v1/gas/models",
        None,
        {
            "admin": 200,
            "staff": 200,
            "auditor": 200,
            "landlord_a": 403,
            "business": 200,
            "maintainer": 200,
        },
    ),
    (
        "POST",
        "/api/v1/gas/businesses",
        {"name": "店-{role}", "licence_no": "LIC-{role}"},
        {
            "admin": 201,
            "staff": 201,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    (
        "POST",
        "/api/v1/gas/devices/987654/credential",
        None,
        {
            "admin": 404,
            "staff": 404,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
    # Refused before the upload is read; without a file the permitted get 422.
    (
        "POST",
        "/api/v1/gas/imports/businesses",
        None,
        {
            "admin": 422,
            "staff": 422,
            "auditor": 403,
            "landlord_a": 403,
            "business": 403,
            "maintainer": 403,
        },
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=lambda v: str(v)[:40])
def test_role_matrix(
    clients: dict[str, TestClient],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: dict[str, int],
) -> None:
    for role in ROLES:
        payload = None
        if body is not None:
            payload = {
                k: v.replace("{role}", role) if isinstance(v, str) else v for k, v in body.items()
            }
        response = clients[role].request(method, path, json=payload)
        assert response.status_code == expected[role], (role, method, path, response.text)


def test_landlord_sees_own_house_and_tenants_and_nothing_else(
    clients: dict[str, TestClient], village: Village
) -> None:
    landlord = clients["landlord_a"]
    own_house, other_house = village.house["a"], village.house["b"]
    assert landlord.get(f"/api/v1/houses/{own_house}").status_code == 200
    hidden = landlord.get(f"/api/v1/houses/{other_house}")
    missing = landlord.get("/api/v1/houses/987654")
    # Another landlord's house answers exactly like a house that does not exist.
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["title"] == missing.json()["title"]
    assert landlord.get(f"/api/v1/people/{village.tenant['a']}").status_code == 200
    assert landlord.get(f"/api/v1/people/{village.tenant['b']}").status_code == 404
    houses = landlord.get("/api/v1/houses").json()
    assert [h["id"] for h in houses["items"]] == [own_house]
    assert houses["total"] == 1
    people = landlord.get("/api/v1/people").json()
    assert {p["id"] for p in people["items"]} == {village.tenant["a"]}
    # Staff see both landlords' houses and tenants.
    staff_people = clients["staff"].get("/api/v1/people").json()
    assert {village.tenant["a"], village.tenant["b"]} <= {p["id"] for p in staff_people["items"]}


def test_landlord_reports_move_out_of_own_tenant_only(
    clients: dict[str, TestClient], village: Village
) -> None:
    landlord = clients["landlord_a"]
    other = landlord.post(
        f"/api/v1/tenancies/{village.tenancy['b']}/move-out", json={"move_out": "2026-01-01"}
    )
    assert other.status_code == 404
    # The other landlord's tenant is still living there.
    detail = clients["staff"].get(f"/api/v1/people/{village.tenant['b']}").json()
    assert detail["tenancies"][0]["move_out"] is None
    # Auditors change nothing.
    refused = clients["auditor"].post(
        f"/api/v1/tenancies/{village.tenancy['a']}/move-out", json={"move_out": "2026-01-01"}
    )
    assert refused.status_code == 403


def test_landlord_person_detail_hides_what_is_not_theirs(
    clients: dict[str, TestClient], village: Village
) -> None:
    detail = clients["landlord_a"].get(f"/api/v1/people/{village.tenant['a']}").json()
    assert detail["non_face_note"] is None
    assert all(t["house_id"] == village.house["a"] for t in detail["tenancies"])


def test_a_former_tenants_new_address_is_not_the_old_landlords_business(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    person = staff.post("/api/v1/people", data={"name": "搬家租客", "non_face_note": "ID"}).json()
    moved = staff.post(
        f"/api/v1/people/{person['id']}/tenancies",
        json={"room_id": village.room["a"], "move_in": "2025-01-01"},
    )
    assert moved.status_code == 201, moved.text
    report = staff.post(
        f"/api/v1/tenancies/{moved.json()['id']}/move-out", json={"move_out": "2025-06-30"}
    )
    assert report.status_code == 204, report.text
    staff.patch(f"/api/v1/rooms/{village.room['b']}", json={"capacity": 5})
    now_b = staff.post(
        f"/api/v1/people/{person['id']}/tenancies",
        json={"room_id": village.room["b"], "move_in": "2025-07-01"},
    )
    assert now_b.status_code == 201, now_b.text
    # Landlord a sees the former tenant, but not where they live now.
    rows = clients["landlord_a"].get("/api/v1/people", params={"name": "搬家租客"}).json()
    [row] = rows["items"]
    assert (row["address"], row["landlord"], row["room"]) == (None, None, None)
    by_house = (
        clients["landlord_a"].get("/api/v1/people", params={"house_id": village.house["b"]}).json()
    )
    assert by_house["items"] == []
    detail = clients["landlord_a"].get(f"/api/v1/people/{person['id']}").json()
    assert {t["house_id"] for t in detail["tenancies"]} == {village.house["a"]}
    # Landlord b sees them at their address.
    [own] = clients["landlord_b"].get("/api/v1/people", params={"name": "搬家租客"}).json()["items"]
    assert own["address"] == "幸福路b号"
