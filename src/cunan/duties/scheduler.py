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


class Scheduler:
    """Runs each registered job once per local day, at or after its time of day.

    A job whose time passed while the process was not running runs at the next check
    (``cunan serve`` started at 10:00 still purges today): duties are idempotent, and missing
    a purge would keep data longer than allowed. Runs are remembered in memory only, so a
    restart may run a job twice in one day, which is harmless. A failing job is logged and
    retried the next day; it never stops the others.
    """

    def __init__(
        self, zone: ZoneInfo, *, clock: Clock = system_clock, poll_s: float = 30.0
    ) -> None:
        self.zone = zone
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
            if job.last_run_day != today:
                return max(now, datetime.combine(today, job.at, tzinfo=self.zone))
            return datetime.combine(today + timedelta(days=1), job.at, tzinfo=self.zone)

    def run_pending(self) -> list[str]:
        """Run every job that is due now; returns the names run (in registration order)."""
        now = self._clock().astimezone(self.zone)
        with self._lock:
            due = [
                job
                for job in self._jobs.values()
                if job.last_run_day != now.date() and now.time() >= job.at
            ]
            for job in due:
                # Marked before running: a job that fails is not retried every poll all day.
                job.last_run_day = now.date()
        ran = []
        for job in due:
            try:
                job.action()
            except Exception:
                logger.exception("scheduled job %s failed", job.name)
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
