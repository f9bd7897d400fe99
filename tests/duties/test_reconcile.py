"""Not-seen reconciliation: one task per tenancy, closed by a sighting, answer or move-out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cunan.audit.log import AuditLog
from cunan.duties.daily import Duties
from cunan.registry.errors import InvalidRecordError
from cunan.registry.service import RegistryService
from tests.duties.helpers import FrozenClock, Sightings, add_tenant, seed_village

MOVE_IN = date(2025, 1, 1)
#: Start of the move-in day in the village (Asia/Shanghai): where "not seen" counts from.
MOVE_IN_START = datetime(2024, 12, 31, 16, 0, tzinfo=UTC)


def test_task_opened_once_after_n_days_and_closed_by_a_sighting(
    service: RegistryService,
    duties: Duties,
    clock: FrozenClock,
    sightings: Sightings,
    audit: AuditLog,
) -> None:
    village = seed_village(service)
    tenant = add_tenant(service, village, village.rooms[0], move_in=MOVE_IN, seed=1)
    last_seen = MOVE_IN_START + timedelta(days=10)
    sightings.add(last_seen, decision="known", person_id=tenant)
    # Others' sightings and unknown ones do not count as seeing this tenant.
    sightings.add(last_seen + timedelta(days=20), decision="unknown")
    reconciler = duties.reconciler

    clock.set(last_seen + timedelta(days=30) - timedelta(seconds=1))
    assert reconciler.reconcile().opened == []

    clock.set(last_seen + timedelta(days=30))
    opened = reconciler.reconcile().opened
    assert len(opened) == 1
    (task,) = reconciler.tasks()
    assert task.person_id == tenant and task.landlord_id == village.landlord
    assert task.not_seen_since == last_seen and task.days_not_seen == 30
    assert audit.recent(action="duties.reconcile", limit=1)[0].details["tasks_opened"] == 1

    # No duplicate while it is open, however often reconciliation runs.
    for _ in range(3):
        clock.advance(days=1)
        assert reconciler.reconcile().opened == []
    assert len(reconciler.tasks()) == 1

    # Seen again: the next run closes it, and no new task opens until another N days pass.
    seen = clock.advance(hours=1)
    sightings.add(seen, decision="known", person_id=tenant, camera="west-gate")
    result = reconciler.reconcile()
    assert result.closed_sighted == [task.id] and result.opened == []
    assert reconciler.tasks() == []
    assert reconciler.tasks(open_only=False)[0].outcome == "sighted"
    clock.set(seen + timedelta(days=29))
    assert reconciler.reconcile().opened == []
    clock.set(seen + timedelta(days=30))
    assert len(reconciler.reconcile().opened) == 1


def test_never_sighted_counts_from_move_in_or_enrolment(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    village = seed_village(service)
    moved_in = add_tenant(service, village, village.rooms[0], move_in=MOVE_IN, seed=2)
    # Enrolled (face data stored) two weeks after moving in: cameras could not see them before.
    enrolled_at = MOVE_IN_START + timedelta(days=14)
    late_enrolled = add_tenant(
        service, village, village.rooms[1], move_in=MOVE_IN, seed=3, enrolled_at=enrolled_at
    )
    add_tenant(service, village, village.rooms[1], move_in=MOVE_IN, templates=0, seed=4)

    clock.set(MOVE_IN_START + timedelta(days=30))
    duties.reconciler.reconcile()
    assert [t.person_id for t in duties.reconciler.tasks()] == [moved_in]
    clock.set(enrolled_at + timedelta(days=30))
    duties.reconciler.reconcile()
    # The tenant without face data never gets a task: no camera could have seen them.
    assert [t.person_id for t in duties.reconciler.tasks()] == [moved_in, late_enrolled]


def test_landlord_confirmation_closes_and_restarts_the_clock(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    village = seed_village(service)
    add_tenant(service, village, village.rooms[0], move_in=MOVE_IN, seed=5)
    clock.set(MOVE_IN_START + timedelta(days=40))
    (task_id,) = duties.reconciler.reconcile().opened

    with pytest.raises(InvalidRecordError, match="who confirmed"):
        duties.reconciler.confirm(task_id, confirmed_by="", actor="user:3")
    confirmed_at = clock.advance(hours=5)
    view = duties.reconciler.confirm(task_id, confirmed_by="房东 李", actor="user:3")
    assert view.status == "closed" and view.outcome == "still_living"
    with pytest.raises(InvalidRecordError, match="already closed"):
        duties.reconciler.confirm(task_id, confirmed_by="房东 李", actor="user:3")

    clock.set(confirmed_at + timedelta(days=30) - timedelta(minutes=1))
    assert duties.reconciler.reconcile().opened == []
    clock.set(confirmed_at + timedelta(days=30))
    assert len(duties.reconciler.reconcile().opened) == 1


def test_departure_report_and_live_sighting_close_tasks(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    village = seed_village(service)
    leaving = add_tenant(service, village, village.rooms[0], move_in=MOVE_IN, seed=6)
    staying = add_tenant(service, village, village.rooms[1], move_in=MOVE_IN, seed=7)
    clock.set(MOVE_IN_START + timedelta(days=35))
    assert len(duties.reconciler.reconcile().opened) == 2

    duties.departures.report(
        service.tenancies_of(leaving)[0].id,
        move_out=date(2025, 2, 1),
        reported_by="房东 李",
        actor="user:3",
    )
    closed = duties.reconciler.tasks(open_only=False)
    assert {(t.person_id, t.outcome) for t in closed} == {(leaving, "departed"), (staying, None)}

    # The pipeline's hook closes a task the moment the tenant is recognised.
    assert duties.reconciler.on_sighting(staying, clock.advance(minutes=3)) == 1
    assert duties.reconciler.tasks() == []
    # The departed tenant gets no new task.
    clock.advance(days=60)
    opened = duties.reconciler.reconcile().opened
    assert {t.person_id for t in duties.reconciler.tasks()} == {staying}
    assert len(opened) == 1
