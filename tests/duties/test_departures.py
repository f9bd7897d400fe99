"""Move-out reports against the deadline, overdue listing, marking departures (both engines)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from cunan.audit.log import AuditLog
from cunan.duties.daily import Duties
from cunan.duties.departures import OVERDUE_LATE_REPORT, OVERDUE_UNREPORTED
from cunan.registry.errors import InvalidRecordError
from cunan.registry.service import RegistryService
from cunan.storage.enums import PersonStatus
from tests.duties.helpers import FrozenClock, add_tenant, seed_village

SHANGHAI = timedelta(hours=8)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    """A Shanghai wall time as an aware UTC moment."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=UTC) - SHANGHAI


def test_report_on_the_last_day_is_on_time_and_a_second_later_is_late(
    service: RegistryService, duties: Duties, clock: FrozenClock, audit: AuditLog
) -> None:
    village = seed_village(service)
    alice = add_tenant(service, village, village.rooms[0], name="张三", seed=1)
    bob = add_tenant(service, village, village.rooms[1], name="李四", seed=2)
    alice_t = service.tenancies_of(alice)[0].id
    bob_t = service.tenancies_of(bob)[0].id

    # Moved out 2025-05-10; deadline 7 days: the report is on time through 05-17 local.
    clock.set(local(2025, 5, 17, 23, 59, 59))
    on_time = duties.departures.report(
        alice_t, move_out=date(2025, 5, 10), reported_by="房东 李", actor="user:3"
    )
    assert on_time.deadline == date(2025, 5, 17)
    assert not on_time.late
    assert on_time.days_after_move_out == 7
    assert on_time.person_departed

    clock.set(local(2025, 5, 18, 0, 0, 0))
    late = duties.departures.report(
        bob_t, move_out=date(2025, 5, 10), reported_by="房东 李", actor="user:3"
    )
    assert late.late
    assert late.days_after_move_out == 8

    # Stored on the tenancy and the report, with who and when.
    tenancy = service.tenancies_of(bob)[0]
    assert tenancy.move_out == date(2025, 5, 10)
    reports = {r.tenancy_id: r for r in duties.departures.reports()}
    assert reports[bob_t].reported_by == "房东 李"
    assert reports[bob_t].reported_at == local(2025, 5, 18)
    assert reports[alice_t].late is False and reports[bob_t].late is True
    assert service.get_person(bob).status == PersonStatus.DEPARTED

    entries = audit.recent(action="departure.report", limit=2)
    assert [e.target_id for e in entries] == [str(bob_t), str(alice_t)]
    assert entries[0].details["late"] is True and entries[0].actor == "user:3"
    # Counts and ids only: no names of tenant or reporter.
    text = json.dumps([dict(e.details) for e in entries], ensure_ascii=False)
    assert "李" not in text and "张" not in text


