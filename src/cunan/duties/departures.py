"""Move-out reports against the village deadline, overdue tenancies, and marking departures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cunan.audit.log import AuditAction, system_actor
from cunan.duties.audited import AuditedDuty
from cunan.duties.clock import local_date, start_of_day
from cunan.duties.settings import DutySettings
from cunan.registry.errors import InvalidRecordError, NotFoundError
from cunan.storage.duties_repository import DutiesRepository, OverdueRow
from cunan.storage.duty_tables import DepartureReport
from cunan.storage.enums import PersonCategory, PersonStatus
from cunan.storage.repositories import RegistryRepository
from cunan.storage.tables import Person, Tenancy

logger = logging.getLogger(__name__)

#: Audit actions of this module.
ACTION_DEPARTURE_REPORT = AuditAction.DEPARTURE_REPORT
ACTION_MARK_DEPARTED = AuditAction.DEPARTURE_MARK

#: Kinds of overdue tenancy (see ``DepartureService.overdue``).
OVERDUE_UNREPORTED = "unreported"
OVERDUE_LATE_REPORT = "late_report"


@dataclass(frozen=True, slots=True)
class DepartureReportView:
    """A recorded move-out report and its verdict against the deadline."""

    id: int
    tenancy_id: int
    person_id: int
    move_out: date
    deadline: date
    late: bool
    reported_by: str
    reported_at: datetime
    #: Days between the move-out and the (local) day of the report.
    days_after_move_out: int
    #: Whether this report marked the person departed (no other current tenancy); known only
    #: when the report is made, False in listings.
    person_departed: bool


@dataclass(frozen=True, slots=True)
class OverdueTenancy:
    """A tenancy whose departure was not reported in time (``kind`` says how)."""

    kind: str
    tenancy_id: int
    person_id: int
    room_id: int
    landlord_id: int | None
    #: The move-out (late reports) or the expected end (unreported).
    due_from: date
    deadline: date
    #: Days past the deadline: on the report day (late reports) or today (unreported).
    days_overdue: int
    reported_at: datetime | None

    @classmethod
    def of_row(
        cls,
        kind: str,
        row: OverdueRow,
        *,
        deadline: date,
        days_overdue: int,
        reported_at: datetime | None = None,
    ) -> OverdueTenancy:
        return cls(
            kind=kind,
            tenancy_id=row.tenancy_id,
            person_id=row.person_id,
            room_id=row.room_id,
            landlord_id=row.landlord_id,
            due_from=row.due_from,
            deadline=deadline,
            days_overdue=days_overdue,
            reported_at=reported_at,
        )


def deadline_for(move_out: date, settings: DutySettings) -> date:
    """The last day a move-out report is on time."""
    return move_out + timedelta(days=settings.departure_deadline_days)


def is_current(tenancy: Tenancy, today: date) -> bool:
    """Whether the tenant lives in the room on ``today`` (move-out is the first day away)."""
    return tenancy.move_in <= today and (tenancy.move_out is None or today < tenancy.move_out)


def has_moved_out(tenancies: Sequence[Tenancy], today: date) -> bool:
    """Whether a tenant has left: they had tenancies and every one ended on or before ``today``
    (a tenancy that starts later, moving house within the village, keeps them here)."""
    return bool(tenancies) and all(
        t.move_out is not None and t.move_out <= today for t in tenancies
    )


def tenants_gone(
    duties: DutiesRepository, registry: RegistryRepository, today: date
) -> list[Person]:
    """Active tenants who have moved out of every tenancy by ``today``, in id order: the ones
    :meth:`DepartureService.mark_departures` marks departed."""
    return [
        person
        for person in duties.active_tenants_moved_out_by(today)
        if has_moved_out(registry.tenancies_of(person.id), today)
    ]


class DepartureService(AuditedDuty):
    """Records move-out reports and lists overdue tenancies; every change is audited."""

    # -- reports -----------------------------------------------------------------------------

    def tenancy_to_report(self, person_id: int) -> int:
        """The person's one tenancy without a move-out (the one a report is about)."""
        with self.database.read() as session:
            if RegistryRepository(session).person(person_id) is None:
                raise NotFoundError("person", person_id)
            open_ids = DutiesRepository(session).open_tenancy_ids(person_id)
        if len(open_ids) != 1:
            raise InvalidRecordError(
                f"person {person_id} has {len(open_ids)} tenancies without a move-out; "
                "name the tenancy instead"
                + (f" (one of {', '.join(map(str, open_ids))})" if open_ids else "")
            )
        return open_ids[0]

    def report(
        self,
        tenancy_id: int,
        *,
        move_out: date,
        reported_by: str,
        actor: str,
        reported_at: datetime | None = None,
    ) -> DepartureReportView:
        """Record that a tenant moved out on ``move_out``; late if reported (local day) after
        move-out + ``departure_deadline_days``. Closes the tenancy's open confirmation task
        and marks the person departed if no other tenancy is current."""
        who = (reported_by or "").strip()
        if not who:
            raise InvalidRecordError("say who reported the move-out (--by)")
        when = reported_at or self._clock()
        report_day = local_date(when, self.settings.zone)
        # A move-out reported in advance is on time; the daily job marks the person departed
        # once the day comes (``mark_departures``).
        deadline = deadline_for(move_out, self.settings)
        late = report_day > deadline
        with self.database.transaction() as session:
            repo = DutiesRepository(session)
            registry = RegistryRepository(session)
            tenancy = repo.lock_tenancy(tenancy_id)
            if tenancy is None:
                raise NotFoundError("tenancy", tenancy_id)
            if move_out < tenancy.move_in:
                raise InvalidRecordError(
                    f"tenancy {tenancy_id}: move-out {move_out} is before move-in {tenancy.move_in}"
                )
            if tenancy.move_out is not None:
                raise InvalidRecordError(
                    f"tenancy {tenancy_id} already ended on {tenancy.move_out}"
                )
            tenancy.move_out = move_out
            tenancy.move_out_reported_by = who
            tenancy.move_out_reported_at = when
            row = repo.add_report(
                DepartureReport(
                    tenancy_id=tenancy_id,
                    person_id=tenancy.person_id,
                    move_out=move_out,
                    deadline=deadline,
                    late=late,
                    reported_by=who,
                    reported_at=when,
                )
            )
            tasks = repo.open_tasks(tenancy_id=tenancy_id)
            for task in tasks:
                repo.close_task(task, outcome="departed", closed_by=who, when=when)
            closed = len(tasks)
            repo.flush()
            departed = _mark_if_departed(registry, registry.person(tenancy.person_id), report_day)
            days_after = (report_day - move_out).days
            self.audit.record(
                ACTION_DEPARTURE_REPORT,
                actor=actor,
                target_type="tenancy",
                target_id=tenancy_id,
                details={
                    "person_id": tenancy.person_id,
                    "late": late,
                    "days_after_move_out": days_after,
                    "deadline_days": self.settings.departure_deadline_days,
                    "tasks_closed": closed,
                    "person_departed": departed,
                },
                session=session,
            )
            view = self._view(row, person_departed=departed)
        logger.info(
            "move-out of tenancy %d reported %s (%d day(s) after move-out)",
            tenancy_id,
            "LATE" if late else "on time",
            days_after,
        )
        return view

    def reports(self, *, person_id: int | None = None) -> list[DepartureReportView]:
        with self.database.read() as session:
            rows = DutiesRepository(session).departure_reports(person_id=person_id)
            return [self._view(r) for r in rows]

    def _view(self, row: DepartureReport, *, person_departed: bool = False) -> DepartureReportView:
        report_day = local_date(row.reported_at, self.settings.zone)
        return DepartureReportView(
            id=row.id,
            tenancy_id=row.tenancy_id,
            person_id=row.person_id,
            move_out=row.move_out,
            deadline=row.deadline,
            late=row.late,
            reported_by=row.reported_by,
            reported_at=row.reported_at,
            days_after_move_out=(report_day - row.move_out).days,
            person_departed=person_departed,
        )

    # -- overdue -----------------------------------------------------------------------------

    def overdue(self, *, today: date | None = None) -> list[OverdueTenancy]:
        """Overdue tenancies, most overdue first.

        - ``unreported``: no move-out recorded and ``expected_end + deadline_days`` is before
          today (the tenancy was due to end and nobody reported it);
        - ``late_report``: a move-out reported after its deadline, listed for
          ``late_report_window_days`` days after the report.
        """
        day = today or self.today()
        settings = self.settings
        last_due = day - timedelta(days=settings.departure_deadline_days + 1)
        window_start = day - timedelta(days=settings.late_report_window_days)
        out: list[OverdueTenancy] = []
        # Columns, not ORM rows: this list is read on every dashboard view.
        with self.database.read() as session:
            repo = DutiesRepository(session)
            unreported = repo.unreported_rows(expected_end_by=last_due)
            late = repo.late_report_rows(reported_since=start_of_day(window_start, settings.zone))
        for row in unreported:
            deadline = deadline_for(row.due_from, settings)
            out.append(
                OverdueTenancy.of_row(
                    OVERDUE_UNREPORTED, row, deadline=deadline, days_overdue=(day - deadline).days
                )
            )
        for row in late:
            assert row.reported_at is not None
            report_day = local_date(row.reported_at, settings.zone)
            if report_day < window_start:
                continue
            out.append(
                OverdueTenancy.of_row(
                    OVERDUE_LATE_REPORT,
                    row,
                    deadline=row.deadline,
                    days_overdue=(report_day - row.deadline).days,
                    reported_at=row.reported_at,
                )
            )
        out.sort(key=lambda o: (-o.days_overdue, o.tenancy_id))
        return out

    def overdue_counts(self, *, today: date | None = None) -> tuple[int, int]:
        """(unreported, late reports) of :meth:`overdue`, counted in SQL (no row loaded)."""
        day = today or self.today()
        settings = self.settings
        last_due = day - timedelta(days=settings.departure_deadline_days + 1)
        window_start = day - timedelta(days=settings.late_report_window_days)
        with self.database.read() as session:
            repo = DutiesRepository(session)
            return (
                repo.count_unreported(expected_end_by=last_due),
                repo.count_late_reports(reported_since=start_of_day(window_start, settings.zone)),
            )

    # -- departures without a report ---------------------------------------------------------

    def mark_departures(self, *, today: date | None = None, actor: str | None = None) -> list[int]:
        """Mark active tenants departed once none of their tenancies is current (a move-out
        recorded in advance, or through the registry); returns their ids."""
        day = today or self.today()
        with self.database.transaction() as session:
            gone = tenants_gone(DutiesRepository(session), RegistryRepository(session), day)
            for person in gone:
                person.status = PersonStatus.DEPARTED
            marked = [person.id for person in gone]
            if marked:
                self.audit.record(
                    ACTION_MARK_DEPARTED,
                    actor=actor or system_actor(),
                    target_type="person",
                    details={"people": len(marked), "person_ids": marked[:100]},
                    session=session,
                )
        if marked:
            logger.info("marked %d tenant(s) departed (no current tenancy)", len(marked))
        return marked


def _mark_if_departed(registry: RegistryRepository, person: Person | None, today: date) -> bool:
    """Set an active tenant to departed when none of their tenancies is current or ahead."""
    if (
        person is None
        or person.category != PersonCategory.TENANT
        or person.status != PersonStatus.ACTIVE
        or not has_moved_out(registry.tenancies_of(person.id), today)
    ):
        return False
    person.status = PersonStatus.DEPARTED
    return True
