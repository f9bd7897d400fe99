"""Queries of the departure and not-seen duties: move-out reports, tenancies, confirmation tasks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cunan.storage.duty_tables import ConfirmationTask, DepartureReport
from cunan.storage.enums import PersonCategory, PersonStatus
from cunan.storage.pipeline_tables import Sighting
from cunan.storage.tables import FaceTemplate, Person, Tenancy

#: ``confirmation_tasks.status`` of a task waiting for an answer.
OPEN = "open"


class OverdueRow(NamedTuple):
    """A tenancy of the overdue-departures list, read as columns."""

    tenancy_id: int
    person_id: int
    room_id: int
    landlord_id: int | None
    #: The move-out reported (late reports) or the expected end (unreported).
    due_from: date
    #: The report's deadline (late reports); the expected end again for unreported ones.
    deadline: date
    reported_at: datetime | None = None


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands stored UTC moments back naive, PostgreSQL aware.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class DutiesRepository:
    """All reads and writes the departure and reconciliation duties need, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def flush(self) -> None:
        """Write pending changes of loaded rows now (constraint errors surface here)."""
        self.session.flush()

    # -- tenancies and tenants ---------------------------------------------------------------

    def lock_tenancy(self, tenancy_id: int) -> Tenancy | None:
        """The tenancy, its row locked until the transaction ends (PostgreSQL: two reports of
        one move-out run one after the other; SQLite's BEGIN IMMEDIATE already does that)."""
        return self.session.get(Tenancy, tenancy_id, with_for_update=True)

    def open_tenancy_ids(self, person_id: int) -> list[int]:
        """Ids of the person's tenancies without a recorded move-out, in id order."""
        return list(
            self.session.scalars(
                select(Tenancy.id)
                .where(Tenancy.person_id == person_id, Tenancy.move_out.is_(None))
                .order_by(Tenancy.id)
            )
        )

    def active_tenants_moved_out_by(self, day: date) -> Sequence[Person]:
        """Active tenants with at least one tenancy whose move-out is on or before ``day``, in
        id order (whether they still live elsewhere is for the caller to judge)."""
        return self.session.scalars(
            select(Person)
            .where(
                Person.category == PersonCategory.TENANT,
                Person.status == PersonStatus.ACTIVE,
                Person.id.in_(select(Tenancy.person_id).where(Tenancy.move_out <= day)),
            )
            .order_by(Person.id)
        ).all()

    def unreported_tenancies(self, *, expected_end_by: date) -> Sequence[Tenancy]:
        """Tenancies without a move-out whose expected end is on or before ``expected_end_by``,
        of people who are not archived."""
        return self.session.scalars(
            select(Tenancy)
            .join(Person, Person.id == Tenancy.person_id)
            .where(
                Tenancy.move_out.is_(None),
                Tenancy.expected_end.is_not(None),
                Tenancy.expected_end <= expected_end_by,
                Person.status != PersonStatus.ARCHIVED,
            )
        ).all()

    def _unreported(self, expected_end_by: date) -> Any:
        return (
            select(
                Tenancy.id,
                Tenancy.person_id,
                Tenancy.room_id,
                Tenancy.landlord_id,
                Tenancy.expected_end,
            )
            .join(Person, Person.id == Tenancy.person_id)
            .where(
                Tenancy.move_out.is_(None),
                Tenancy.expected_end.is_not(None),
                Tenancy.expected_end <= expected_end_by,
                Person.status != PersonStatus.ARCHIVED,
            )
        )

    def unreported_rows(self, *, expected_end_by: date) -> list[OverdueRow]:
        """:meth:`unreported_tenancies` as plain rows (columns only, no ORM objects): the
        overdue-departures list reads these on every dashboard."""
        return [
            OverdueRow(int(t), int(p), int(r), None if lid is None else int(lid), end, end)
            for t, p, r, lid, end in self.session.execute(self._unreported(expected_end_by))
        ]

    def count_unreported(self, *, expected_end_by: date) -> int:
        """How many :meth:`unreported_rows` there are, counted in SQL."""
        query = select(func.count()).select_from(self._unreported(expected_end_by).subquery())
        return int(self.session.scalar(query) or 0)

    def _late(self, reported_since: datetime | None) -> Any:
        query = (
            select(
                Tenancy.id,
                Tenancy.person_id,
                Tenancy.room_id,
                Tenancy.landlord_id,
                DepartureReport.move_out,
                DepartureReport.deadline,
                DepartureReport.reported_at,
            )
            .join(Tenancy, Tenancy.id == DepartureReport.tenancy_id)
            .where(DepartureReport.late.is_(True))
        )
        if reported_since is not None:
            query = query.where(DepartureReport.reported_at >= reported_since)
        return query

    def late_report_rows(self, *, reported_since: datetime | None = None) -> list[OverdueRow]:
        """:meth:`late_reports` made at or after ``reported_since``, as plain rows: the
        tenancy, and the report's move-out, deadline and time."""
        return [
            OverdueRow(
                int(t), int(p), int(r), None if lid is None else int(lid), out, due, _utc(at)
            )
            for t, p, r, lid, out, due, at in self.session.execute(self._late(reported_since))
        ]

    def count_late_reports(self, *, reported_since: datetime) -> int:
        """How many :meth:`late_report_rows` there are since then, counted in SQL."""
        query = select(func.count()).select_from(self._late(reported_since).subquery())
        return int(self.session.scalar(query) or 0)

    def current_tenancies_with_face_data(self, today: date) -> Sequence[Tenancy]:
        """Tenancies lived in on ``today`` (move-in on or before it, move-out after it) by active
        tenants with at least one stored face template, in id order."""
        has_face = select(FaceTemplate.id).where(FaceTemplate.person_id == Person.id).exists()
        return self.session.scalars(
            select(Tenancy)
            .join(Person, Person.id == Tenancy.person_id)
            .where(
                Person.category == PersonCategory.TENANT,
                Person.status == PersonStatus.ACTIVE,
                Tenancy.move_in <= today,
                (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today),
                has_face,
            )
            .order_by(Tenancy.id)
        ).all()

    def first_template_times(self, person_ids: Sequence[int]) -> dict[int, datetime]:
        """Person id -> when their first stored face template was made (aware UTC)."""
        if not person_ids:
            return {}
        return _moments(
            self.session.execute(
                select(FaceTemplate.person_id, func.min(FaceTemplate.created_at))
                .where(FaceTemplate.person_id.in_(person_ids))
                .group_by(FaceTemplate.person_id)
            )
        )

    def last_known_sightings(self, person_ids: Sequence[int]) -> dict[int, datetime]:
        """Person id -> start of their newest sighting decided ``known`` (aware UTC)."""
        if not person_ids:
            return {}
        return _moments(
            self.session.execute(
                select(Sighting.person_id, func.max(Sighting.started_at))
                .where(Sighting.decision == "known", Sighting.person_id.in_(person_ids))
                .group_by(Sighting.person_id)
            )
        )

    # -- departure reports -------------------------------------------------------------------

    def add_report(self, report: DepartureReport) -> DepartureReport:
        """Store a move-out report; its id is assigned at once."""
        self.session.add(report)
        self.session.flush()
        return report

    def departure_reports(self, *, person_id: int | None = None) -> Sequence[DepartureReport]:
        """Move-out reports in id order, optionally of one person."""
        query = select(DepartureReport).order_by(DepartureReport.id)
        if person_id is not None:
            query = query.where(DepartureReport.person_id == person_id)
        return self.session.scalars(query).all()

    def late_reports(self) -> list[tuple[DepartureReport, Tenancy]]:
        """Every move-out report made after its deadline, with its tenancy."""
        rows = self.session.execute(
            select(DepartureReport, Tenancy)
            .join(Tenancy, Tenancy.id == DepartureReport.tenancy_id)
            .where(DepartureReport.late.is_(True))
        )
        return [(report, tenancy) for report, tenancy in rows]

    # -- confirmation tasks ------------------------------------------------------------------

    def add_task(self, task: ConfirmationTask) -> ConfirmationTask:
        """Store a new task; its id is assigned at once (a second open task of the same
        tenancy fails here: the open-task index admits one)."""
        self.session.add(task)
        self.session.flush()
        return task

    def lock_task(self, task_id: int) -> ConfirmationTask | None:
        """The task, its row locked until the transaction ends (one answer wins)."""
        return self.session.get(ConfirmationTask, task_id, with_for_update=True)

    def tasks(
        self, *, open_only: bool = True, landlord_id: int | None = None
    ) -> Sequence[ConfirmationTask]:
        """Tasks in id order: only open ones unless ``open_only`` is False, optionally of one
        landlord."""
        query = select(ConfirmationTask).order_by(ConfirmationTask.id)
        if open_only:
            query = query.where(ConfirmationTask.status == OPEN)
        if landlord_id is not None:
            query = query.where(ConfirmationTask.landlord_id == landlord_id)
        return self.session.scalars(query).all()

    def open_tasks(
        self,
        *,
        tenancy_id: int | None = None,
        person_id: int | None = None,
        not_seen_before: datetime | None = None,
    ) -> Sequence[ConfirmationTask]:
        """Open tasks, optionally of one tenancy or person, or counting from before a moment."""
        query = select(ConfirmationTask).where(ConfirmationTask.status == OPEN)
        if tenancy_id is not None:
            query = query.where(ConfirmationTask.tenancy_id == tenancy_id)
        if person_id is not None:
            query = query.where(ConfirmationTask.person_id == person_id)
        if not_seen_before is not None:
            query = query.where(ConfirmationTask.not_seen_since < not_seen_before)
        return self.session.scalars(query).all()

    def tenancies_with_open_task(self, tenancy_ids: Sequence[int]) -> set[int]:
        """Those of ``tenancy_ids`` that have an open task."""
        return set(
            self.session.scalars(
                select(ConfirmationTask.tenancy_id).where(
                    ConfirmationTask.tenancy_id.in_(tenancy_ids),
                    ConfirmationTask.status == OPEN,
                )
            )
        )

    def last_confirmations(self, tenancy_ids: Sequence[int]) -> dict[int, datetime]:
        """Tenancy id -> when the landlord last confirmed the tenant still lives there."""
        return _moments(
            self.session.execute(
                select(ConfirmationTask.tenancy_id, func.max(ConfirmationTask.closed_at))
                .where(
                    ConfirmationTask.tenancy_id.in_(tenancy_ids),
                    ConfirmationTask.outcome == "still_living",
                )
                .group_by(ConfirmationTask.tenancy_id)
            )
        )

    @staticmethod
    def close_task(task: ConfirmationTask, *, outcome: str, closed_by: str, when: datetime) -> None:
        """Close an open task with its outcome (written at the next flush)."""
        task.status = "closed"
        task.outcome = outcome
        task.closed_by = closed_by
        task.closed_at = when


def _aware(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware datetime (naive ones are UTC as stored)."""
    # Defensive: an aggregate that lost the column type would come back naive UTC on SQLite.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _moments(rows: Iterable[Any]) -> dict[int, datetime]:
    """Id -> aware moment, from (id, aggregate moment) rows; rows with a NULL dropped."""
    out: dict[int, datetime] = {}
    for row in rows:
        key: int | None = row[0]
        moment = _aware(row[1])
        if key is not None and moment is not None:
            out[key] = moment
    return out
