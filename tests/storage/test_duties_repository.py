"""Duty queries on both engines: task filters, which tenancies count as current or overdue."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from cunan.storage.duties_repository import DutiesRepository
from cunan.storage.duty_tables import ConfirmationTask
from cunan.storage.enums import PersonCategory, PersonStatus
from tests.duties.helpers import NOW, TODAY, FrozenClock, add_tenant, seed_village

DAY = timedelta(days=1)


@pytest.fixture
def service(database: Database) -> RegistryService:
    return RegistryService(database, FieldCipher(KeyRing.generate()), clock=FrozenClock())


def _task(
    tenancy_id: int,
    person_id: int,
    landlord_id: int,
    since: datetime,
    *,
    closed_at: datetime | None = None,
) -> ConfirmationTask:
    return ConfirmationTask(
        tenancy_id=tenancy_id,
        person_id=person_id,
        landlord_id=landlord_id,
        not_seen_since=since,
        days_not_seen=(NOW - since).days,
        status="open" if closed_at is None else "closed",
        outcome=None if closed_at is None else "still_living",
        opened_at=since,
        closed_at=closed_at,
        closed_by=None if closed_at is None else "房东",
    )


def test_task_queries_filter_by_state_tenancy_person_moment_and_landlord(
    database: Database, service: RegistryService
) -> None:
    village = seed_village(service)
    other_landlord = service.add_landlord(village.id, "房东 张")
    a = add_tenant(service, village, village.rooms[0], seed=1)
    b = add_tenant(service, village, village.rooms[1], seed=2)
    ta, tb = service.tenancies_of(a)[0].id, service.tenancies_of(b)[0].id
    with database.transaction() as session:
        repo = DutiesRepository(session)
        confirmed = repo.add_task(
            _task(ta, a, village.landlord, NOW - 90 * DAY, closed_at=NOW - 50 * DAY)
        )
        older = repo.add_task(_task(ta, a, village.landlord, NOW - 40 * DAY)).id
        newer = repo.add_task(_task(tb, b, other_landlord, NOW - DAY)).id

    with database.transaction() as session:
        repo = DutiesRepository(session)
        assert [t.id for t in repo.tasks()] == [older, newer]
        assert [t.id for t in repo.tasks(open_only=False)] == [confirmed.id, older, newer]
        assert [t.id for t in repo.tasks(open_only=False, landlord_id=other_landlord)] == [newer]
        assert [t.id for t in repo.tasks(landlord_id=village.landlord)] == [older]
        assert {t.id for t in repo.open_tasks()} == {older, newer}
        assert [t.id for t in repo.open_tasks(tenancy_id=ta)] == [older]
        assert [t.id for t in repo.open_tasks(person_id=b)] == [newer]
        # Strictly before: a task counting from exactly that moment stays open.
        assert [t.id for t in repo.open_tasks(not_seen_before=NOW - DAY)] == [older]
        assert repo.open_tasks(person_id=a, not_seen_before=NOW - 40 * DAY) == []
        assert repo.tenancies_with_open_task([ta, tb]) == {ta, tb}
        assert repo.last_confirmations([ta, tb]) == {ta: NOW - 50 * DAY}


def test_current_tenancies_and_tenants_who_moved_out(
    database: Database, service: RegistryService
) -> None:
    village = seed_village(service, houses=3)
    here = add_tenant(service, village, village.rooms[0], seed=1)
    arriving = add_tenant(service, village, village.rooms[0], move_in=TODAY, seed=2)
    add_tenant(service, village, village.rooms[1], move_in=TODAY + DAY, seed=3)
    add_tenant(service, village, village.rooms[1], templates=0, seed=4)
    resident = add_tenant(
        service, village, village.rooms[2], seed=5, category=PersonCategory.RESIDENT
    )
    leaving = add_tenant(service, village, village.rooms[2], seed=6)
    later = add_tenant(service, village, village.rooms[3], seed=7)
    mover = add_tenant(service, village, village.rooms[3], seed=8)
    for person, move_out in ((leaving, TODAY), (later, TODAY + DAY), (mover, TODAY - DAY)):
        service.record_move_out(
            service.tenancies_of(person)[0].id, move_out=move_out, reported_by="房东"
        )
    service.record_move_out(service.tenancies_of(resident)[0].id, move_out=TODAY, reported_by="x")
    # The mover took another room of the village: their old tenancy ended, a new one is open.
    second = service.add_tenancy(mover, village.rooms[4], move_in=TODAY - DAY, reported_by="x")
    service.add_tenancy(here, village.rooms[5], move_in=date(2025, 3, 1), reported_by="x")

    with database.transaction() as session:
        repo = DutiesRepository(session)
        current = repo.current_tenancies_with_face_data(TODAY)
        # Move-in day counts, move-out day does not; no face data or not a tenant: left out.
        assert {t.person_id for t in current} == {here, arriving, later, mover}
        assert [t.id for t in current] == sorted(t.id for t in current)
        assert second in {t.id for t in current}
        # Any tenancy ended by the day; whether they live elsewhere is the caller's call.
        assert [p.id for p in repo.active_tenants_moved_out_by(TODAY)] == [leaving, mover]
        assert [p.id for p in repo.active_tenants_moved_out_by(TODAY + DAY)] == [
            leaving,
            later,
            mover,
        ]
        assert len(repo.open_tenancy_ids(here)) == 2
        assert repo.open_tenancy_ids(leaving) == []


def test_unreported_tenancies_up_to_the_expected_end_of_people_not_archived(
    database: Database, service: RegistryService
) -> None:
    village = seed_village(service, houses=2)
    due = add_tenant(service, village, village.rooms[0], expected_end=TODAY, seed=1)
    add_tenant(service, village, village.rooms[1], expected_end=TODAY + DAY, seed=2)
    archived = add_tenant(service, village, village.rooms[2], expected_end=TODAY, seed=3)
    service.set_status(archived, PersonStatus.ARCHIVED)
    reported = add_tenant(service, village, village.rooms[3], expected_end=TODAY, seed=4)
    service.record_move_out(
        service.tenancies_of(reported)[0].id, move_out=TODAY - DAY, reported_by="x"
    )
    add_tenant(service, village, village.rooms[3], seed=5)  # no expected end

    with database.transaction() as session:
        rows = DutiesRepository(session).unreported_tenancies(expected_end_by=TODAY)
        assert [t.person_id for t in rows] == [due]
