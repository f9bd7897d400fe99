"""Not-seen reconciliation: "please confirm" tasks for landlords of tenants no camera has seen."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from cunan.audit.log import AuditAction, system_actor
from cunan.duties.audited import AuditedDuty
from cunan.duties.clock import local_date, start_of_day
from cunan.duties.departures import is_current
from cunan.registry.errors import InvalidRecordError, NotFoundError
from cunan.storage.duties_repository import DutiesRepository
from cunan.storage.duty_tables import ConfirmationTask
from cunan.storage.repositories import RegistryRepository

logger = logging.getLogger(__name__)

ACTION_RECONCILE = AuditAction.DUTIES_RECONCILE
ACTION_TASK_CONFIRM = AuditAction.TASK_CONFIRM
ACTION_TASK_CLOSE = AuditAction.TASK_CLOSE


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


class NotSeenReconciler(AuditedDuty):
    """Opens one task per current tenancy whose tenant no camera has seen for
    ``not_seen_days``; closes it on a confirmation, a departure or a new sighting.

    "Last seen" is the latest of: the newest known sighting of the person, the landlord's
    last "still living here" confirmation for the tenancy, the start of the move-in day, and
    the person's first stored face template (before that no camera could recognise them).
    Tenants without face data are skipped: cameras cannot see them, so silence means nothing.
    """

    def reconcile(self, *, actor: str | None = None) -> ReconcileResult:
        now = self._clock()
        today = local_date(now, self.settings.zone)
        result = ReconcileResult()
        with self.database.transaction() as session:
            repo = DutiesRepository(session)
            self._close_stale(repo, RegistryRepository(session), today, now, result)
            self._open_new(repo, today, now, result)
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
        self,
        repo: DutiesRepository,
        registry: RegistryRepository,
        today: date,
        now: datetime,
        result: ReconcileResult,
    ) -> None:
        tasks = repo.open_tasks()
        if not tasks:
            return
        last_seen = repo.last_known_sightings([t.person_id for t in tasks])
        for task in tasks:
            tenancy = registry.tenancy(task.tenancy_id)
            if tenancy is None or not is_current(tenancy, today):
                repo.close_task(task, outcome="tenancy_ended", closed_by=system_actor(), when=now)
                result.closed_tenancy_ended.append(task.id)
                continue
            seen = last_seen.get(task.person_id)
            if seen is not None and seen > task.not_seen_since:
                repo.close_task(task, outcome="sighted", closed_by=system_actor(), when=now)
                result.closed_sighted.append(task.id)
        repo.flush()

    def _open_new(
        self, repo: DutiesRepository, today: date, now: datetime, result: ReconcileResult
    ) -> None:
        zone = self.settings.zone
        window = timedelta(days=self.settings.not_seen_days)
        tenancies = repo.current_tenancies_with_face_data(today)
        if not tenancies:
            return
        person_ids = sorted({t.person_id for t in tenancies})
        tenancy_ids = [t.id for t in tenancies]
        last_seen = repo.last_known_sightings(person_ids)
        enrolled = repo.first_template_times(person_ids)
        confirmed = repo.last_confirmations(tenancy_ids)
        already_open = repo.tenancies_with_open_task(tenancy_ids)
        for tenancy in tenancies:
            if tenancy.id in already_open:
                continue
            candidates = [
                start_of_day(tenancy.move_in, zone),
                enrolled.get(tenancy.person_id),
                last_seen.get(tenancy.person_id),
                confirmed.get(tenancy.id),
            ]
            since = max(c for c in candidates if c is not None)
            if now - since < window:
                continue
            task = repo.add_task(
                ConfirmationTask(
                    tenancy_id=tenancy.id,
                    person_id=tenancy.person_id,
                    landlord_id=tenancy.landlord_id,
                    not_seen_since=since,
                    days_not_seen=(now - since).days,
                    status="open",
                    opened_at=now,
                )
            )
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
            repo = DutiesRepository(session)
            task = repo.lock_task(task_id)
            if task is None:
                raise NotFoundError("confirmation task", task_id)
            if task.status != "open":
                raise InvalidRecordError(f"confirmation task {task_id} is already closed")
            repo.close_task(task, outcome="still_living", closed_by=who, when=now)
            self.audit.record(
                ACTION_TASK_CONFIRM,
                actor=actor,
                target_type="confirmation_task",
                target_id=task_id,
                details={"person_id": task.person_id, "outcome": "still_living"},
                session=session,
            )
            repo.flush()
            return _view(task)

    def on_sighting(self, person_id: int, seen_at: datetime) -> int:
        """A known sighting of ``person_id``: close their open tasks at once (the pipeline
        calls this per ``sighting.decided``; the daily run catches any it missed)."""
        with self.database.transaction() as session:
            repo = DutiesRepository(session)
            tasks = repo.open_tasks(person_id=person_id, not_seen_before=seen_at)
            for task in tasks:
                repo.close_task(
                    task, outcome="sighted", closed_by=system_actor(), when=self._clock()
                )
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
        with self.database.read() as session:
            rows = DutiesRepository(session).tasks(open_only=open_only, landlord_id=landlord_id)
            return [_view(t) for t in rows]