def test_a_zero_day_deadline_allows_only_the_move_out_day(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    duties.departures.settings = duties.departures.settings.model_copy(
        update={"departure_deadline_days": 0}
    )
    village = seed_village(service)
    p = add_tenant(service, village, village.rooms[0], seed=3)
    clock.set(local(2025, 5, 10, 23, 0))
    view = duties.departures.report(
        service.tenancies_of(p)[0].id, move_out=date(2025, 5, 10), reported_by="x", actor="a"
    )
    assert not view.late and view.deadline == date(2025, 5, 10)


def test_report_refusals(service: RegistryService, duties: Duties, clock: FrozenClock) -> None:
    village = seed_village(service)
    p = add_tenant(service, village, village.rooms[0], move_in=date(2025, 3, 1), seed=4)
    tenancy = service.tenancies_of(p)[0].id
    assert duties.departures.tenancy_to_report(p) == tenancy
    with pytest.raises(InvalidRecordError, match="before move-in"):
        duties.departures.report(tenancy, move_out=date(2025, 2, 1), reported_by="x", actor="a")
    with pytest.raises(InvalidRecordError, match="who reported"):
        duties.departures.report(tenancy, move_out=date(2025, 5, 1), reported_by=" ", actor="a")
    duties.departures.report(tenancy, move_out=date(2025, 5, 1), reported_by="x", actor="a")
    with pytest.raises(InvalidRecordError, match="already ended"):
        duties.departures.report(tenancy, move_out=date(2025, 5, 2), reported_by="x", actor="a")
    with pytest.raises(InvalidRecordError, match="0 tenancies without a move-out"):
        duties.departures.tenancy_to_report(p)


def test_overdue_lists_unreported_past_deadline_and_recent_late_reports(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    village = seed_village(service, houses=2)
    # Expected to leave 05-20: deadline 05-27; overdue from 05-28.
    due = add_tenant(service, village, village.rooms[0], expected_end=date(2025, 5, 20), seed=5)
    due2 = add_tenant(service, village, village.rooms[1], expected_end=date(2025, 5, 21), seed=6)
    add_tenant(service, village, village.rooms[2], seed=7)  # no expected end: never overdue
    on_time = add_tenant(service, village, village.rooms[3], seed=8)
    late = add_tenant(service, village, village.rooms[3], seed=9)
    departures = duties.departures

    clock.set(local(2025, 5, 12, 10))
    departures.report(
        service.tenancies_of(on_time)[0].id, move_out=date(2025, 5, 10), reported_by="x", actor="a"
    )
    clock.set(local(2025, 5, 25, 10))  # 15 days after a 05-10 move-out: 8 days late
    departures.report(
        service.tenancies_of(late)[0].id, move_out=date(2025, 5, 10), reported_by="x", actor="a"
    )

    rows = departures.overdue(today=date(2025, 5, 27))
    assert [(o.kind, o.person_id) for o in rows] == [(OVERDUE_LATE_REPORT, late)]
    assert rows[0].days_overdue == 8

    rows = departures.overdue(today=date(2025, 5, 28))
    assert [(o.kind, o.person_id, o.days_overdue) for o in rows] == [
        (OVERDUE_LATE_REPORT, late, 8),
        (OVERDUE_UNREPORTED, due, 1),
    ]
    assert rows[1].deadline == date(2025, 5, 27)

    # Late reports drop off after the window (30 days after the report); unreported stay.
    rows = departures.overdue(today=date(2025, 6, 24))
    assert {(o.kind, o.person_id) for o in rows} == {
        (OVERDUE_LATE_REPORT, late),
        (OVERDUE_UNREPORTED, due),
        (OVERDUE_UNREPORTED, due2),
    }
    rows = departures.overdue(today=date(2025, 6, 25))
    assert OVERDUE_LATE_REPORT not in {o.kind for o in rows}

    # Reporting the move-out takes a tenancy off the unreported list.
    clock.set(local(2025, 5, 29, 9))
    departures.report(
        service.tenancies_of(due)[0].id, move_out=date(2025, 5, 20), reported_by="x", actor="a"
    )
    rows = departures.overdue(today=date(2025, 5, 29))
    assert (OVERDUE_UNREPORTED, due) not in {(o.kind, o.person_id) for o in rows}
    assert (OVERDUE_LATE_REPORT, due) in {(o.kind, o.person_id) for o in rows}


def test_move_out_reported_in_advance_marks_departed_on_the_day(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    village = seed_village(service)
    p = add_tenant(service, village, village.rooms[0], seed=10)
    clock.set(local(2025, 6, 1, 9))
    view = duties.departures.report(
        service.tenancies_of(p)[0].id, move_out=date(2025, 6, 5), reported_by="x", actor="a"
    )
    assert not view.late and not view.person_departed
    assert duties.departures.mark_departures(today=date(2025, 6, 4)) == []
    assert duties.departures.mark_departures(today=date(2025, 6, 5)) == [p]
    assert service.get_person(p).status == PersonStatus.DEPARTED
