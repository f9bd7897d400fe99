"""Village statistics for the CLI and the UI: registry, face data, cases, departures, sightings."""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from cunan.duties.clock import Clock, local_date, start_of_day, system_clock
from cunan.duties.counter import FaceDataCount, FaceDataCounter
from cunan.duties.departures import DepartureService
from cunan.duties.settings import DutySettings
from cunan.storage.database import Database
from cunan.storage.enums import PersonCategory
from cunan.storage.stats_repository import UNREADABLE_CASES, StatsRepository

logger = logging.getLogger(__name__)

#: Case statuses that still need work (see cunan.storage.case_tables).
OPEN_CASE_STATUSES = ("open", "assigned")


@dataclass(frozen=True, slots=True)
class CaseNumbers:
    """Case figures; all None when the cases table does not exist (yet)."""

    open_cases: int | None = None
    #: Closed cases with an outcome, the ones the median is over.
    verified_cases: int | None = None
    #: Median of outcome time - opened time over verified cases, in hours.
    median_hours_to_verify: float | None = None


@dataclass(frozen=True, slots=True)
class CasePeriod:
    """Cases opened and closed in one week or month (village days ``start``..``end``)."""

    start: date
    end: date
    opened: int
    closed: int


#: The periods the case flow can be counted in.
CASE_FLOW_PERIODS = ("week", "month")


@dataclass(frozen=True, slots=True)
class SightingsPerDay:
    """Sightings per camera per local day, zero-filled; ``counts[camera][i]`` is ``days[i]``."""

    days: list[date]
    counts: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VillageStats:
    """The statistics of DOMAIN.md workflow 5, as of ``as_of``."""

    as_of: datetime
    residents: int
    tenants: int
    tenants_with_face_data: int
    rental_houses: int
    rental_rooms: int
    cases: CaseNumbers
    overdue_departures: int
    late_departure_reports: int
    face_data: FaceDataCount
    sightings: SightingsPerDay

    @property
    def tenant_face_data_share(self) -> float | None:
        """Share of active tenants with face data (None without tenants)."""
        return self.tenants_with_face_data / self.tenants if self.tenants else None

    def warnings(self) -> list[str]:
        message = self.face_data.message()
        return [message] if message is not None else []

    def as_dict(self) -> dict[str, object]:
        share = self.tenant_face_data_share
        return {
            "as_of": self.as_of.isoformat(),
            "residents": self.residents,
            "tenants": self.tenants,
            "tenants_with_face_data": self.tenants_with_face_data,
            "tenant_face_data_share": None if share is None else round(share, 4),
            "rental_houses": self.rental_houses,
            "rental_rooms": self.rental_rooms,
            "open_cases": self.cases.open_cases,
            "verified_cases": self.cases.verified_cases,
            "median_hours_to_verify": self.cases.median_hours_to_verify,
            "overdue_departures": self.overdue_departures,
            "late_departure_reports": self.late_departure_reports,
            "people_with_face_data": self.face_data.people,
            "filing_threshold": self.face_data.threshold,
            "filing_warn_at": self.face_data.warn_at,
            "filing_warning": self.face_data.warning,
            "sightings_per_camera_per_day": {
                "days": [d.isoformat() for d in self.sightings.days],
                "cameras": {name: list(c) for name, c in sorted(self.sightings.counts.items())},
            },
            "warnings": self.warnings(),
        }


