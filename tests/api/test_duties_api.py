"""Overdue departures and confirmation tasks through the API: named, and scoped per landlord."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.duties.reconcile import NotSeenReconciler
from cunan.registry.records import ConsentInput, TemplateInput
from tests.api.conftest import Village


def test_overdue_departures_name_the_tenant_room_and_landlord_per_landlord(
    clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    house = staff.get(f"/api/v1/houses/{village.house['b']}").json()
    room = staff.post(
        f"/api/v1/houses/{village.house['b']}/rooms", json={"label": "overdue", "capacity": 1}
    ).json()["id"]
    person = staff.post("/api/v1/people", data={"name": "逾期租客", "non_face_note": "ID"})
    person_id = person.json()["id"]
    long_ago = date.today() - timedelta(days=60)
    tenancy = staff.post(
        f"/api/v1/people/{person_id}/tenancies",
        json={
            "room_id": room,
            "move_in": long_ago.isoformat(),
            "expected_end": (long_ago + timedelta(days=10)).isoformat(),
        },
    )
    assert tenancy.status_code == 201, tenancy.text
    rows = staff.get("/api/v1/departures/overdue").json()
    row = next(r for r in rows if r["tenancy_id"] == tenancy.json()["id"])
    assert (row["person"], row["room"], row["address"]) == ("逾期租客", "overdue", house["address"])
    assert row["landlord"] == "房东b"
    own = clients["landlord_b"].get("/api/v1/departures/overdue").json()
    assert [r["tenancy_id"] for r in own] == [tenancy.json()["id"]]
    assert clients["landlord_a"].get("/api/v1/departures/overdue").json() == []
    # The house's landlord decides: hand the house to landlord a and the row follows it.
    staff.patch(f"/api/v1/houses/{village.house['b']}", json={"landlord_id": village.landlord["a"]})
    try:
        assert clients["landlord_b"].get("/api/v1/departures/overdue").json() == []
        moved = clients["landlord_a"].get("/api/v1/departures/overdue").json()
        assert [r["tenancy_id"] for r in moved] == [tenancy.json()["id"]]
    finally:
        staff.patch(
            f"/api/v1/houses/{village.house['b']}", json={"landlord_id": village.landlord["b"]}
        )
    # The landlord reports the move-out; it is no longer unreported.
    reported = clients["landlord_b"].post(
        f"/api/v1/tenancies/{tenancy.json()['id']}/move-out",
        json={"move_out": (long_ago + timedelta(days=10)).isoformat()},
    )
    assert reported.status_code == 204
    kinds = {
        r["kind"]
        for r in staff.get("/api/v1/departures/overdue").json()
        if r["tenancy_id"] == tenancy.json()["id"]
    }
    assert "unreported" not in kinds


def test_confirmation_tasks_are_the_landlords_own(
    clients: dict[str, TestClient], village: Village, core: CunanApp
) -> None:
    # Landlord a's tenant gets face data; 40 days later no camera has seen them.
    service = core.registry.service
    tenant = village.tenant["a"]
    service.record_consent(
        tenant, ConsentInput(collected_by="网格员王", collected_at=datetime.now(UTC))
    )
    vector = np.random.default_rng(5).standard_normal(128).astype(np.float32)
    service.add_templates(
        tenant,
        [TemplateInput(vector=vector / np.linalg.norm(vector), model_id="dlib_resnet_v1")],
    )
    later = datetime.now(UTC) + timedelta(days=40)
    NotSeenReconciler(
        core.registry.database, core.audit, core.settings.duties, clock=lambda: later
    ).reconcile()
    staff_tasks = clients["staff"].get("/api/v1/tasks").json()
    mine = clients["landlord_a"].get("/api/v1/tasks").json()
    others = clients["landlord_b"].get("/api/v1/tasks").json()
    assert {t["person_id"] for t in mine} <= {village.tenant["a"]}
    assert village.tenant["a"] not in {t["person_id"] for t in others}
    [task] = [t for t in mine if t["status"] == "open"]
    assert task["address"] == "幸福路a号" and task["person"] == "租客a"
    assert task["id"] in {t["id"] for t in staff_tasks}
    assert clients["landlord_b"].post(f"/api/v1/tasks/{task['id']}/confirm").status_code == 404
    confirmed = clients["landlord_a"].post(f"/api/v1/tasks/{task['id']}/confirm")
    assert confirmed.status_code == 200
    assert confirmed.json()["outcome"] == "still_living"
