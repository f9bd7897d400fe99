"""Read-only queries of the village statistics: people, rooms, cameras, sightings and cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import MetaData, Table, case, distinct, func, inspect, literal, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cunan.storage.enums import PersonCategory, PersonStatus
from cunan.storage.errors import StorageError
from cunan.storage.pipeline_tables import Camera, Sighting
from cunan.storage.tables import FaceTemplate, Person, Room

#: What reading a cases table of another shape (older or newer) can raise; catch these
#: around :meth:`StatsRepository.case_times` and go on without case figures.
UNREADABLE_CASES: tuple[type[Exception], ...] = (SQLAlchemyError, StorageError, AttributeError)


@dataclass(frozen=True, slots=True)
class CaseTimes:
    """Open cases, and when each verified case was opened and decided (as stored)."""

    open_cases: int
    #: (opened_at, outcome_at) of closed cases with an outcome. Reflected SQLite columns come
    #: back naive (UTC as stored); PostgreSQL's are aware.
    verified: list[tuple[datetime, datetime]]


class StatsRepository:
    """The counts behind the village statistics, on one session; it only reads."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def count_active_people(self, category: PersonCategory, *, with_face_data: bool = False) -> int:
        """Active people of ``category``; only those with a stored face template if asked."""
        query = (
            select(func.count())
            .select_from(Person)
            .where(Person.category == category, Person.status == PersonStatus.ACTIVE)
        )
        if with_face_data:
            query = query.where(
                select(FaceTemplate.id).where(FaceTemplate.person_id == Person.id).exists()
            )
        return int(self.session.scalar(query) or 0)

    def count_rental_houses(self) -> int:
        """Houses with at least one room."""
        return int(self.session.scalar(select(func.count(distinct(Room.house_id)))) or 0)

    def count_rooms(self) -> int:
        return int(self.session.scalar(select(func.count(Room.id))) or 0)

    def camera_names(self) -> list[str]:
        """Every camera's name, sorted."""
        return list(self.session.scalars(select(Camera.name).order_by(Camera.name)))

    def sighting_times(self, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        """(camera name, start) of every sighting started in [start, end)."""
        rows = self.session.execute(
            select(Sighting.camera_name, Sighting.started_at).where(
                Sighting.started_at >= start, Sighting.started_at < end
            )
        )
        return [(name, started) for name, started in rows]

    def sightings_per_day(self, boundaries: Sequence[datetime]) -> list[tuple[str, int, int]]:
        """(camera name, day index, sightings) of the sightings started in each day: day
        ``i`` is [``boundaries[i]``, ``boundaries[i + 1]``). Counted in SQL with plain
        comparisons, so the caller's local-day boundaries (any zone, DST included) hold on
        both engines and no sighting row is loaded."""
        if len(boundaries) < 2:
            return []
        inner = boundaries[1:-1]
        day = (
            case(*[(Sighting.started_at < b, i) for i, b in enumerate(inner)], else_=len(inner))
            if inner
            else literal(0)
        )
        bucketed = (
            select(Sighting.camera_name.label("camera"), day.label("day"))
            .where(Sighting.started_at >= boundaries[0], Sighting.started_at < boundaries[-1])
            .subquery()
        )
        rows = self.session.execute(
            select(bucketed.c.camera, bucketed.c.day, func.count()).group_by(
                bucketed.c.camera, bucketed.c.day
            )
        )
        return [(name, int(i), int(n)) for name, i, n in rows]

    def case_times(self, open_statuses: Sequence[str]) -> CaseTimes | None:
        """Case figures read from the cases table, or None when there is no such table.

        Reflected rather than imported, so statistics work on a database (or an installation)
        without the cases workflow. A table of another shape raises one of
        :data:`UNREADABLE_CASES`.
        """
        connection = self.session.connection()
        if not inspect(connection).has_table("cases"):
            return None
        # Only this table: resolving its foreign keys would reflect half the schema per call.
        cases = Table("cases", MetaData(), autoload_with=connection, resolve_fks=False)
        # Face cases only (gas alarms' cases, migration 0014, are counted by the gas module).
        face = cases.c.kind == "face" if "kind" in cases.c else literal(True)
        open_cases = self.session.scalar(
            select(func.count()).select_from(cases).where(cases.c.status.in_(open_statuses), face)
        )
        rows = self.session.execute(
            select(cases.c.opened_at, cases.c.outcome_at).where(
                face,
                cases.c.status == "closed",
                cases.c.outcome.is_not(None),
                cases.c.outcome_at.is_not(None),
            )
        )
        return CaseTimes(
            open_cases=int(open_cases or 0),
            verified=[(opened, outcome) for opened, outcome in rows],
        )

    def case_flow(self, boundaries: Sequence[datetime]) -> list[tuple[int, int]] | None:
        """(opened, closed) cases in each period ``i`` = [``boundaries[i]``,
        ``boundaries[i + 1]``): opened by ``opened_at``, closed by ``closed_at`` of the cases
        that are closed now (a case merged into another is not counted as closed). None
        without a cases table."""
        if len(boundaries) < 2:
            return []
        connection = self.session.connection()
        if not inspect(connection).has_table("cases"):
            return None
        from cunan.storage.case_tables import Case

        out = [[0, 0] for _ in range(len(boundaries) - 1)]
        inner = boundaries[1:-1]
        for column, slot, extra in (
            (Case.opened_at, 0, []),
            (Case.closed_at, 1, [Case.status == "closed"]),
        ):
            # Bucketed in SQL with plain comparisons: local period starts hold on both engines.
            period = (
                case(*[(column < b, i) for i, b in enumerate(inner)], else_=len(inner))
                if inner
                else literal(0)
            )
            bucketed = (
                select(period.label("period"))
                .where(
                    column >= boundaries[0], column < boundaries[-1], Case.kind == "face", *extra
                )
                .subquery()
            )
            rows = self.session.execute(
                select(bucketed.c.period, func.count()).group_by(bucketed.c.period)
            )
            for i, n in rows:
                out[int(i)][slot] = int(n)
        return [(opened, closed) for opened, closed in out]
