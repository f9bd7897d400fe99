"""Not-seen reconciliation: "please confirm" tasks for landlords of tenants no camera has seen."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cunan.audit.log import AuditLog, system_actor
from cunan.duties.clock import Clock, local_date, start_of_day, system_clock
from cunan.duties.departures import is_current
from cunan.duties.settings import DutySettings
from cunan.registry.errors import InvalidRecordError, NotFoundError
from cunan.storage.database import Database
from cunan.storage.duty_tables import ConfirmationTask
from cunan.storage.enums import PersonCategory, PersonStatus
from cunan.storage.pipeline_tables import Sighting
from cunan.storage.tables import FaceTemplate, Person, Tenancy

logger = logging.getLogger(__name__)

ACTION_RECONCILE = "duties.reconcile"
ACTION_TASK_CONFIRM = "task.confirm"
ACTION_TASK_CLOSE = "task.close"


@dataclass(frozen=True, slots=True)
class TaskView:
    id: int
    tenancy_id: int
    person_id: int
    landlord_id: int | None
    not_seen_since: datetime
    days_not_seen: int
    status: str
    opened_at: datetime
    closed_at: datetime | None
    outcome: str | None


@dataclass(slots=True)
class ReconcileResult:
    """Task ids opened and closed by one reconciliation run."""

    opened: list[int] = field(default_factory=list)
    closed_sighted: list[int] = field(default_factory=list)
    closed_tenancy_ended: list[int] = field(default_factory=list)


def _view(row: ConfirmationTask) -> TaskView:
    return TaskView(
        id=row.id,
        tenancy_id=row.tenancy_id,
        person_id=row.person_id,
        landlord_id=row.landlord_id,
        not_seen_since=row.not_seen_since,
        days_not_seen=row.days_not_seen,
        status=row.status,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        outcome=row.outcome,
    )


class NotSeenReconciler:
    """Opens one task per current tenancy whose tenant no camera has seen for
    ``not_seen_days``; closes it on a confirmation, a departure or a new sighting.

    "Last seen" is the latest of: the newest known sighting of the person, the landlord's
    last "still living here" confirmation for the tenancy, the start of the move-in day, and
    the person's first stored face template (before that no camera could recognise them).
    Tenants without face data are skipped: cameras cannot see them, so silence means nothing.
    """

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        settings: DutySettings | None = None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.database = database
        self.audit = audit
        self.settings = settings or DutySettings()
        self._clock = clock

    def reconcile(self, *, actor: str | None = None) -> ReconcileResult:
        now = self._clock()
        today = local_date(now, self.settings.zone)
        result = ReconcileResult()
        with self.database.transaction() as session:
            self._close_stale(session, today, now, result)
            self._open_new(session, today, now, result)
            if result.opened or result.closed_sighted or result.closed_tenancy_ended:
                self.audit.record(
                    ACTION_RECONCILE,
                    actor=actor or system_actor(),
                    target_type="confirmation_task",
                    details={
                        "tasks_opened": len(result.opened),
                        "tasks_closed_sighted": len(result.closed_sighted),
                        "tasks_closed_tenancy_ended": len(result.closed_tenancy_ended),
                        "not_seen_days": self.settings.not_seen_days,
                    },
                    session=session,
                )
        logger.info(
            "reconciliation: %d task(s) opened, %d closed by a sighting, %d by a move-out",
            len(result.opened),
            len(result.closed_sighted),
            len(result.closed_tenancy_ended),
        )
        return result

    def _close_stale(
        self, session: Session, today: date, now: datetime, result: ReconcileResult
    ) -> None:
        tasks = session.scalars(
            select(ConfirmationTask).where(ConfirmationTask.status == "open")
        ).all()
        if not tasks:
            return
        last_seen = _last_sightings(session, [t.person_id for t in tasks])
        for task in tasks:
            tenancy = session.get(Tenancy, task.tenancy_id)
            if tenancy is None or not is_current(tenancy, today):
                _close(task, "tenancy_ended", system_actor(), now)
                result.closed_tenancy_ended.append(task.id)
                continue
            seen = last_seen.get(task.person_id)
            if seen is not None and seen > task.not_seen_since:
                _close(task, "sighted", system_actor(), now)
                result.closed_sighted.append(task.id)
        session.flush()

    def _open_new(
        self, session: Session, today: date, now: datetime, result: ReconcileResult
    ) -> None:
        zone = self.settings.zone
        window = timedelta(days=self.settings.not_seen_days)
        has_face = select(FaceTemplate.id).where(FaceTemplate.person_id == Person.id).exists()
        rows = session.execute(
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
        ).scalars()
        tenancies = list(rows)
        if not tenancies:
            return
        person_ids = sorted({t.person_id for t in tenancies})
        tenancy_ids = [t.id for t in tenancies]
        last_seen = _last_sightings(session, person_ids)
        enrolled = _pairs(
            session.execute(
                select(FaceTemplate.person_id, func.min(FaceTemplate.created_at))
                .where(FaceTemplate.person_id.in_(person_ids))
                .group_by(FaceTemplate.person_id)
            )
        )
        confirmed = _pairs(
            session.execute(
                select(ConfirmationTask.tenancy_id, func.max(ConfirmationTask.closed_at))
                .where(
                    ConfirmationTask.tenancy_id.in_(tenancy_ids),
                    ConfirmationTask.outcome == "still_living",
                )
                .group_by(ConfirmationTask.tenancy_id)
            )
        )
        already_open = set(
            session.scalars(
                select(ConfirmationTask.tenancy_id).where(
                    ConfirmationTask.tenancy_id.in_(tenancy_ids),
                    ConfirmationTask.status == "open",
                )
            )
        )
        for tenancy in tenancies:
            if tenancy.id in already_open:
                continue
            candidates = [
                start_of_day(tenancy.move_in, zone),
                _aware(enrolled.get(tenancy.person_id)),
                _aware(last_seen.get(tenancy.person_id)),
                _aware(confirmed.get(tenancy.id)),
            ]
            since = max(c for c in candidates if c is not None)
            if now - since < window:
                continue
            task = ConfirmationTask(
                tenancy_id=tenancy.id,
                person_id=tenancy.person_id,
                landlord_id=tenancy.landlord_id,
                not_seen_since=since,
                days_not_seen=(now - since).days,
                status="open",
                opened_at=now,
            )
            session.add(task)
            session.flush()
            result.opened.append(task.id)

    # -- landlord's answers ------------------------------------------------------------------

    def confirm(self, task_id: int, *, confirmed_by: str, actor: str) -> TaskView:
        """The landlord confirms the tenant still lives there: the task closes and the
        not-seen clock restarts from now (if they moved out, report the departure instead)."""
        who = (confirmed_by or "").strip()
        if not who:
            raise InvalidRecordError("say who confirmed (--by)")
        now = self._clock()
        with self.database.transaction() as session:
            task = session.get(ConfirmationTask, task_id, with_for_update=True)
            if task is None:
                raise NotFoundError("confirmation task", task_id)
            if task.status != "open":
                raise InvalidRecordError(f"confirmation task {task_id} is already closed")
            _close(task, "still_living", who, now)
            self.audit.record(
                ACTION_TASK_CONFIRM,
                actor=actor,
                target_type="confirmation_task",
                target_id=task_id,
                details={"person_id": task.person_id, "outcome": "still_living"},
                session=session,
            )
            session.flush()
            return _view(task)

    def on_sighting(self, person_id: int, seen_at: datetime) -> int:
        """A known sighting of ``person_id``: close their open tasks at once (the pipeline
        calls this per ``sighting.decided``; the daily run catches any it missed)."""
        with self.database.transaction() as session:
            tasks = session.scalars(
                select(ConfirmationTask).where(
                    ConfirmationTask.person_id == person_id,
                    ConfirmationTask.status == "open",
                    ConfirmationTask.not_seen_since < seen_at,
                )
            ).all()
            for task in tasks:
                _close(task, "sighted", system_actor(), self._clock())
            if tasks:
                self.audit.record(
                    ACTION_TASK_CLOSE,
                    actor=system_actor(),
                    target_type="person",
                    target_id=person_id,
                    details={"tasks_closed": len(tasks), "outcome": "sighted"},
                    session=session,
                )
        return len(tasks)

    def tasks(self, *, open_only: bool = True, landlord_id: int | None = None) -> list[TaskView]:
        with self.database.transaction() as session:
            query = select(ConfirmationTask).order_by(ConfirmationTask.id)
            if open_only:
                query = query.where(ConfirmationTask.status == "open")
            if landlord_id is not None:
                query = query.where(ConfirmationTask.landlord_id == landlord_id)
            return [_view(t) for t in session.scalars(query)]


def _close(task: ConfirmationTask, outcome: str, by: str, when: datetime) -> None:
    task.status = "closed"
    task.outcome = outcome
    task.closed_by = by
    task.closed_at = when


def _aware(moment: datetime | None) -> datetime | None:
    # Defensive: an aggregate that lost the column type would come back naive UTC on SQLite.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _pairs(rows: Iterable[Any]) -> dict[int, datetime]:
    """Id -> aware moment, from (id, aggregate moment) rows; rows with a NULL dropped."""
    out: dict[int, datetime] = {}
    for row in rows:
        key: int | None = row[0]
        aware = _aware(row[1])
        if key is not None and aware is not None:
            out[key] = aware
    return out


def _last_sightings(session: Session, person_ids: list[int]) -> dict[int, datetime]:
    if not person_ids:
        return {}
    return _pairs(
        session.execute(
            select(Sighting.person_id, func.max(Sighting.started_at))
            .where(Sighting.decision == "known", Sighting.person_id.in_(person_ids))
            .group_by(Sighting.person_id)
        )
    )
