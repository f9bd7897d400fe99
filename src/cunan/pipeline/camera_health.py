"""Camera health across processes: camera processes write their capture state to the
database, announce changes as ``live.camera_health`` events, and the server reads it back."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cunan.capture.health import CaptureHealth, CaptureState
from cunan.capture.reader import FAILING_AFTER
from cunan.capture.sources import public_url, redact_url, scrub
from cunan.storage.database import Database
from cunan.storage.pipeline_repository import OutboxRepository
from cunan.storage.pipeline_tables import CameraHealthRow

logger = logging.getLogger(__name__)

#: Kind of the outbox event announcing a camera's new state (SSE ``camera_health``).
HEALTH_EVENT = "live.camera_health"
#: How often the reporter looks at the capture state (seconds): a change reaches the
#: database within this, and a look that finds no change writes nothing.
POLL_S = 1.0
#: The row is rewritten this often even without a change, for the frame time and fps
#: (seconds); a row older than ``STALE_AFTER_S`` means no process runs the camera.
REFRESH_S = 30.0
STALE_AFTER_S = 3 * REFRESH_S
#: Stored error texts are cut to this many characters.
MAX_ERROR_CHARS = 500
#: What a camera that no process reports on is shown as (disabled, not started, or its
#: process is gone without a word).
NOT_RUNNING = "not_running"


def shown_state(health: CaptureHealth) -> CaptureState:
    """The state to show and announce: a reconnect attempt of a camera that already failed
    stays "failing" (or "backing off"), so a wrong URL does not flap between "connecting"
    and "failing" at every retry (one event per retry would flood every open page)."""
    if health.state is CaptureState.CONNECTING and health.consecutive_failures:
        if health.consecutive_failures >= FAILING_AFTER:
            return CaptureState.FAILING
        return CaptureState.BACKING_OFF
    return health.state


def public_error(text: str | None, stream_url: str) -> str | None:
    """An error message fit for any page: no credentials, the camera's address reduced to
    scheme, host and port (a path may carry a password), bounded in length."""
    if not text:
        return None
    out = scrub(text, stream_url) if stream_url else redact_url(text)
    for form in {stream_url, redact_url(stream_url)}:
        if form:
            out = out.replace(form, public_url(form))
    return out[:MAX_ERROR_CHARS]


@dataclass(frozen=True, slots=True)
class CameraHealthView:
    """A camera's health as pages, the API and the CLI show it."""

    camera_id: int
    #: A ``CaptureState`` value, or ``not_running`` (no report, or none for a while).
    state: str
    last_frame_at: datetime | None
    #: Frames decoded per second over the last few seconds.
    fps: float
    last_error: str | None
    consecutive_failures: int
    reported_at: datetime | None


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes that were stored as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def not_running(camera_id: int) -> CameraHealthView:
    return CameraHealthView(camera_id, NOT_RUNNING, None, 0.0, None, 0, None)


