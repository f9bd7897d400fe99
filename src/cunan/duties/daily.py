"""The daily duties wired together: reconcile, purge and count, for the scheduler to run."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cunan.audit.log import AuditLog
from cunan.duties.clock import Clock, system_clock
from cunan.duties.counter import FaceDataCounter
from cunan.duties.departures import DepartureService
from cunan.duties.reconcile import NotSeenReconciler
from cunan.duties.retention import RetentionPurger
from cunan.duties.scheduler import Scheduler
from cunan.duties.settings import DutySettings
from cunan.registry.service import RegistryService
from cunan.storage.database import Database

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Duties:
    """Every duty service over one database, sharing settings and clock."""

    departures: DepartureService
    reconciler: NotSeenReconciler
    purger: RetentionPurger
    counter: FaceDataCounter
    settings: DutySettings

    @classmethod
    def build(
        cls,
        database: Database,
        registry: RegistryService,
        settings: DutySettings | None = None,
        *,
        clock: Clock = system_clock,
    ) -> Duties:
        settings = settings or DutySettings()
        audit = AuditLog(database, clock=clock)
        return cls(
            departures=DepartureService(database, audit, settings, clock=clock),
            reconciler=NotSeenReconciler(database, audit, settings, clock=clock),
            purger=RetentionPurger(database, registry, audit, settings, clock=clock),
            counter=FaceDataCounter(database, settings),
            settings=settings,
        )

    def register(self, scheduler: Scheduler) -> None:
        """Schedule the daily jobs at ``daily_at``: purge first (it marks departures), then
        reconcile (so departed tenants get no task), then the face-data count."""
        at = self.settings.daily_at
        scheduler.add_daily("retention_purge", at, lambda: self.purger.purge())
        scheduler.add_daily("not_seen_reconcile", at, lambda: self.reconciler.reconcile())
        scheduler.add_daily("face_data_counter", at, self.counter.check)
