"""A case's nearest registered people: the API call, the case page's on-request list, roles
and the audit entry each look-up leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.authz import local_principal
from cunan.pipeline.store import SightingStore
from cunan.registry.records import NewPerson, TemplateInput
from cunan.storage.enums import ConsentMethod, PersonCategory
from tests.sightings import MODEL, new_sighting


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _registered(core: CunanApp, name: str, vector: np.ndarray) -> int:
    """A resident with a consent and one template of the sightings' model."""
    service = core.registry.service
    person = service.add_person(
        NewPerson(
            name=name,
            village_id=service.default_village_id(),
            category=PersonCategory.RESIDENT,
            non_face_note="tests",
        )
    )
    core.services_for(local_principal("tests")).record_consent(
        person, "网格员", ConsentMethod.PAPER, None
    )
    service.add_templates(person, [TemplateInput(vector=vector, model_id=MODEL)])
    return person


def _case_of(core: CunanApp, vector: np.ndarray, key: str) -> int:
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    stored = store.add(new_sighting(vector, at=datetime.now(UTC), camera="north", track_key=key))
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None and outcome.opened
    return outcome.case_id


def _searches(core: CunanApp, case_id: int) -> int:
    entries = core.audit.recent(limit=500, action="search")
    return sum(1 for e in entries if str(e.target_id) == str(case_id))


def test_the_nearest_registered_people_of_a_case(
    core: CunanApp, clients: dict[str, TestClient]
) -> None:
    assert core.gallery.model_id == MODEL
    near = _unit(9001)
    far = _unit(9002)
    alike = _registered(core, "相似的人", near)
    other = _registered(core, "另一个人", far)
    # The stranger's face: close to the first resident, far from the second.
    probe = near + 0.08 * _unit(9003)
    case_id = _case_of(core, (probe / np.linalg.norm(probe)).astype(np.float32), "cand1")

    staff = clients["staff"]
    found = staff.get(f"/api/v1/cases/{case_id}/candidates", params={"top": 2})
    assert found.status_code == 200, found.text
    listed = found.json()
    assert [c["person_id"] for c in listed] == [alike, other]
    assert listed[0]["name"] == "相似的人"
    assert listed[0]["distance"] < 0.2 < listed[1]["distance"]
    assert _searches(core, case_id) == 1

    # Auditors read cases but may not search the registry by face; landlords see no cases.
    assert clients["auditor"].get(f"/api/v1/cases/{case_id}/candidates").status_code == 403
    assert clients["landlord_a"].get(f"/api/v1/cases/{case_id}/candidates").status_code in (
        403,
        404,
    )
    assert staff.get("/api/v1/cases/999999/candidates").status_code == 404
    assert staff.get(f"/api/v1/cases/{case_id}/candidates", params={"top": 0}).status_code == 422

    # The page searches only when asked, and offers the result as "it is this person".
    plain = staff.get(f"/cases/{case_id}")
    assert plain.status_code == 200 and 'name="similar"' in plain.text
    assert f'id="c{alike}"' not in plain.text
    assert _searches(core, case_id) == 1
    asked = staff.get(f"/cases/{case_id}", params={"similar": "1"})
    assert asked.status_code == 200
    assert f'id="c{alike}"' in asked.text and "距离" in asked.text
    assert asked.text.index(f'id="c{alike}"') < asked.text.index(f'id="c{other}"')
    assert _searches(core, case_id) == 2
    # No search control for the auditor, and asking anyway searches nothing.
    auditor = clients["auditor"].get(f"/cases/{case_id}", params={"similar": "1"})
    assert auditor.status_code == 200 and 'name="similar"' not in auditor.text
    assert _searches(core, case_id) == 2
