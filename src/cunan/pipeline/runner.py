"""One camera's chain: capture -> motion -> detect -> track -> best shots -> embed -> match ->
decide -> stored sighting -> event."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import cv2
import numpy as np
from numpy.typing import NDArray

from cunan.capture.frames import Frame
from cunan.capture.health import CaptureHealth
from cunan.capture.reader import BackoffPolicy, CameraReader
from cunan.capture.sources import SourceConfig, SourceKind, redact_url
from cunan.faces.embed import Embedder
from cunan.faces.quality import SIGHTING_THRESHOLDS, QualityThresholds
from cunan.pipeline.decision import FaceVote, TrackDecision, TrackDecisionConfig, decide_track
from cunan.pipeline.events import EventBus
from cunan.pipeline.heap import trim_heap
from cunan.pipeline.matcher import FaceMatcher
from cunan.pipeline.memstats import MemoryStats, count_gc_objects
from cunan.pipeline.store import NewSighting, SightingStore, StoredSighting
from cunan.tracking.bestshots import BestShotSelector, TrackShots
from cunan.tracking.motion import DetectionZone, Detector, MotionConfig, MotionGate
from cunan.tracking.stage import FrameAnalysisError, TrackingStage
from cunan.tracking.tracker import FaceTracker

logger = logging.getLogger(__name__)

#: JPEG quality of stored crops: faces stay sharp enough for staff and re-embedding.
CROP_JPEG_QUALITY = 90


#: Sightings and latencies a runner remembers for reporting (``run()``'s result, benchmarks).
#: Small on purpose: each kept sighting holds its whole decision (~1-2 KB), and the stored
#: rows are the real record; 10,000 took ~100 minutes on a busy gate to stop growing.
RECENT_HISTORY = 256


@dataclass(frozen=True, slots=True)
class CameraTarget:
    """What one runner watches: a registered camera (``camera_id``) or an ad-hoc source."""

    name: str
    source: SourceConfig
    camera_id: int | None = None
    zone: DetectionZone | None = None
    fps_cap: float | None = 8.0
    decision: TrackDecisionConfig = field(default_factory=TrackDecisionConfig)


@dataclass(frozen=True, slots=True)
class DecidedSighting:
    """A stored sighting as the runner reports it (what ``cunan watch`` prints)."""

    sighting_id: int
    camera: str
    start: datetime
    end: datetime
    decision: TrackDecision
    person_id: int | None
    faces_used: int
    created: bool
    #: What ended the track: "frame" (the tracker, on a frame), "idle" (no frames for the
    #: track-end timeout: disconnect or frozen camera) or "end" (the source ended or stopped).
    ended_by: str
    #: Seconds from the frame that ended the track (or the last frame plus the track-end
    #: timeout) to the stored row; None when the track was ended by a stop request.
    latency_s: float | None


@dataclass(frozen=True, slots=True)
class RunnerHealth:
    """Capture health plus the analysis counters of one camera."""

    capture: CaptureHealth
    frames_analysed: int
    frames_skipped: int
    active_tracks: int  # confirmed tracks open now
    sightings_stored: int
    last_error: str | None
    #: Tracks finished (ended and analysed): each becomes a stored row, waits in the
    #: pending queue, or is counted lost.
    tracks_finished: int = 0
    #: Decided sightings waiting for the database (stored on a later retry).
    sightings_pending: int = 0
    #: Sightings given up: the pending queue overflowed, or the runner stopped with the
    #: database still unavailable. Each is logged.
    sightings_lost: int = 0
    #: The last error storing a sighting (None once a retry has drained the queue).
    last_store_error: str | None = None
    #: Frames whose analysis raised (skipped; see ``MAX_FAILED_FRAMES_IN_A_ROW``).
    frames_failed: int = 0


def encode_jpeg(image: NDArray[np.uint8]) -> bytes:
    ok, data = cv2.imencode(
        ".jpg",
        cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY],
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())


class TrackAnalyser:
    """Finished track -> embeddings of its best shots -> open-set decisions -> track decision."""

    def __init__(
        self,
        embedder: Embedder,
        matcher: FaceMatcher,
        config: TrackDecisionConfig | None = None,
        *,
        thresholds: QualityThresholds = SIGHTING_THRESHOLDS,
    ) -> None:
        if embedder.model_id != matcher.model_id:
            raise ValueError(
                f"embedder model {embedder.model_id!r} differs from the gallery's "
                f"{matcher.model_id!r}"
            )
        self.embedder = embedder
        self.matcher = matcher
        self.config = config or TrackDecisionConfig()
        self.thresholds = thresholds

    def analyse(self, item: TrackShots) -> tuple[TrackDecision, NDArray[np.float32] | None]:
        """The decision and the embedding to keep for an unknown (normalised mean of the
        good faces' vectors; None otherwise)."""
        shots = item.shots
        if not shots:
            return decide_track([], self.config), None
        vectors = np.vstack([self.embedder.embed(s.crop, [s.face]).vectors for s in shots]).astype(
            np.float32
        )
        decisions = self.matcher.decide(vectors, [s.quality for s in shots])
        votes = [
            FaceVote(
                decision=d,
                good=s.quality.passed,
                shot_score=s.score,
                quality_reasons=s.quality.reasons,
            )
            for s, d in zip(shots, decisions, strict=True)
        ]
        decision = decide_track(votes, self.config)
        embedding: NDArray[np.float32] | None = None
        if decision.verdict == "unknown":
            good = [v for v, s in zip(vectors, shots, strict=True) if s.quality.passed]
            mean = np.mean(good if good else vectors, axis=0)
            embedding = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        return decision, embedding


@dataclass(slots=True)
class _PendingSighting:
    """A decided track whose row could not be stored yet (same track key on every retry)."""

    new: NewSighting
    decision: TrackDecision
    since: float | None
    ended_by: str


#: Seconds between returns of free heap pages to the OS (see :func:`trim_heap`).
HEAP_TRIM_INTERVAL_S = 60.0
#: Analysis failures with no successful detection between them that end the run (~8 s of a
#: busy camera at the default cap: 6.25 analysed frames/s of a 25 fps stream). Fewer are
#: skipped and counted in the health, so that one bad frame never stops a camera.
MAX_FAILED_FRAMES_IN_A_ROW = 50

#: Decided sightings kept while the database is unavailable; beyond this the oldest is lost.
MAX_PENDING_SIGHTINGS = 500
#: Retry backoff of the pending queue: first retry after this, doubling up to the maximum.
PENDING_RETRY_INITIAL_S = 0.5
PENDING_RETRY_MAX_S = 15.0


class _Clock:
    """Maps frames to one increasing analysis time line and to wall time.

    Files use their presentation time (so ``--fast`` decoding does not squeeze tracks);
    live sources the decode time. A time line that jumps back (a looped file, a reconnect
    restarting the pts) is shifted so it keeps increasing.
    """

    def __init__(self, use_pts: bool) -> None:
        self._use_pts = use_pts
        self._offset = 0.0
        self._last: float | None = None
        self._anchor: tuple[float, datetime] | None = None

    def timestamp(self, frame: Frame) -> float:
        raw = frame.pts_s if self._use_pts and frame.pts_s is not None else frame.monotonic_s
        if self._last is not None and raw + self._offset <= self._last:
            self._offset = self._last - raw + 1e-3
        ts = raw + self._offset
        self._last = ts
        if self._anchor is None:
            self._anchor = (ts, frame.wall_time)
        return ts

    def wall(self, ts: float) -> datetime:
        assert self._anchor is not None
        return self._anchor[1] + timedelta(seconds=ts - self._anchor[0])


class CameraRunner:
    """Runs one camera until stopped (or its file ends), storing one sighting per track.

    Frames are analysed at most ``fps_cap`` times per second. When no frame arrives for
    ``track_end_timeout_s`` (camera disconnected or frozen), every open track is ended and
    stored once; tracks restart after the reconnect.

    A sighting the database refuses (down, locked) waits in a bounded pending queue and is
    retried on each loop pass with backoff, and once more when the runner stops; its track
    key stays the same, so a retry after a commit whose answer was lost stores nothing twice.
    """

    def __init__(
        self,
        target: CameraTarget,
        *,
        detector: Detector,
        analyser: TrackAnalyser,
        store: SightingStore,
        bus: EventBus | None = None,
        backoff: BackoffPolicy | None = None,
        on_sighting: Callable[[DecidedSighting], None] | None = None,
        max_shots: int = 4,
        max_pending: int = MAX_PENDING_SIGHTINGS,
        history: int = RECENT_HISTORY,
        quality: QualityThresholds | None = None,
    ) -> None:
        from cunan.tracking.bestshots import BestShotConfig

        self.target = target
        self.analyser = analyser
        self.store = store
        self.bus = bus
        self.on_sighting = on_sighting
        self.reader = CameraReader(target.name, target.source, backoff=backoff)
        tracker = FaceTracker()
        self.track_end_timeout_s = tracker.config.max_missed_s
        self.stage = TrackingStage(
            detector,
            gate=MotionGate(MotionConfig(), zone=target.zone) if target.zone else None,
            tracker=tracker,
            selector=BestShotSelector(
                BestShotConfig(max_shots=max_shots, thresholds=quality or analyser.thresholds)
            ),
        )
        self.run_key = uuid.uuid4().hex[:12]
        # Recent history only: a camera runs for months, and an unbounded list would grow
        # by ~100 sightings a minute on a busy gate (found by benchmarks/soak.py).
        self.latencies_s: deque[float] = deque(maxlen=max(1, history))
        self.sightings: deque[DecidedSighting] = deque(maxlen=max(1, history))
        self._lock = threading.Lock()
        self._analysed = 0
        self._skipped = 0
        self._failed = 0
        self._failed_in_a_row = 0
        self._gc_objects: int | None = None
        self._stored = 0
        self._last_error: str | None = None
        self._finished = 0
        self._lost = 0
        self._last_store_error: str | None = None
        self._pending: deque[_PendingSighting] = deque()
        self._max_pending = max(1, max_pending)
        self._retry_failures = 0
        self._retry_at = 0.0
        self._stop = threading.Event()

    def health(self) -> RunnerHealth:
        with self._lock:
            return RunnerHealth(
                capture=self.reader.health(),
                frames_analysed=self._analysed,
                frames_skipped=self._skipped,
                active_tracks=sum(1 for t in self.stage.tracker.tracks if t.confirmed),
                sightings_stored=self._stored,
                last_error=self._last_error,
                tracks_finished=self._finished,
                sightings_pending=len(self._pending),
                sightings_lost=self._lost,
                last_store_error=self._last_store_error,
                frames_failed=self._failed,
            )

    def stop(self) -> None:
        self._stop.set()

    def run(self, stop: threading.Event | None = None) -> list[DecidedSighting]:
        """Process frames until ``stop`` is set, :meth:`stop` is called or the source ends."""
        stop = stop or self._stop
        kind = self.reader.spec.kind
        clock = _Clock(use_pts=kind is SourceKind.FILE)
        min_gap = 1.0 / self.target.fps_cap if self.target.fps_cap else 0.0
        last_analysed: float | None = None
        last_frame_mono: float | None = None
        logger.info("camera %s: watching %s", self.target.name, redact_url(self.target.source.url))
        # Soak-run diagnostics, off unless CUNAN_MEMSTATS names a file (see memstats).
        memstats = MemoryStats.from_env(self._memory_counters)
        if memstats is not None:
            memstats.start()
        self.reader.start()
        next_trim = time.monotonic() + HEAP_TRIM_INTERVAL_S
        next_gc_count = time.monotonic()
        try:
            while not stop.is_set() and not self._stop.is_set():
                self._retry_pending()
                if time.monotonic() >= next_trim:
                    # Peaks of frame-sized buffers would otherwise stay resident for good.
                    trim_heap()
                    next_trim = time.monotonic() + HEAP_TRIM_INTERVAL_S
                frame = self.reader.get(timeout=0.2)
                if frame is None:
                    if self.reader.finished:
                        break
                    idle = (
                        time.monotonic() - last_frame_mono if last_frame_mono is not None else 0.0
                    )
                    if self.stage.tracker.tracks and idle > self.track_end_timeout_s:
                        # No frames (disconnect, frozen camera): end the open tracks now
                        # rather than when frames return, so each is stored once, promptly.
                        assert last_frame_mono is not None
                        self._finish(
                            self.stage.flush(),
                            clock,
                            last_frame_mono + self.track_end_timeout_s,
                            "idle",
                        )
                    continue
                last_frame_mono = frame.monotonic_s
                ts = clock.timestamp(frame)
                # 2% slack so a 25 fps source capped at 12.5 fps keeps every other frame.
                if last_analysed is not None and ts - last_analysed < min_gap * 0.98:
                    with self._lock:
                        self._skipped += 1
                    continue
                last_analysed = ts
                if memstats is not None and time.monotonic() >= next_gc_count:
                    self._gc_objects = count_gc_objects()
                    next_gc_count = time.monotonic() + memstats.interval_s
                try:
                    result = self.stage.process(frame.rgb(), ts)
                except FrameAnalysisError as exc:
                    # Tracks that ended in this frame are still decided and stored.
                    self._finish(list(exc.finished), clock, frame.monotonic_s, "frame")
                    cause = exc.__cause__
                    self._frame_failed(frame.seq, cause if isinstance(cause, Exception) else exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - counted, logged, bounded in a row
                    self._frame_failed(frame.seq, exc)
                    continue
                with self._lock:
                    self._analysed += 1
                    if result.motion.motion:
                        # Only a frame that ran the detector clears the count: quiet frames
                        # between failures must not hide a detector that always fails.
                        self._failed_in_a_row = 0
                if result.finished:
                    self._finish(list(result.finished), clock, frame.monotonic_s, "frame")
        finally:
            self.reader.stop()
            ended_at = last_frame_mono
            self._finish(self.stage.flush(), clock, ended_at if not stop.is_set() else None, "end")
            self._retry_pending(force=True)
            self._give_up_pending()
            if memstats is not None:
                memstats.stop()
            logger.info("camera %s: stopped (%d sightings stored)", self.target.name, self._stored)
        return list(self.sightings)

    def _memory_counters(self) -> dict[str, int | None]:
        """What the memory diagnostics record next to each sample."""
        health = self.health()
        return {
            "frames_decoded": health.capture.frames_decoded,
            "frames_dropped": health.capture.frames_dropped,
            "frames_analysed": health.frames_analysed,
            "frames_skipped": health.frames_skipped,
            "sightings_stored": health.sightings_stored,
            "active_tracks": health.active_tracks,
            "open_tracks": len(self.stage.tracker.tracks),
            "history": len(self.sightings),
            "pending": health.sightings_pending,
            "frames_failed": health.frames_failed,
            "gc_objects": self._gc_objects,
        }

    def _frame_failed(self, seq: int, exc: Exception) -> None:
        """Skip a frame whose analysis raised; give up after too many in a row.

        A camera runs unattended for months: one frame that trips a library (a transient
        state, an odd frame) must not stop it, while a fault that fails every frame must
        not spin silently either, so it ends the run (a worker's supervisor restarts the
        camera process; ``cunan watch`` exits with the error).
        """
        with self._lock:
            self._failed += 1
            self._failed_in_a_row += 1
            in_a_row = self._failed_in_a_row
            self._last_error = f"frame {seq} not analysed: {type(exc).__name__}: {exc}"
        if in_a_row >= MAX_FAILED_FRAMES_IN_A_ROW:
            raise RuntimeError(
                f"camera {self.target.name}: {in_a_row} frames in a row failed analysis; "
                f"last: {type(exc).__name__}: {exc}"
            ) from exc
        log = logger.exception if in_a_row == 1 else logger.debug
        log("camera %s: frame %d not analysed", self.target.name, seq, exc_info=exc)

    def _finish(
        self, finished: list[TrackShots], clock: _Clock, since: float | None, ended_by: str
    ) -> None:
        for item in finished:
            try:
                pending = self._decide(item, clock, since, ended_by)
            except Exception as exc:
                # One bad track (a decode glitch) must not stop the camera.
                logger.exception(
                    "camera %s: track %d not analysed", self.target.name, item.track.track_id
                )
                with self._lock:
                    self._finished += 1
                    self._lost += 1
                    self._last_error = f"track not analysed: {type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self._finished += 1
                waiting = bool(self._pending)
            if waiting:
                # Keep the order: behind the sightings already waiting for the database.
                self._enqueue(pending)
            elif not self._try_store(pending):
                self._enqueue(pending)

    def _decide(
        self, item: TrackShots, clock: _Clock, since: float | None, ended_by: str
    ) -> _PendingSighting:
        decision, embedding = self.analyser.analyse(item)
        track = item.track
        person_id = (
            int(decision.identity) if decision.verdict == "known" and decision.identity else None
        )
        crop = encode_jpeg(item.shots[0].crop) if item.shots else None
        details = decision.to_json()
        details["track"] = {
            "track_id": track.track_id,
            "hits": track.hits,
            "duration_s": round(track.duration_s, 3),
        }
        new = NewSighting(
            camera_id=self.target.camera_id,
            camera_name=self.target.name,
            track_key=f"{self.run_key}:{track.track_id}",
            started_at=clock.wall(track.start_s),
            ended_at=clock.wall(track.last_seen_s),
            decision=decision.verdict,
            person_id=person_id,
            distance=decision.distance,
            score=decision.score,
            faces_used=decision.faces_good,
            details=details,
            model_id=self.analyser.matcher.model_id,
            crop_jpeg=crop,
            embedding=embedding,
        )
        return _PendingSighting(new=new, decision=decision, since=since, ended_by=ended_by)

    def _enqueue(self, pending: _PendingSighting) -> None:
        with self._lock:
            self._pending.append(pending)
            if len(self._pending) <= self._max_pending:
                return
            lost = self._pending.popleft()
            self._lost += 1
        logger.error(
            "camera %s: sighting of track %s lost: %d sightings already wait for the "
            "database (last error: %s)",
            self.target.name,
            lost.new.track_key,
            self._max_pending,
            self._last_store_error,
        )

    def _try_store(self, pending: _PendingSighting) -> bool:
        """Store one sighting; False (and the error recorded) if the database refused it."""
        try:
            stored = self.store.add(pending.new)
        except Exception as exc:  # noqa: BLE001 - any failure: keep it and retry
            message = f"sighting not stored yet: {type(exc).__name__}: {exc}"
            with self._lock:
                first = self._last_store_error is None
                self._last_store_error = message
                self._last_error = message
            if first:
                logger.warning(
                    "camera %s: %s; kept and retried", self.target.name, redact_url(message)
                )
            return False
        self._stored_ok(pending, stored)
        return True

    def _retry_pending(self, *, force: bool = False) -> None:
        """Store the waiting sightings in order; on a failure back off (not when ``force``)."""
        with self._lock:
            if not self._pending:
                return
        now = time.monotonic()
        if not force and now < self._retry_at:
            return
        while True:
            with self._lock:
                if not self._pending:
                    break
                head = self._pending[0]
            if not self._try_store(head):
                self._retry_failures += 1
                delay = min(
                    PENDING_RETRY_MAX_S,
                    PENDING_RETRY_INITIAL_S * 2 ** min(self._retry_failures - 1, 16),
                )
                self._retry_at = time.monotonic() + delay
                return
            with self._lock:
                if self._pending and self._pending[0] is head:
                    self._pending.popleft()
        self._retry_failures = 0
        self._retry_at = 0.0
        with self._lock:
            self._last_store_error = None
        logger.info("camera %s: waiting sightings stored", self.target.name)

    def _give_up_pending(self) -> None:
        with self._lock:
            lost = list(self._pending)
            self._pending.clear()
            self._lost += len(lost)
        if lost:
            logger.error(
                "camera %s: stopped with %d sighting(s) not stored, database unavailable "
                "(last error: %s); tracks: %s",
                self.target.name,
                len(lost),
                self._last_store_error,
                ", ".join(p.new.track_key for p in lost),
            )

    def _stored_ok(self, pending: _PendingSighting, stored: StoredSighting) -> None:
        new, decision = pending.new, pending.decision
        latency = time.monotonic() - pending.since if pending.since is not None else None
        sighting = DecidedSighting(
            sighting_id=stored.sighting_id,
            camera=self.target.name,
            start=new.started_at,
            end=new.ended_at,
            decision=decision,
            person_id=new.person_id,
            faces_used=decision.faces_good,
            created=stored.created,
            ended_by=pending.ended_by,
            latency_s=latency,
        )
        with self._lock:
            self._stored += int(stored.created)
            self.sightings.append(sighting)
            if latency is not None:
                self.latencies_s.append(latency)
        logger.info(
            "camera %s: sighting %d %s (%d faces)",
            self.target.name,
            stored.sighting_id,
            decision.verdict,
            decision.faces_good,
        )
        try:
            if stored.event is not None and self.bus is not None:
                self.bus.publish(stored.event)
            if self.on_sighting is not None:
                self.on_sighting(sighting)
        except Exception:
            # The row and its outbox event are committed: a failing listener loses nothing.
            logger.exception("camera %s: sighting listener failed", self.target.name)