class CameraHealthStore:
    """Reads and writes ``camera_health``; a state change and its event share one commit."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def report(
        self, camera_id: int, camera_name: str, health: CaptureHealth, *, stream_url: str = ""
    ) -> bool:
        """Store ``health`` as the camera's current state; True when the state changed (then
        a ``live.camera_health`` event is in the same transaction)."""
        state = shown_state(health)
        error = public_error(health.last_error, stream_url)
        with self.database.transaction() as session:
            row = session.get(CameraHealthRow, camera_id)
            previous = row.state if row is not None else None
            if row is None:
                row = CameraHealthRow(camera_id=camera_id)
                session.add(row)
            row.state = state.value
            row.last_frame_at = health.last_frame_wall
            row.fps = round(health.fps_in, 2)
            row.last_error = error
            row.consecutive_failures = health.consecutive_failures
            row.reported_at = datetime.now(UTC)
            changed = previous != state.value
            if changed:
                self._announce(session, camera_id, camera_name, state.value, previous, error)
        return changed

    def process_exited(self, camera_id: int, message: str) -> bool:
        """The camera's process died without being asked to (the supervisor restarts it
        after a backoff): shown as ``backing_off`` with ``message``, since the process
        itself could not say so. True when the state changed (and was announced)."""
        from cunan.storage.pipeline_tables import Camera

        with self.database.transaction() as session:
            camera = session.get(Camera, camera_id)
            if camera is None:
                return False  # removed meanwhile: nothing to show
            row = session.get(CameraHealthRow, camera_id)
            previous = row.state if row is not None else None
            if row is None:
                row = CameraHealthRow(camera_id=camera_id, fps=0.0, consecutive_failures=0)
                session.add(row)
            state = CaptureState.BACKING_OFF.value
            row.state = state
            row.fps = 0.0
            row.last_error = message[:MAX_ERROR_CHARS]
            row.reported_at = datetime.now(UTC)
            changed = previous != state
            if changed:
                self._announce(session, camera_id, camera.name, state, previous, row.last_error)
        return changed

    @staticmethod
    def _announce(
        session: Session,
        camera_id: int,
        name: str,
        state: str,
        previous: str | None,
        error: str | None,
    ) -> None:
        payload = {
            "camera_id": camera_id,
            "camera": name,
            "state": state,
            "previous": previous,
            "last_error": error,
        }
        OutboxRepository(session).append(
            HEALTH_EVENT, json.dumps(payload, ensure_ascii=False, sort_keys=True)
        )

    def views(self, *, now: datetime | None = None) -> dict[int, CameraHealthView]:
        """Every camera's last report; a running state not refreshed for ``STALE_AFTER_S``
        reads as ``not_running`` (its process is gone without a word)."""
        moment = now or datetime.now(UTC)
        with self.database.read() as session:
            rows = session.scalars(select(CameraHealthRow)).all()
            return {row.camera_id: _view(row, moment) for row in rows}

    def view(self, camera_id: int) -> CameraHealthView:
        return self.views().get(camera_id) or not_running(camera_id)


def _view(row: CameraHealthRow, now: datetime) -> CameraHealthView:
    reported = _aware(row.reported_at)
    state = row.state
    final = state in (CaptureState.STOPPED.value, CaptureState.FAILED.value)
    if not final and reported is not None and now - reported > timedelta(seconds=STALE_AFTER_S):
        state = NOT_RUNNING
    return CameraHealthView(
        camera_id=row.camera_id,
        state=state,
        last_frame_at=_aware(row.last_frame_at),
        fps=row.fps if state != NOT_RUNNING else 0.0,
        last_error=row.last_error,
        consecutive_failures=row.consecutive_failures,
        reported_at=reported,
    )


class HealthReporter:
    """A thread of the camera process: writes the capture state when it changes and every
    ``refresh_s`` otherwise, and the final state when stopped."""

    def __init__(
        self,
        store: CameraHealthStore,
        camera_id: int,
        camera_name: str,
        health: Callable[[], CaptureHealth],
        *,
        stream_url: str = "",
        poll_s: float = POLL_S,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.store = store
        self.camera_id = camera_id
        self.camera_name = camera_name
        self.health = health
        self.stream_url = stream_url
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: CaptureState | None = None
        self._written_at = 0.0

    def step(self, *, force: bool = False) -> bool:
        """Write the state if it changed, is due for a refresh or ``force``; True if written."""
        health = self.health()
        state = shown_state(health)
        now = time.monotonic()
        if not force and state is self._written and now - self._written_at < self.refresh_s:
            return False
        try:
            self.store.report(self.camera_id, self.camera_name, health, stream_url=self.stream_url)
        except Exception as exc:  # noqa: BLE001 - health must never stop the camera
            logger.warning(
                "camera %s: health not recorded (%s); retried", self.camera_name, type(exc).__name__
            )
            return False
        self._written, self._written_at = state, now
        return True

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"health-{self.camera_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.step()

    def stop(self, final: CaptureHealth | None = None) -> None:
        """Stop the thread and write the last state once more (``final`` if given)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if final is not None:
            health = final
            self.health = lambda: health
        self.step(force=True)
