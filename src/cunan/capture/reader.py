"""One reader thread per camera that keeps only the newest frame and reconnects with backoff."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import av
import av.container
import av.video

from cunan.capture.frames import Frame
from cunan.capture.health import CaptureHealth, CaptureState, HealthTracker
from cunan.capture.sources import (
    SourceConfig,
    SourceError,
    SourceKind,
    SourceSpec,
    describe_error,
    open_source,
    resolve_source,
)

logger = logging.getLogger(__name__)

#: Consecutive undecodable packets tolerated before the connection is treated as broken
#: (a few are normal on UDP after packet loss; hundreds mean the stream is garbage).
MAX_DECODE_ERRORS = 50
#: A realtime file that falls this far behind its own clock is re-anchored instead of being
#: fast-forwarded in a burst.
_MAX_LAG_S = 1.0
#: The log line of a reader that gave up (a command that reports it itself filters it out).
CAPTURE_FAILED = "camera %s: capture failed: %s"
#: Failed attempts in a row (without a frame) after which a camera is shown as failing.
FAILING_AFTER = 2
#: While a camera keeps failing, an INFO reminder this often (the first failure is a
#: WARNING; repeating it at every retry would flood the log).
FAILING_REMINDER_S = 300.0


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays between reconnect attempts: ``initial_s * multiplier**n`` up to ``max_s``.

    ``jitter`` spreads each delay by up to that fraction either way, so cameras that went down
    together (a switch reboot) do not all reconnect in the same instant. ``max_attempts``
    consecutive failures put the reader in ``failed``; None retries for ever, which is what
    an unattended camera wants.
    """

    initial_s: float = 1.0
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial_s <= max_s and multiplier >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction in [0, 1)")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 for the first)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** max(0, failures - 1))
        return base * (1.0 + rng.uniform(-self.jitter, self.jitter))


class _ConnectionLostError(Exception):
    """The current connection broke; the message says why (already redacted)."""

    def __init__(self, message: str, got_frames: bool) -> None:
        super().__init__(message)
        self.got_frames = got_frames


