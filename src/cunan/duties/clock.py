"""The injectable clock of the duties and the village's calendar day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

#: Returns the current moment as an aware datetime; tests pass a frozen one.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    """The village's calendar day of an aware moment."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime")
    return moment.astimezone(zone).date()


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of ``day`` as an aware UTC moment."""
    return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)
