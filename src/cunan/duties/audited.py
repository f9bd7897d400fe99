"""The base of the duties that change records: database, audit log, village settings and clock."""

from __future__ import annotations

from datetime import date

from cunan.audit.log import AuditLog
from cunan.duties.clock import Clock, local_date, system_clock
from cunan.duties.settings import DutySettings
from cunan.storage.database import Database


class AuditedDuty:
    """What every record-changing duty holds: it writes to ``database``, records each change
    in ``audit`` and judges days by ``settings.zone`` on ``clock``."""

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

    def today(self) -> date:
        """The village's calendar day now."""
        return local_date(self._clock(), self.settings.zone)
