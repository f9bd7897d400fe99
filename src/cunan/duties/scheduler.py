"""A small in-process daily scheduler: named jobs at a local time of day, with an injected clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cunan.duties.clock import Clock, system_clock

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    name: str
    at: time
    action: Callable[[], object]
    last_run_day: date | None = None
    #: Failures in a row; while > 0 the job is retried at ``retry_at``.
    failures: int = 0
    retry_at: datetime | None = None


class Scheduler:
    """Runs each registered job once per local day, at or after its time of day.

    A job whose time passed while the process was not running runs at the next check
    (``cunan serve`` started at 10:00 still purges today): duties are idempotent, and missing
    a purge would keep data longer than allowed. Runs are remembered in memory only, so a
    restart may run a job twice in one day, which is harmless. A failing job is logged and
    retried after ``retry_initial_s`` (5 min), doubling up to ``retry_max_s`` (1 h), until
    it succeeds; it never stops the others.
    """

    def __init__(
        self,
        zone: ZoneInfo,
        *,
        clock: Clock = system_clock,
        poll_s: float = 30.0,
        retry_initial_s: float = 300.0,
        retry_max_s: float = 3600.0,
    ) -> None:
        self.zone = zone
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self._poll_s = poll_s
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_daily(self, name: str, at: time, action: Callable[[], object]) -> None:
        with self._lock:
            if name in self._jobs:
                raise ValueError(f"a job named {name!r} is already scheduled")
            self._jobs[name] = _Job(name=name, at=at, action=action)

    @property
    def job_names(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def next_run(self, name: str) -> datetime:
        """When ``name`` runs next (local time)."""
        with self._lock:
            job = self._jobs[name]
            now = self._clock().astimezone(self.zone)
            today = now.date()
            if job.retry_at is not None:
                return max(now, job.retry_at.astimezone(self.zone))
            if job.last_run_day != today:
                return max(now, datetime.combine(today, job.at, tzinfo=self.zone))
            return datetime.combine(today + timedelta(days=1), job.at, tzinfo=self.zone)

    def _due(self, job: _Job, now: datetime) -> bool:
        if job.retry_at is not None:
            return now >= job.retry_at
        return job.last_run_day != now.date() and now.time() >= job.at

    def run_pending(self) -> list[str]:
        """Run every job that is due now; returns the names run (in registration order)."""
        now = self._clock().astimezone(self.zone)
        with self._lock:
            due = [job for job in self._jobs.values() if self._due(job, now)]
            for job in due:
                # Marked before running (a second caller does not run it too); a failure
                # schedules a retry within minutes below.
                job.last_run_day = now.date()
                job.retry_at = None
        ran = []
        for job in due:
            try:
                job.action()
            except Exception:
                with self._lock:
                    job.failures += 1
                    delay = min(
                        self.retry_max_s, self.retry_initial_s * 2 ** min(job.failures - 1, 16)
                    )
                    job.retry_at = now + timedelta(seconds=delay)
                logger.exception(
                    "scheduled job %s failed (%d in a row); retrying in %.0f s",
                    job.name,
                    job.failures,
                    delay,
                )
            else:
                with self._lock:
                    job.failures = 0
            ran.append(job.name)
        return ran

    # -- background thread -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cunan-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_pending()
            self._stop.wait(self._poll_s)
