"""Face tracker: detections across frames become tracks (one person passing = one track)."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from cunan.domain import BoundingBox, DetectedFace, RGBImage

logger = logging.getLogger(__name__)

#: A cheap appearance descriptor of one face (e.g. a colour histogram), L2-normalised.
AppearanceFn = Callable[[RGBImage, DetectedFace], NDArray[np.float32]]

#: Cost that marks a pair as impossible (outside the gates).
_INFEASIBLE = 1e6


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Association policy. Times are in seconds of the frames' own timestamps."""

    #: Detections needed before a track is confirmed (kills one-frame false detections).
    min_hits: int = 3
    #: A confirmed track ends after this many updates without a detection ...
    max_missed_frames: int = 12
    #: ... or this many seconds since its last detection, whichever comes first (the gate
    #: may skip frames, so updates alone do not measure time).
    max_missed_s: float = 1.0
    #: A tentative (unconfirmed) track is dropped after this many misses.
    max_missed_tentative: int = 1
    #: Gate: the detection's centre may lie at most this many predicted face sizes (the
    #: larger side) from the predicted centre, growing by ``gate_growth_per_miss`` per
    #: missed update (uncertainty grows while a face is hidden).
    max_centre_distance: float = 1.0
    gate_growth_per_miss: float = 0.25
    #: Gate: detection and prediction sizes may differ by at most this factor.
    max_size_ratio: float = 1.8
    #: Cost weights: (1 - IoU), centre distance / gate, and appearance distance.
    iou_weight: float = 0.5
    distance_weight: float = 0.5
    appearance_weight: float = 0.3
    #: Alpha-beta filter gains for position/size (alpha) and velocity (beta).
    alpha: float = 0.7
    beta: float = 0.3
    #: An unmatched detection covering more than this fraction of (the smaller of) itself
    #: or a detection matched in the same frame starts no track: detectors sometimes box
    #: one turning face twice, and the duplicate must not become a second person.
    max_birth_overlap: float = 0.4
    #: Longest history kept per track (detections); older points are dropped.
    max_history: int = 2000

    def __post_init__(self) -> None:
        if self.min_hits < 1:
            raise ValueError("min_hits must be >= 1")
        if self.max_missed_frames < 0 or self.max_missed_s <= 0:
            raise ValueError("max_missed_frames must be >= 0 and max_missed_s > 0")
        if not (0.0 < self.alpha <= 1.0 and 0.0 <= self.beta <= 1.0):
            raise ValueError("alpha must be in (0, 1] and beta in [0, 1]")


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One detection assigned to a track."""

    timestamp_s: float
    frame_index: int
    face: DetectedFace


@dataclass(frozen=True, slots=True)
class Track:
    """A snapshot of one track: identity, timing, filtered box and its detections so far."""

    track_id: int
    confirmed: bool
    start_s: float
    last_seen_s: float
    hits: int
    missed: int
    box: BoundingBox
    history: tuple[TrackPoint, ...]

    @property
    def duration_s(self) -> float:
        return self.last_seen_s - self.start_s


@dataclass(frozen=True, slots=True)
class Assignment:
    """Detection ``detection_index`` of this update went to track ``track_id``."""

    track_id: int
    detection_index: int
    confirmed: bool


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """Result of one :meth:`FaceTracker.update`.

    ``active``: confirmed tracks still alive (with or without a detection this frame).
    ``ended``: confirmed tracks that ended in this update, with their full history.
    ``assignments``: every detection of this frame matched to a track, tentative included,
    so a best-shot selector can keep faces from a track's first frames.
    ``dropped``: ids of tentative tracks discarded in this update (never confirmed).
    """

    timestamp_s: float
    frame_index: int
    active: tuple[Track, ...]
    ended: tuple[Track, ...]
    assignments: tuple[Assignment, ...]
    dropped: tuple[int, ...]


class _TrackState:
    """Mutable per-track state; callers only ever see :class:`Track` snapshots."""

    __slots__ = (
        "appearance",
        "confirmed",
        "history",
        "hits",
        "last_seen_s",
        "last_update_s",
        "missed",
        "start_s",
        "state",
        "track_id",
        "velocity",
    )

    def __init__(
        self,
        track_id: int,
        face: DetectedFace,
        timestamp_s: float,
        frame_index: int,
        appearance: NDArray[np.float32] | None,
    ) -> None:
        self.track_id = track_id
        self.state = _box_state(face.box)  # cx, cy, w, h
        self.velocity = np.zeros(4, dtype=np.float64)  # per second
        self.start_s = timestamp_s
        self.last_seen_s = timestamp_s
        self.last_update_s = timestamp_s
        self.hits = 1
        self.missed = 0
        self.confirmed = False
        self.history = [TrackPoint(timestamp_s, frame_index, face)]
        self.appearance = appearance

    def predict(self, timestamp_s: float) -> NDArray[np.float64]:
        dt = max(0.0, timestamp_s - self.last_update_s)
        predicted = self.state + self.velocity * dt
        # Sizes never predicted below a pixel, however fast a face shrinks.
        predicted[2:] = np.maximum(predicted[2:], 1.0)
        return predicted

    def correct(
        self,
        face: DetectedFace,
        timestamp_s: float,
        frame_index: int,
        config: TrackerConfig,
        appearance: NDArray[np.float32] | None,
    ) -> None:
        dt = max(1e-6, timestamp_s - self.last_update_s)
        predicted = self.predict(timestamp_s)
        residual = _box_state(face.box) - predicted
        self.state = predicted + config.alpha * residual
        # Velocity learnt from the residual over the whole time since the last correction.
        self.velocity = self.velocity + config.beta * residual / dt
        self.last_update_s = timestamp_s
        self.last_seen_s = timestamp_s
        self.hits += 1
        self.missed = 0
        self.history.append(TrackPoint(timestamp_s, frame_index, face))
        if len(self.history) > config.max_history:
            del self.history[0]
        if appearance is not None:
            if self.appearance is None:
                self.appearance = appearance
            else:
                mixed = 0.8 * self.appearance + 0.2 * appearance
                self.appearance = (mixed / max(float(np.linalg.norm(mixed)), 1e-9)).astype(
                    np.float32
                )

    def snapshot(self) -> Track:
        cx, cy, w, h = (float(v) for v in self.state)
        return Track(
            track_id=self.track_id,
            confirmed=self.confirmed,
            start_s=self.start_s,
            last_seen_s=self.last_seen_s,
            hits=self.hits,
            missed=self.missed,
            box=BoundingBox(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
            history=tuple(self.history),
        )


def _box_state(box: BoundingBox) -> NDArray[np.float64]:
    cx, cy = box.center
    return np.array([cx, cy, box.width, box.height], dtype=np.float64)


def _overlap_of_smaller(a: BoundingBox, b: BoundingBox) -> float:
    ix = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    iy = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    smaller = min(a.width * a.height, b.width * b.height)
    return ix * iy / smaller if smaller > 0 else 0.0


def _state_box(state: NDArray[np.float64]) -> BoundingBox:
    cx, cy, w, h = (float(v) for v in state)
    return BoundingBox(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


class FaceTracker:
    """Associates per-frame face detections into tracks (one tracker per camera).

    Each update predicts every track's box with a constant-velocity alpha-beta filter,
    gates detection-track pairs by centre distance and size ratio, scores the rest by
    (1 - IoU), normalised centre distance and, when an ``appearance`` function is given,
    descriptor distance, and solves the assignment with the Hungarian algorithm. Time
    comes from the frames' timestamps, never the wall clock.
    """

    def __init__(
        self, config: TrackerConfig | None = None, *, appearance: AppearanceFn | None = None
    ) -> None:
        self.config = config or TrackerConfig()
        self.appearance = appearance
        self._tracks: list[_TrackState] = []
        self._ids = itertools.count(1)
        self._frame_index = 0
        self._last_timestamp_s: float | None = None

    @property
    def tracks(self) -> tuple[Track, ...]:
        """Snapshots of every live track, tentative ones included."""
        return tuple(t.snapshot() for t in self._tracks)

    def update(
        self,
        timestamp_s: float,
        detections: Sequence[DetectedFace],
        frame: RGBImage | None = None,
    ) -> TrackUpdate:
        """Feed one frame's detections (an empty list is a frame with no faces).

        ``frame`` is needed only by the appearance function.
        """
        if self._last_timestamp_s is not None and timestamp_s < self._last_timestamp_s:
            raise ValueError(
                f"timestamps must not go backwards ({timestamp_s} < {self._last_timestamp_s})"
            )
        self._last_timestamp_s = timestamp_s
        frame_index = self._frame_index
        self._frame_index += 1
        descriptors: list[NDArray[np.float32] | None] = [None] * len(detections)
        if self.appearance is not None and frame is not None:
            descriptors = [self.appearance(frame, d) for d in detections]

        matches, unmatched_tracks, unmatched_dets = self._associate(
            timestamp_s, detections, descriptors
        )
        cfg = self.config
        assigned: list[tuple[_TrackState, int]] = []
        for ti, di in matches:
            track = self._tracks[ti]
            track.correct(detections[di], timestamp_s, frame_index, cfg, descriptors[di])
            if not track.confirmed and track.hits >= cfg.min_hits:
                track.confirmed = True
                logger.debug("track %d confirmed", track.track_id)
            assigned.append((track, di))
        for ti in unmatched_tracks:
            self._tracks[ti].missed += 1

        ended: list[Track] = []
        dropped: list[int] = []
        alive: list[_TrackState] = []
        for track in self._tracks:
            gone_s = timestamp_s - track.last_seen_s
            if track.confirmed:
                if track.missed > cfg.max_missed_frames or gone_s > cfg.max_missed_s:
                    ended.append(track.snapshot())
                    logger.debug("track %d ended after %d hits", track.track_id, track.hits)
                    continue
            elif track.missed > cfg.max_missed_tentative or gone_s > cfg.max_missed_s:
                dropped.append(track.track_id)
                continue
            alive.append(track)
        matched_boxes = [detections[di].box for _, di in matches]
        for di in unmatched_dets:
            box = detections[di].box
            if any(_overlap_of_smaller(box, m) > cfg.max_birth_overlap for m in matched_boxes):
                continue
            matched_boxes.append(box)
            track = _TrackState(
                next(self._ids), detections[di], timestamp_s, frame_index, descriptors[di]
            )
            track.confirmed = cfg.min_hits <= 1
            alive.append(track)
            assigned.append((track, di))
        self._tracks = alive
        return TrackUpdate(
            timestamp_s=timestamp_s,
            frame_index=frame_index,
            active=tuple(t.snapshot() for t in alive if t.confirmed),
            ended=tuple(ended),
            assignments=tuple(
                sorted(
                    (Assignment(t.track_id, di, t.confirmed) for t, di in assigned),
                    key=lambda a: a.detection_index,
                )
            ),
            dropped=tuple(dropped),
        )

    def flush(self) -> TrackUpdate:
        """End every track (end of a file or stream); confirmed ones are returned as ended."""
        timestamp = self._last_timestamp_s if self._last_timestamp_s is not None else 0.0
        ended = tuple(t.snapshot() for t in self._tracks if t.confirmed)
        dropped = tuple(t.track_id for t in self._tracks if not t.confirmed)
        self._tracks = []
        return TrackUpdate(timestamp, self._frame_index, (), ended, (), dropped)

    def _associate(
        self,
        timestamp_s: float,
        detections: Sequence[DetectedFace],
        descriptors: Sequence[NDArray[np.float32] | None],
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        if not self._tracks or not detections:
            return [], list(range(len(self._tracks))), list(range(len(detections)))
        cfg = self.config
        cost = np.full((len(self._tracks), len(detections)), _INFEASIBLE, dtype=np.float64)
        det_states = [_box_state(d.box) for d in detections]
        det_boxes = [d.box for d in detections]
        for ti, track in enumerate(self._tracks):
            predicted = track.predict(timestamp_s)
            predicted_box = _state_box(predicted)
            size = max(float(predicted[2]), float(predicted[3]))
            gate = cfg.max_centre_distance * size * (1.0 + cfg.gate_growth_per_miss * track.missed)
            for di, det in enumerate(det_states):
                distance = math.hypot(det[0] - predicted[0], det[1] - predicted[1])
                if distance > gate:
                    continue
                ratio = math.sqrt((det[2] * det[3]) / max(predicted[2] * predicted[3], 1e-9))
                if max(ratio, 1.0 / max(ratio, 1e-9)) > cfg.max_size_ratio:
                    continue
                value = cfg.iou_weight * (1.0 - predicted_box.iou(det_boxes[di]))
                value += cfg.distance_weight * distance / gate
                descriptor = descriptors[di]
                if track.appearance is not None and descriptor is not None:
                    similarity = float(np.dot(track.appearance, descriptor))
                    value += cfg.appearance_weight * (1.0 - similarity)
                cost[ti, di] = value
        rows, cols = linear_sum_assignment(cost)
        matches = [
            (int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _INFEASIBLE
        ]
        matched_tracks = {m[0] for m in matches}
        matched_dets = {m[1] for m in matches}
        unmatched_tracks = [i for i in range(len(self._tracks)) if i not in matched_tracks]
        unmatched_dets = [i for i in range(len(detections)) if i not in matched_dets]
        return matches, unmatched_tracks, unmatched_dets


def colour_histogram(frame: RGBImage, face: DetectedFace, *, bins: int = 8) -> NDArray[np.float32]:
    """A cheap appearance cue: an L2-normalised hue-saturation histogram of the face box.

    Usable as ``FaceTracker(appearance=colour_histogram)``; it helps keep identities apart
    when two faces cross, at about 50 µs per face.
    """
    height, width = frame.shape[:2]
    box = face.box
    x0, y0 = max(0, int(box.left)), max(0, int(box.top))
    x1, y1 = min(width, math.ceil(box.right)), min(height, math.ceil(box.bottom))
    if x1 <= x0 or y1 <= y0:
        return np.zeros(bins * bins, dtype=np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [bins, bins], [0, 180, 0, 256]).ravel()
    norm = float(np.linalg.norm(hist))
    return (hist / norm if norm > 0 else hist).astype(np.float32)
