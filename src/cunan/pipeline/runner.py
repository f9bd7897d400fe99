"""One camera's chain: capture -> motion -> detect -> track -> best shots -> embed -> match ->
decide -> stored sighting -> event."""

from __future__ import annotations

import logging
import threading
import time
import uuid
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
from cunan.pipeline.matcher import FaceMatcher
from cunan.pipeline.store import NewSighting, SightingStore, StoredSighting
from cunan.tracking.bestshots import BestShotSelector, TrackShots
from cunan.tracking.motion import DetectionZone, Detector, MotionConfig, MotionGate
from cunan.tracking.stage import TrackingStage
from cunan.tracking.tracker import FaceTracker

logger = logging.getLogger(__name__)

#: JPEG quality of stored crops: faces stay sharp enough for staff and re-embedding.
CROP_JPEG_QUALITY = 90


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
            selector=BestShotSelector(BestShotConfig(max_shots=max_shots)),
        )
        self.run_key = uuid.uuid4().hex[:12]
        self.latencies_s: list[float] = []
        self.sightings: list[DecidedSighting] = []
        self._lock = threading.Lock()
        self._analysed = 0
        self._skipped = 0
        self._stored = 0
        self._last_error: str | None = None
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
        self.reader.start()
        try:
            while not stop.is_set() and not self._stop.is_set():
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
                result = self.stage.process(frame.rgb(), ts)
                with self._lock:
                    self._analysed += 1
                if result.finished:
                    self._finish(list(result.finished), clock, frame.monotonic_s, "frame")
        finally:
            self.reader.stop()
            ended_at = last_frame_mono
            self._finish(self.stage.flush(), clock, ended_at if not stop.is_set() else None, "end")
            logger.info("camera %s: stopped (%d sightings stored)", self.target.name, self._stored)
        return self.sightings

    def _finish(
        self, finished: list[TrackShots], clock: _Clock, since: float | None, ended_by: str
    ) -> None:
        for item in finished:
            try:
                self._store(item, clock, since, ended_by)
            except Exception as exc:
                # One bad track (a decode glitch, a busy database) must not stop the camera.
                logger.exception(
                    "camera %s: track %d not stored", self.target.name, item.track.track_id
                )
                with self._lock:
                    self._last_error = f"track not stored: {type(exc).__name__}: {exc}"

    def _store(self, item: TrackShots, clock: _Clock, since: float | None, ended_by: str) -> None:
        decision, embedding = self.analyser.analyse(item)
        track = item.track
        person_id = (
            int(decision.identity) if decision.verdict == "known" and decision.identity else None
        )
        crop = encode_jpeg(item.shots[0].crop) if item.shots else None
        start = clock.wall(track.start_s)
        end = clock.wall(track.last_seen_s)
        details = decision.to_json()
        details["track"] = {
            "track_id": track.track_id,
            "hits": track.hits,
            "duration_s": round(track.duration_s, 3),
        }
        stored: StoredSighting = self.store.add(
            NewSighting(
                camera_id=self.target.camera_id,
                camera_name=self.target.name,
                track_key=f"{self.run_key}:{track.track_id}",
                started_at=start,
                ended_at=end,
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
        )
        latency = time.monotonic() - since if since is not None else None
        sighting = DecidedSighting(
            sighting_id=stored.sighting_id,
            camera=self.target.name,
            start=start,
            end=end,
            decision=decision,
            person_id=person_id,
            faces_used=decision.faces_good,
            created=stored.created,
            ended_by=ended_by,
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
        if stored.event is not None and self.bus is not None:
            self.bus.publish(stored.event)
        if self.on_sighting is not None:
            self.on_sighting(sighting)
