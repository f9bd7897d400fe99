"""Value checks shared by the registry service and the roster import: field lengths, dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import String

from cunan.registry.errors import InvalidRecordError
from cunan.storage.tables import Base

#: No consent form for face data of a village registry predates this day.
EARLIEST_CONSENT = date(2000, 1, 1)
#: A consent dated "today" in the village may be tomorrow in UTC (and the reverse).
_CLOCK_SLACK = timedelta(days=1)

#: How field names read in an error, Chinese first (village staff read these).
_FIELD_WORDS = {
    "name": "名称/name",
    "id_number": "证件号码/ID number",
    "phone": "电话/phone",
    "address": "门牌地址/address",
    "label": "房间/room",
    "collected_by": "同意采集人/consent collected by",
    "guardian_name": "监护人/guardian",
    "guardian_relation": "监护关系/guardian relation",
    "scope": "同意范围/consent scope",
    "reported_by": "报告人/reported by",
    "registration_number": "户号/household number",
    "media_type": "media type",
    "code": "code",
}


def field_limit(table: type[Base], column: str) -> int | None:
    """The maximum length of a text column (None: unbounded)."""
    kind = table.__table__.c[column].type
    return kind.length if isinstance(kind, String) else None


def check_length(value: str | None, limit: int | None, what: str) -> None:
    """Refuse text longer than its column: SQLite would store it, PostgreSQL would refuse it
    with an internal error; both engines now give the same clear one."""
    if value is not None and limit is not None and len(value) > limit:
        raise InvalidRecordError(
            f"{what} 过长 (too long): {len(value)} characters, at most {limit}"
        )


def check_row_lengths(row: object, what: str) -> None:
    """Every bounded text column of a row (a mapped table row) about to be inserted."""
    if not isinstance(row, Base):
        return
    for column in row.__table__.columns:
        kind = column.type
        if not isinstance(kind, String) or kind.length is None:
            continue
        value = getattr(row, column.key, None)
        if isinstance(value, str):
            check_length(value, kind.length, f"{what}: {_FIELD_WORDS.get(column.key, column.key)}")


def consent_date_problem(day: date, today: date) -> str | None:
    """Why a consent dated ``day`` cannot be right, or None when it is plausible."""
    if day > today + _CLOCK_SLACK:
        return f"同意日期在未来 (consent date {day} is in the future)"
    if day < EARLIEST_CONSENT:
        return f"同意日期不合理 (consent date {day} is before {EARLIEST_CONSENT})"
    return None


def check_consent_time(collected_at: datetime, now: datetime, who: str) -> None:
    """Refuse a consent collected in the future or implausibly long ago."""
    problem = consent_date_problem(collected_at.astimezone(now.tzinfo).date(), now.date())
    if problem is not None:
        raise InvalidRecordError(f"consent for {who}: {problem}")


#: A stay in a room: move-in day and move-out day (None: still there). The move-out day
#: itself is free for the next tenant.
Stay = tuple[date, date | None]


def peak_occupancy(stays: Sequence[Stay], start: date, end: date | None) -> int:
    """Most of these stays in the room on one day within [start, end) (end None: open)."""
    # Occupancy only rises at a move-in, so the peak is at ``start`` or at some move-in.
    points = {start} | {move_in for move_in, _ in stays if move_in > start}
    if end is not None:
        points = {p for p in points if p < end}
    best = 0
    for day in points:
        n = sum(1 for move_in, out in stays if move_in <= day and (out is None or day < out))
        best = max(best, n)
    return best
