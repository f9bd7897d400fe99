"""The auditor's privacy report: face data held, consents, purges and 1:N searches per day."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cunan.duties.clock import start_of_day
from cunan.duties.counter import FaceDataCount
from cunan.duties.settings import DutySettings
from cunan.errors import InvalidInput
from cunan.storage.database import Database
from cunan.storage.privacy_repository import PrivacyRepository, user_of_actor
from cunan.storage.repositories import RegistryRepository

#: Longest period one report covers (days): the per-day search table stays readable and the
#: SQL that buckets searches by local day stays small.
MAX_REPORT_DAYS = 92
#: The days a report may name: CunAn keeps no record from before, and the far ends of the
#: calendar cannot be turned into UTC moments.
EARLIEST = date(2000, 1, 1)
LATEST = date(9998, 12, 31)
#: Purge entries listed one by one (the count covers them all).
PURGES_LISTED = 50


@dataclass(frozen=True, slots=True)
class SearchDay:
    """How many 1:N searches one account made on one village day."""

    day: date
    actor: str
    #: The account's name for ``user:<id>`` actors, else the actor as recorded.
    who: str
    searches: int


@dataclass(frozen=True, slots=True)
class PurgeRun:
    """One purge recorded in the audit log: what kind of data and how much (counts only)."""

    seq: int
    recorded_at: datetime
    actor: str
    action: str
    target_type: str | None
    counts: dict[str, object]


@dataclass(frozen=True, slots=True)
class PrivacyReport:
    """Face data held now, and what happened to personal data from ``since`` to ``until``
    (village days, both included)."""

    since: date
    until: date
    face_data: FaceDataCount
    people_with_valid_consent: int
    consents_collected: int
    consents_withdrawn: int
    consents_collected_total: int
    consents_withdrawn_total: int
    purges: list[PurgeRun]
    purges_total: int
    searches: list[SearchDay]
    searches_total: int


def report_period(
    since: date | None, until: date | None, today: date, *, default_days: int = 30
) -> tuple[date, date]:
    """The report's days: the last ``default_days`` up to today unless given; refused when
    reversed or longer than :data:`MAX_REPORT_DAYS`."""
    end = until or today
    start = since or end - timedelta(days=default_days - 1)
    for day in (start, end):
        if not EARLIEST <= day <= LATEST:
            raise InvalidInput(f"{day}: choose a day between {EARLIEST} and {LATEST}")
    if start > end:
        raise InvalidInput(f"since {start} is after until {end}")
    if (end - start).days + 1 > MAX_REPORT_DAYS:
        raise InvalidInput(
            f"the period {start} to {end} is longer than {MAX_REPORT_DAYS} days; choose a "
            "shorter one"
        )
    return start, end


def _counts(details: str) -> dict[str, object]:
    try:
        value = json.loads(details)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def build_report(
    database: Database, settings: DutySettings, since: date, until: date
) -> PrivacyReport:
    """The report for the village days ``since``..``until`` (both included)."""
    zone = settings.zone
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    boundaries = [start_of_day(d, zone) for d in days] + [
        start_of_day(until + timedelta(days=1), zone)
    ]
    start, end = boundaries[0], boundaries[-1]
    with database.read() as session:
        # Counted in the report's read-only snapshot (the counter's own call would take
        # SQLite's writer lock, and a report never waits for cameras or imports).
        face_data = FaceDataCount(
            people=RegistryRepository(session).count_people_with_face_data(),
            threshold=settings.filing_threshold,
            warn_at=settings.filing_warn_at,
        )
        repo = PrivacyRepository(session)
        collected = repo.consents_collected(start, end)
        withdrawn = repo.consents_withdrawn(start, end)
        collected_total = repo.consents_collected()
        withdrawn_total = repo.consents_withdrawn()
        valid = repo.people_with_valid_consent()
        purge_rows, purges_total = repo.purges(start, end, limit=PURGES_LISTED)
        purges = [
            PurgeRun(e.seq, e.recorded_at, e.actor, e.action, e.target_type, _counts(e.details))
            for e in purge_rows
        ]
        per_day = repo.searches_per_actor_per_day(boundaries)
        user_ids = sorted({u for a, _, _ in per_day if (u := user_of_actor(a)) is not None})
        names = repo.usernames(user_ids)
    searches = sorted(
        (
            SearchDay(
                day=days[i],
                actor=actor,
                who=_who(actor, names),
                searches=n,
            )
            for actor, i, n in per_day
        ),
        key=lambda s: (s.day, s.who),
    )
    return PrivacyReport(
        since=since,
        until=until,
        face_data=face_data,
        people_with_valid_consent=valid,
        consents_collected=collected,
        consents_withdrawn=withdrawn,
        consents_collected_total=collected_total,
        consents_withdrawn_total=withdrawn_total,
        purges=purges,
        purges_total=purges_total,
        searches=searches,
        searches_total=sum(s.searches for s in searches),
    )


def _who(actor: str, names: dict[int, str]) -> str:
    user = user_of_actor(actor)
    if user is not None and user in names:
        return names[user]
    return actor
