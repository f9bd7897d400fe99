"""The statistics and the overdue-departures list are reused for a few seconds per scope:
never across scopes (a landlord never gets what was computed for staff or another landlord),
and a write that changes them takes effect at once."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.registry.records import NewPerson
from cunan.storage.enums import PersonCategory
from cunan.storage.write_cache import ShortCache
from tests.api.conftest import Village


@pytest.fixture(scope="module")
def overdue(core: CunanApp, village: Village) -> dict[str, int]:
    """One tenant per landlord whose lease ended long ago with no move-out reported."""
    service = core.registry.service
    ended = date.today() - timedelta(days=60)
    tenancies = {}
    for key in ("a", "b"):
        person = service.add_person(
            NewPerson(
                name=f"逾期{key}",
                village_id=service.default_village_id(),
                category=PersonCategory.TENANT,
                non_face_note="checked by ID card",
            )
        )
        tenancies[key] = service.add_tenancy(
            person,
            village.room[key],
            move_in=ended - timedelta(days=200),
            expected_end=ended,
            reported_by="tests",
        )
    return tenancies


def _overdue_ids(client: TestClient) -> set[int]:
    response = client.get("/api/v1/departures/overdue")
    assert response.status_code == 200, response.text
    return {row["tenancy_id"] for row in response.json()}


def test_a_landlord_never_gets_another_scopes_cached_overdue_list(
    clients: dict[str, TestClient], overdue: dict[str, int], api: FastAPI
) -> None:
    core: CunanApp = api.state.core
    assert core.stats_cache.ttl_s > 0
    # Staff first: the whole village's list is cached for staff's scope ...
    assert {overdue["a"], overdue["b"]} <= _overdue_ids(clients["staff"])
    hits = core.stats_cache.hits
    # ... and each landlord, asking right after, still sees only their own tenant, every
    # time (the second ask of each is served from their own scope's entry).
    for _ in range(2):
        assert _overdue_ids(clients["landlord_a"]) == {overdue["a"]}
        assert _overdue_ids(clients["landlord_b"]) == {overdue["b"]}
    assert {overdue["a"], overdue["b"]} <= _overdue_ids(clients["staff"])
    assert core.stats_cache.hits > hits  # the cache was used, not bypassed


def test_a_landlord_never_gets_cached_statistics(
    clients: dict[str, TestClient], api: FastAPI
) -> None:
    assert clients["staff"].get("/api/v1/stats").status_code == 200
    for landlord in ("landlord_a", "landlord_b"):
        refused = clients[landlord].get("/api/v1/stats")
        assert refused.status_code == 403
        assert "residents" not in refused.text


def test_statistics_are_reused_within_a_scope_and_dropped_by_a_change(
    clients: dict[str, TestClient], api: FastAPI, core: CunanApp
) -> None:
    staff = clients["staff"]
    before = staff.get("/api/v1/stats").json()
    hits = core.stats_cache.hits
    assert staff.get("/api/v1/stats").json()["as_of"] == before["as_of"]
    assert core.stats_cache.hits == hits + 1
    service = core.registry.service
    service.add_person(
        NewPerson(
            name="新居民",
            village_id=service.default_village_id(),
            category=PersonCategory.RESIDENT,
            non_face_note="checked by ID card",
        )
    )
    after = staff.get("/api/v1/stats").json()
    assert after["residents"] == before["residents"] + 1


def test_a_move_out_report_changes_the_overdue_list_at_once(
    clients: dict[str, TestClient], overdue: dict[str, int], core: CunanApp
) -> None:
    landlord = clients["landlord_a"]
    assert overdue["a"] in _overdue_ids(landlord)
    reported = landlord.post(
        f"/api/v1/tenancies/{overdue['a']}/move-out",
        json={"move_out": (date.today() - timedelta(days=59)).isoformat()},
    )
    assert reported.status_code == 204, reported.text
    # Reported late: it is listed as a late report now, not as unreported.
    rows = landlord.get("/api/v1/departures/overdue").json()
    assert [(r["tenancy_id"], r["kind"]) for r in rows] == [(overdue["a"], "late_report")]


def test_cache_keys_never_share_values() -> None:
    cache = ShortCache(60.0, clock=lambda: 0.0)
    assert cache.get(("stats", 1, None), lambda: "village 1") == "village 1"
    assert cache.get(("stats", 1, 7), lambda: "landlord 7") == "landlord 7"
    assert cache.get(("stats", 1, 8), lambda: "landlord 8") == "landlord 8"
    assert cache.get(("stats", 1, 7), lambda: "recomputed") == "landlord 7"
    cache.invalidate()
    assert cache.get(("stats", 1, 7), lambda: "recomputed") == "recomputed"
