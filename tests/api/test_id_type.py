"""``id_type`` in the API's person edit and 补录: passports and 港澳台 permits are accepted when
stated and checked by their own rules, resident IDs by the check digit and birth date, exactly
as ``people add --id-type`` and the roster import (both engines)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import text

from cunan.app import CunanApp
from cunan.pipeline.store import SightingStore
from tests.api.conftest import Village
from tests.sightings import new_sighting


def _id_number(core: CunanApp, person_id: int) -> str | None:
    with core.registry.database.read() as session:
        value = session.execute(
            text("SELECT id_number FROM people WHERE id = :id"), {"id": person_id}
        ).scalar_one()
    return None if value is None else str(value)


def _new_case(core: CunanApp, seed: int) -> int:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    stored = store.add(
        new_sighting(
            (v / np.linalg.norm(v)).astype(np.float32),
            at=datetime.now(UTC),
            camera="east-gate",
            track_key=f"idtype{seed}",
        )
    )
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None and outcome.opened
    return outcome.case_id


def test_person_edit_takes_the_document_type(
    clients: dict[str, TestClient], core: CunanApp, village: Village
) -> None:
    staff = clients["staff"]
    person_id = village.tenant["a"]
    path = f"/api/v1/people/{person_id}"
    # Read as a resident ID, a passport number is malformed.
    assert staff.patch(path, json={"id_number": "E12345678"}).status_code == 422
    done = staff.patch(path, json={"id_number": "E12345678", "id_type": "passport"})
    assert done.status_code == 204, done.text
    assert _id_number(core, person_id) == "E12345678"
    # Each document keeps its own rule.
    bad = staff.patch(path, json={"id_number": "X1", "id_type": "hk_macao_permit"})
    assert bad.status_code == 422 and "H or M" in bad.text
    assert (
        staff.patch(path, json={"id_number": "H12345678", "id_type": "hk_macao_permit"}).status_code
        == 204
    )
    assert (
        staff.patch(path, json={"id_number": "12345678", "id_type": "taiwan_permit"}).status_code
        == 204
    )
    # A resident ID with a wrong check digit is refused whatever else is said.
    assert staff.patch(path, json={"id_number": "110101199003070010"}).status_code == 422
    assert staff.patch(path, json={"id_type": "whatever"}).status_code == 422


def test_enrol_from_a_case_takes_the_document_type(
    clients: dict[str, TestClient], core: CunanApp, village: Village
) -> None:
    staff = clients["staff"]
    form = {
        "name": "护照租客",
        "room_id": str(village.room["a"]),
        "consent_by": "网格员王",
        "id_number": "G87654321",
    }
    case_id = _new_case(core, 4242)
    refused = staff.post(f"/api/v1/cases/{case_id}/enrol", data=form)
    assert refused.status_code == 422, refused.text
    assert core.cases.get(case_id).status == "open"  # nothing written
    done = staff.post(f"/api/v1/cases/{case_id}/enrol", data={**form, "id_type": "passport"})
    assert done.status_code == 201, done.text
    assert _id_number(core, done.json()["person_id"]) == "G87654321"
    assert core.cases.get(case_id).status == "closed"
    other = _new_case(core, 4343)
    bad = staff.post(
        f"/api/v1/cases/{other}/enrol",
        data={**form, "name": "台胞", "id_number": "ABC", "id_type": "taiwan_permit"},
    )
    assert bad.status_code == 422 and core.cases.get(other).status == "open"
