"""Statistics of a small seeded village, every number computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cunan.duties.daily import Duties
from cunan.duties.settings import DutySettings
from cunan.registry.service import RegistryService
from cunan.stats.service import StatsService
from cunan.storage.database import Database, sqlite_url
from cunan.storage.enums import PersonCategory, PersonStatus
from cunan.storage.migrate import upgrade
from tests.duties.helpers import NOW, FrozenClock, Sightings, add_tenant, seed_village

ZONE = ZoneInfo("Asia/Shanghai")


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def _seed_cases(database: Database) -> bool:
    """Two open cases, one merged, three verified in 2 h, 5 h and 30 h, one closed unverified."""
    try:
        from cunan.storage import case_tables
    except ImportError:
        return False
    with database.transaction() as session:
        if not session.connection().dialect.has_table(session.connection(), "cases"):
            return False

        def case(status: str, hours: float | None, outcome: str | None = "false_alarm") -> None:
            opened = NOW - timedelta(days=3)
            session.add(
                case_tables.Case(
                    status=status,
                    model_id="m",
                    opened_at=opened,
                    first_seen_at=opened,
                    last_seen_at=opened,
                    updated_at=opened,
                    sightings_count=1,
                    outcome=outcome if hours is not None else None,
                    outcome_at=opened + timedelta(hours=hours) if hours is not None else None,
                )
            )

        case("open", None)
        case("assigned", None)
        case("merged", None)
        case("closed", 2)
        case("closed", 30)
        case("closed", 5)
        case("closed", None)
    return True


def test_stats_of_a_small_village(
    database: Database,
    service: RegistryService,
    duties: Duties,
    clock: FrozenClock,
    sightings: Sightings,
) -> None:
    village = seed_village(service, houses=2, rooms_per_house=2)
    service.add_house(village.id, "桃源路9号")  # a house without rooms is no rental house
    # Residents: 3 active (one with face data), 1 archived.
    for i in range(3):
        add_tenant(
            service,
            village,
            0,
            templates=1 if i == 0 else 0,
            seed=100 + i,
            category=PersonCategory.RESIDENT,
        )
    gone = add_tenant(service, village, 0, templates=0, category=PersonCategory.RESIDENT)
    service.set_status(gone, PersonStatus.ARCHIVED)
    # Tenants: 4 active, 3 with face data; one overdue (expected end 05-01, deadline 05-08).
    add_tenant(service, village, village.rooms[0], seed=1, expected_end=date(2025, 5, 1))
    add_tenant(service, village, village.rooms[1], seed=2)
    add_tenant(service, village, village.rooms[2], seed=3)
    add_tenant(service, village, village.rooms[2], templates=0, seed=4)
    # A departed tenant, reported late (moved out 05-10, reported 06-01), face data not purged.
    departed = add_tenant(service, village, village.rooms[3], seed=5)
    duties.departures.report(
        service.tenancies_of(departed)[0].id,
        move_out=date(2025, 5, 10),
        reported_by="房东",
        actor="a",
    )
    add_tenant(service, village, 0, seed=6, category=PersonCategory.STAFF)
    # Sightings over the last 3 local days (05-30 .. 06-01).
    for at, camera in [
        (local(5, 30, 10), "east-gate"),
        (local(5, 30, 10, 5), "east-gate"),
        (local(6, 1, 8), "east-gate"),
        (local(5, 31, 23, 30), "west-gate"),
        (local(5, 31, 0, 30), "west-gate"),  # still 05-30 in UTC
        (local(5, 29, 23, 59), "west-gate"),  # before the window
    ]:
        sightings.add(at, camera=camera)
    sightings.camera("north-lane")
    has_cases = _seed_cases(database)

    settings = DutySettings(stats_days=3)
    stats = StatsService(database, settings, clock=clock).compute()

    assert (stats.residents, stats.tenants, stats.tenants_with_face_data) == (3, 4, 3)
    assert stats.tenant_face_data_share == pytest.approx(0.75)
    assert (stats.rental_houses, stats.rental_rooms) == (2, 4)
    assert (stats.overdue_departures, stats.late_departure_reports) == (1, 1)
    # 1 resident + 3 active tenants + the departed tenant + staff.
    assert stats.face_data.people == 6 and not stats.face_data.warning
    assert stats.sightings.days == [date(2025, 5, 30), date(2025, 5, 31), date(2025, 6, 1)]
    assert stats.sightings.counts == {
        "east-gate": [2, 0, 1],
        "west-gate": [0, 2, 0],
        "north-lane": [0, 0, 0],
    }
    if has_cases:
        assert stats.cases.open_cases == 2
        assert stats.cases.verified_cases == 3
        assert stats.cases.median_hours_to_verify == pytest.approx(5.0)
    else:
        assert stats.cases.open_cases is None

    data = stats.as_dict()
    assert data["tenant_face_data_share"] == 0.75
    assert data["sightings_per_camera_per_day"] == {
        "days": ["2025-05-30", "2025-05-31", "2025-06-01"],
        "cameras": {
            "east-gate": [2, 0, 1],
            "north-lane": [0, 0, 0],
            "west-gate": [0, 2, 0],
        },
    }


def test_case_numbers_without_or_with_an_odd_cases_table(tmp_path: Path) -> None:
    database = Database.open(sqlite_url(tmp_path))
    try:
        upgrade(database, "0004")  # a schema from before the cases workflow
        clock = FrozenClock()
        service = StatsService(database, clock=clock)
        assert service.case_numbers().open_cases is None
        stats = service.compute()
        assert stats.cases.median_hours_to_verify is None and stats.residents == 0
        with database.engine.begin() as conn:
            conn.execute(text("CREATE TABLE cases (id INTEGER PRIMARY KEY)"))
        assert service.case_numbers().open_cases is None  # wrong shape: no numbers, no error
    finally:
        database.dispose()