class CameraReader:
    """Decodes one camera in a background thread into a one-slot buffer.

    The slot always holds the newest frame: a frame not taken before the next one is decoded
    is counted as dropped, so a slow consumer sees fresh frames and never a backlog. A file
    opened with ``realtime=False`` is the exception: it is batch work, so the reader waits
    for the consumer instead of dropping. Live sources reconnect with :class:`BackoffPolicy`
    after errors, timeouts and EOF; files end, or loop when configured.
    """

    def __init__(
        self,
        camera_id: str,
        source: SourceConfig | str,
        *,
        backoff: BackoffPolicy | None = None,
        seed: int | None = None,
        reminder_s: float = FAILING_REMINDER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.reminder_s = reminder_s
        self._clock = clock
        self.config = source if isinstance(source, SourceConfig) else SourceConfig(url=source)
        self.spec: SourceSpec = resolve_source(self.config)
        self.backoff = backoff or BackoffPolicy()
        self._rng = random.Random(seed)
        self._health = HealthTracker(camera_id)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._finished = False
        self._seq = 0
        self._lossless = self.spec.kind is SourceKind.FILE and not self.spec.realtime
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the reader thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"camera reader {self.camera_id!r} already started")
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{self.camera_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to stop and wait for it; True when it has ended.

        A thread blocked inside FFmpeg notices the request only when that call returns,
        which the open/read timeouts bound; so the default wait is the longer timeout plus a
        margin. The thread is a daemon either way and never keeps the process alive.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            return True
        if timeout is None:
            timeout = max(self.spec.open_timeout_s, self.spec.read_timeout_s) + 2.0
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "camera %s: reader thread still busy after %.1f s", self.camera_id, timeout
            )
            return False
        return True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def finished(self) -> bool:
        """True once the thread has ended (stopped, failed, or a file source ended)."""
        with self._cond:
            return self._finished

    # -- consumer side ------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout`` seconds (None: for ever).

        Returns None on timeout, or when the reader has finished and no frame is left.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is None:
                if self._finished or self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._slot = self._slot, None
            self._cond.notify_all()  # a lossless producer may be waiting for the slot
        self._health.frame_consumed()
        return frame

    def frames(self, idle_timeout: float | None = None) -> Iterator[Frame]:
        """Frames until the reader finishes or nothing arrives for ``idle_timeout`` seconds."""
        while True:
            frame = self.get(idle_timeout)
            if frame is None:
                return
            yield frame

    def buffered(self) -> int:
        """Frames waiting in the buffer: 0 or 1, never more."""
        with self._cond:
            return 0 if self._slot is None else 1

    def health(self) -> CaptureHealth:
        """A thread-safe snapshot of this camera's capture health."""
        return self._health.snapshot()

    # -- reader thread ------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        failing_since = reminded = self._clock()
        final_state = CaptureState.STOPPED
        final_error: str | None = None
        try:
            while not self._stop.is_set():
                self._health.connecting()
                try:
                    got_frames = self._session()
                except SourceError as exc:
                    error, permanent, got_frames = str(exc), exc.permanent, False
                except _ConnectionLostError as exc:
                    error, permanent, got_frames = str(exc), False, exc.got_frames
                except Exception as exc:  # the thread must survive any surprise
                    logger.exception("camera %s: unexpected capture error", self.camera_id)
                    error = describe_error(exc, self.spec, phase="read")
                    permanent, got_frames = False, False
                else:
                    # Clean end of stream.
                    if self._stop.is_set():
                        break
                    if not self.spec.live:
                        if self.spec.loop and got_frames:
                            continue
                        final_error = None if got_frames else f"no frames in {self.spec.display}"
                        final_state = CaptureState.STOPPED if got_frames else CaptureState.FAILED
                        break
                    error, permanent = f"stream ended (EOF) from {self.spec.display}", False
                if self._stop.is_set():
                    break
                failures = 1 if got_frames else failures + 1
                self._health.failed_attempts(failures)
                if permanent or not self.spec.live:
                    final_state, final_error = CaptureState.FAILED, error
                    break
                if self.backoff.max_attempts is not None and failures > self.backoff.max_attempts:
                    final_state = CaptureState.FAILED
                    final_error = f"gave up after {failures - 1} attempts; last error: {error}"
                    break
                delay = self.backoff.delay(failures, self._rng)
                failing = failures >= FAILING_AFTER
                self._health.disconnected(
                    CaptureState.FAILING if failing else CaptureState.BACKING_OFF, error
                )
                now = self._clock()
                if failures <= 1:
                    failing_since = now
                    reminded = now
                    logger.warning(
                        "camera %s: %s; retrying in %.1f s", self.camera_id, error, delay
                    )
                elif now - reminded >= self.reminder_s:
                    reminded = now
                    logger.info(
                        "camera %s: still failing after %d attempts over %.0f min (%s); "
                        "retrying with backoff, next in %.1f s",
                        self.camera_id,
                        failures,
                        (now - failing_since) / 60,
                        error,
                        delay,
                    )
                else:
                    logger.debug("camera %s: %s; retrying in %.1f s", self.camera_id, error, delay)
                self._stop.wait(delay)
        finally:
            if final_state is CaptureState.FAILED:
                logger.error(CAPTURE_FAILED, self.camera_id, final_error)
            self._health.disconnected(final_state, final_error)
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _session(self) -> bool:
        """One connection: open, decode until EOF or stop; True when frames were decoded.

        Raises SourceError when opening fails and _ConnectionLostError(message, got_frames) when
        reading fails.
        """
        container = open_source(self.spec)
        got_frames = False
        try:
            stream = container.streams.video[0]
            # Frame threading speeds up 1080p decoding on the spare core; it adds a frame or
            # two of latency, far below what the analysis stages take.
            stream.thread_type = "AUTO"
            self._health.connected()
            logger.info("camera %s: streaming from %s", self.camera_id, self.spec.display)
            anchor: tuple[float, float] | None = None
            decode_errors = 0
            decoded = skipped = 0
            last_packet = time.monotonic()
            try:
                for packet in container.demux(stream):
                    last_packet = time.monotonic()
                    if self._stop.is_set():
                        return got_frames
                    try:
                        frames = packet.decode()
                    except av.FFmpegError as exc:
                        decode_errors += 1
                        skipped += 1
                        if decode_errors > MAX_DECODE_ERRORS:
                            raise _ConnectionLostError(
                                f"{MAX_DECODE_ERRORS} undecodable packets in a row from "
                                f"{self.spec.display}: {exc.strerror or type(exc).__name__}",
                                got_frames,
                            ) from None
                        continue
                    for video in frames:
                        decode_errors = 0
                        if self.spec.realtime:
                            anchor = self._pace(video, anchor)
                            if self._stop.is_set():
                                return got_frames
                        self._publish(video, packet.pts)
                        got_frames = True
                        decoded += 1
            except av.FFmpegError as exc:
                waited = time.monotonic() - last_packet
                message = describe_error(exc, self.spec, phase="read", elapsed_s=waited)
                raise _ConnectionLostError(message, got_frames) from None
            if not self.spec.live and not self._stop.is_set():
                self._check_complete(decoded, stream.frames, skipped)
            return got_frames
        finally:
            try:
                container.close()
            except av.FFmpegError:  # closing a broken connection may complain; nothing to do
                logger.debug("camera %s: error while closing", self.camera_id, exc_info=True)

    def _check_complete(self, decoded: int, declared: int, skipped: int) -> None:
        """A file that ended early (truncated, damaged) plays what it has: say so once."""
        # Declared counts can be off by a frame or two (edit lists, a last partial GOP).
        short = declared > 0 and decoded < declared - 2
        if not short and not skipped:
            return
        message = (
            f"{self.spec.display} ends early: {decoded} of {declared} frames decoded, "
            f"{skipped} undecodable packet(s) skipped (a truncated or damaged file?)"
            if short
            else f"{self.spec.display}: {skipped} undecodable packet(s) skipped (damaged file?)"
        )
        logger.warning("camera %s: %s", self.camera_id, message)
        self._health.warned(message)

    def _pace(
        self, video: av.VideoFrame, anchor: tuple[float, float] | None
    ) -> tuple[float, float] | None:
        """Sleep until ``video`` is due when playing a file in real time; the new anchor."""
        t = video.time
        if t is None:
            return anchor
        now = time.monotonic()
        if anchor is None:
            return (now, t)
        due = anchor[0] + (t - anchor[1])
        if due - now < -_MAX_LAG_S or due - now > _MAX_LAG_S * 10:
            # Far behind (slow machine) or a timestamp jump: restart the clock here.
            return (now, t)
        if due > now:
            self._stop.wait(due - now)
        return anchor

    def _publish(self, video: av.VideoFrame, packet_pts: int | None) -> None:
        now = time.monotonic()
        wall = datetime.now(UTC)
        pts = video.pts if video.pts is not None else packet_pts
        pts_s = video.time
        if pts_s is None and pts is not None and video.time_base is not None:
            pts_s = float(pts * video.time_base)
        frame = Frame(
            camera_id=self.camera_id,
            seq=self._seq,
            monotonic_s=now,
            wall_time=wall,
            pts=pts,
            pts_s=pts_s,
            width=video.width,
            height=video.height,
            _video=video,
        )
        self._seq += 1
        self._health.frame_decoded(now, wall)
        with self._cond:
            if self._lossless:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.5)
            elif self._slot is not None:
                self._health.frame_dropped()
            self._slot = frame
            self._cond.notify_all()
