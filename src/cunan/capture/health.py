"""Per-camera capture health: a thread-safe tracker and the immutable snapshot it hands out."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

#: Frame rates are measured over this window (seconds): long enough to be steady at a few
#: fps, short enough to show a stall within seconds.
FPS_WINDOW_S = 5.0


class CaptureState(enum.StrEnum):
    """Where a camera reader is in its life."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"  # waiting before the next reconnect attempt
    #: Still retrying, but several attempts in a row failed without a frame (a wrong URL, a
    #: camera that is off): shown so, not as a passing reconnection.
    FAILING = "failing"
    STOPPED = "stopped"  # stopped on request, or a file source reached its end
    FAILED = "failed"  # gave up: a permanent error (e.g. not a video) or attempts exhausted


@dataclass(frozen=True, slots=True)
class CaptureHealth:
    """A snapshot of one camera's capture, safe to publish (no credentials, no frames)."""

    camera_id: str
    state: CaptureState
    connected: bool
    fps_in: float  # frames decoded per second over the last FPS_WINDOW_S
    fps_out: float  # frames taken by the consumer per second, same window
    frames_decoded: int
    frames_consumed: int
    frames_dropped: int  # decoded but replaced by a newer one before anyone took them
    last_frame_wall: datetime | None
    last_frame_monotonic: float | None
    last_error: str | None
    last_error_wall: datetime | None
    reconnects: int  # successful connections after the first one
    connect_attempts: int
    #: Connection attempts in a row that ended without a frame (0 once frames flow).
    consecutive_failures: int = 0

    def seconds_since_last_frame(self, now: float | None = None) -> float | None:
        """Age of the newest decoded frame on the monotonic clock, None before the first."""
        if self.last_frame_monotonic is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_frame_monotonic


class _RateMeter:
    """Events per second over a sliding window (not thread-safe; the tracker locks)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        # Span from the window start, so a stream that stopped decays towards zero.
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()


class HealthTracker:
    """Collects what the reader thread and the consumer report; :meth:`snapshot` reads it."""

    def __init__(self, camera_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._camera_id = camera_id
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CaptureState.CONNECTING
        self._connected = False
        self._in = _RateMeter(FPS_WINDOW_S)
        self._out = _RateMeter(FPS_WINDOW_S)
        self._decoded = 0
        self._consumed = 0
        self._dropped = 0
        self._last_frame_wall: datetime | None = None
        self._last_frame_mono: float | None = None
        self._last_error: str | None = None
        self._last_error_wall: datetime | None = None
        self._connections = 0
        self._attempts = 0
        self._consecutive_failures = 0

    def connecting(self) -> None:
        with self._lock:
            self._state = CaptureState.CONNECTING
            self._connected = False
            self._attempts += 1

    def connected(self) -> None:
        with self._lock:
            self._state = CaptureState.STREAMING
            self._connected = True
            self._connections += 1

    def warned(self, message: str) -> None:
        """A problem that did not stop the capture (a file that ends early)."""
        with self._lock:
            self._last_error = message
            self._last_error_wall = datetime.now(UTC)

    def failed_attempts(self, count: int) -> None:
        with self._lock:
            self._consecutive_failures = count

    def disconnected(self, state: CaptureState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            self._connected = False
            if error is not None:
                self._last_error = error
                self._last_error_wall = datetime.now(UTC)

    def frame_decoded(self, monotonic_s: float, wall: datetime) -> None:
        with self._lock:
            self._decoded += 1
            self._consecutive_failures = 0
            self._in.add(monotonic_s)
            self._last_frame_mono = monotonic_s
            self._last_frame_wall = wall

    def frame_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def frame_consumed(self) -> None:
        with self._lock:
            self._consumed += 1
            self._out.add(self._clock())

    def snapshot(self) -> CaptureHealth:
        with self._lock:
            now = self._clock()
            return CaptureHealth(
                camera_id=self._camera_id,
                state=self._state,
                connected=self._connected,
                fps_in=self._in.rate(now),
                fps_out=self._out.rate(now),
                frames_decoded=self._decoded,
                frames_consumed=self._consumed,
                frames_dropped=self._dropped,
                last_frame_wall=self._last_frame_wall,
                last_frame_monotonic=self._last_frame_mono,
                last_error=self._last_error,
                last_error_wall=self._last_error_wall,
                reconnects=max(0, self._connections - 1),
                connect_attempts=self._attempts,
                consecutive_failures=self._consecutive_failures,
            )
