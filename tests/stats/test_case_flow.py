"""Cases opened and closed per week and month, counted by the village's calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from cunan.duties.settings import DutySettings
from cunan.stats.service import StatsService, period_starts
from cunan.storage.case_tables import Case
from cunan.storage.database import Database

ZONE = ZoneInfo("Asia/Shanghai")


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def _case(database: Database, status: str, opened: datetime, closed: datetime | None) -> None:
    with database.transaction() as session:
        session.add(
            Case(
                status=status,
                model_id="m",
                opened_at=opened,
                first_seen_at=opened,
                last_seen_at=opened,
                updated_at=opened,
                sightings_count=1,
                outcome="false_alarm" if closed is not None and status == "closed" else None,
                outcome_at=closed if status == "closed" else None,
                closed_at=closed,
            )
        )


def test_weeks_start_on_the_village_monday_and_merged_cases_are_not_closed(
    database: Database,
) -> None:
    # Monday 00:30 in the village is still Sunday in UTC: it belongs to the new week.
    _case(database, "open", local(3, 10, 0, 30), None)
    # Sunday 23:30 in the village: the old week.
    _case(database, "open", local(3, 9, 23, 30), None)
    _case(database, "closed", local(3, 5, 9), local(3, 11, 10))
    _case(database, "merged", local(3, 4, 9), local(3, 11, 11))
    # Opened before the weeks counted; closed in the first of them.
    _case(database, "closed", local(2, 1, 9), local(3, 3, 0, 10))
    now = local(3, 12, 12)
    stats = StatsService(database, DutySettings(timezone="Asia/Shanghai"), clock=lambda: now)
    flow = stats.case_flow("week", 2)
    assert flow is not None
    assert [(p.start, p.end, p.opened, p.closed) for p in flow] == [
        (date(2025, 3, 3), date(2025, 3, 9), 3, 1),
        (date(2025, 3, 10), date(2025, 3, 16), 1, 1),
    ]
    months = stats.case_flow("month", 2)
    assert months is not None
    assert [(p.start, p.end, p.opened, p.closed) for p in months] == [
        (date(2025, 2, 1), date(2025, 2, 28), 1, 0),
        (date(2025, 3, 1), date(2025, 3, 31), 4, 2),
    ]


def test_period_starts_cross_the_year() -> None:
    assert period_starts(date(2026, 1, 15), "month", 3) == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    # 2026-01-01 is a Thursday: its week started on Monday 2025-12-29.
    assert period_starts(date(2026, 1, 1), "week", 1) == [date(2025, 12, 29), date(2026, 1, 5)]
    with pytest.raises(ValueError, match="period 'day'"):
        period_starts(date(2026, 1, 1), "day", 1)