class StatsService:
    """Computes ``VillageStats``; it only reads."""

    def __init__(
        self,
        database: Database,
        settings: DutySettings | None = None,
        *,
        clock: Clock = system_clock,
        departures: DepartureService | None = None,
    ) -> None:
        self.database = database
        self.settings = settings or DutySettings()
        self._clock = clock
        self._counter = FaceDataCounter(database, self.settings)
        self._departures = departures

    def compute(self, *, days: int | None = None) -> VillageStats:
        now = self._clock()
        today = local_date(now, self.settings.zone)
        with self.database.read() as session:
            repo = StatsRepository(session)
            residents = repo.count_active_people(PersonCategory.RESIDENT)
            tenants = repo.count_active_people(PersonCategory.TENANT)
            with_face = repo.count_active_people(PersonCategory.TENANT, with_face_data=True)
            rental_houses = repo.count_rental_houses()
            rental_rooms = repo.count_rooms()
            sightings = self._sightings_per_day(repo, today, days or self.settings.stats_days)
        unreported, late = self._overdue(today)
        face_data = self._counter.count()
        if face_data.warning:
            logger.warning("%s", face_data.message())
        return VillageStats(
            as_of=now,
            residents=residents,
            tenants=tenants,
            tenants_with_face_data=with_face,
            rental_houses=rental_houses,
            rental_rooms=rental_rooms,
            cases=self.case_numbers(),
            overdue_departures=unreported,
            late_departure_reports=late,
            face_data=face_data,
            sightings=sightings,
        )

    def _overdue(self, today: date) -> tuple[int, int]:
        if self._departures is None:
            # Overdue listing reads only; an audit log is never written here.
            from cunan.audit.log import AuditLog

            self._departures = DepartureService(
                self.database, AuditLog(self.database), self.settings, clock=self._clock
            )
        # Counted in SQL: the statistics show the numbers, not the rows.
        return self._departures.overdue_counts(today=today)

    def _sightings_per_day(self, repo: StatsRepository, today: date, days: int) -> SightingsPerDay:
        zone = self.settings.zone
        day_list = [today - timedelta(days=days - 1 - i) for i in range(days)]
        end = start_of_day(today + timedelta(days=1), zone)
        counts: dict[str, list[int]] = defaultdict(lambda: [0] * days)
        for name in repo.camera_names():
            counts[name] = [0] * days
        # Counted per local day in SQL between the village's midnights (exact in any zone).
        boundaries = [start_of_day(d, zone) for d in day_list] + [end]
        for name, i, n in repo.sightings_per_day(boundaries):
            counts[name][i] += n
        return SightingsPerDay(days=day_list, counts=dict(counts))

    def case_flow(self, period: str = "week", count: int = 8) -> list[CasePeriod] | None:
        """Cases opened and closed in each of the last ``count`` weeks or months (village
        calendar, the current one included, oldest first); None without the cases workflow."""
        today = local_date(self._clock(), self.settings.zone)
        starts = period_starts(today, period, count)
        boundaries = [start_of_day(d, self.settings.zone) for d in starts]
        try:
            with self.database.read() as session:
                flow = StatsRepository(session).case_flow(boundaries)
        except UNREADABLE_CASES as exc:
            logger.warning("case statistics unavailable: %s", type(exc).__name__)
            logger.debug("case statistics error", exc_info=True)
            return None
        if flow is None:
            return None
        return [
            CasePeriod(starts[i], starts[i + 1] - timedelta(days=1), opened, closed)
            for i, (opened, closed) in enumerate(flow)
        ]

    def case_numbers(self) -> CaseNumbers:
        """Open cases and median time to verify, read from the cases table if it exists (all
        None without one: a database or an installation without the cases workflow)."""
        try:
            with self.database.read() as session:
                times = StatsRepository(session).case_times(OPEN_CASE_STATUSES)
        except UNREADABLE_CASES as exc:
            # A cases table of another shape (older or newer) must not break the statistics.
            logger.warning("case statistics unavailable: %s", type(exc).__name__)
            logger.debug("case statistics error", exc_info=True)
            return CaseNumbers()
        if times is None:
            return CaseNumbers()
        hours = [_hours(opened, outcome) for opened, outcome in times.verified]
        return CaseNumbers(
            open_cases=times.open_cases,
            verified_cases=len(hours),
            median_hours_to_verify=round(statistics.median(hours), 3) if hours else None,
        )


def period_starts(today: date, period: str, count: int) -> list[date]:
    """The first days of the last ``count`` weeks (Monday) or months up to the one holding
    ``today``, oldest first, and the first day after the current one."""
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        return [monday - timedelta(weeks=count - 1 - i) for i in range(count + 1)]
    if period == "month":
        index = today.year * 12 + today.month - 1
        return [
            date((index - count + 1 + i) // 12, (index - count + 1 + i) % 12 + 1, 1)
            for i in range(count + 1)
        ]
    raise ValueError(f"period {period!r}: one of {', '.join(CASE_FLOW_PERIODS)}")


def _hours(opened: datetime, outcome: datetime) -> float:
    # Reflected SQLite columns come back naive (UTC as stored); PostgreSQL's are aware.
    if (opened.tzinfo is None) != (outcome.tzinfo is None):
        opened, outcome = opened.replace(tzinfo=None), outcome.replace(tzinfo=None)
    return (outcome - opened).total_seconds() / 3600.0
