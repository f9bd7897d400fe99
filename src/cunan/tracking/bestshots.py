"""Best shots: per track, the few best-quality, diverse faces, kept as padded crops."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cunan.domain import DetectedFace, FaceQuality, RGBImage
from cunan.faces.quality import SIGHTING_THRESHOLDS, QualityThresholds, assess_quality
from cunan.tracking.motion import translate_face
from cunan.tracking.tracker import Track, TrackUpdate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BestShotConfig:
    """How many faces a track keeps and how they are ranked.

    The score (0-1, higher is better) is a weighted sum of five terms, each in [0, 1]:

    - size: interocular distance / ``full_size_interocular_px`` (capped at 1); dlib's chips
      are 150 px, so eyes ~40 px apart already carry all the detail the embedder uses;
    - sharpness: Laplacian variance of the canonical 64 px crop / ``full_sharpness``;
    - frontalness: as measured by :func:`cunan.faces.quality.assess_quality` (1 = frontal);
    - brightness: 1 inside ``good_brightness`` (grey levels), falling linearly to 0 at
      black (0) and white (255);
    - detector score: the detector's own confidence.

    Faces that pass ``thresholds`` always rank above faces that fail them.
    """

    #: Faces kept per track (memory per track is at most this many crops).
    max_shots: int = 4
    #: Diversity: frames are grouped in windows of ``min_frame_gap`` frames (tracker
    #: updates); a face in the same window as a kept one AND with a yaw ratio within
    #: ``min_yaw_change`` of it is a near duplicate: it can only replace that face (when
    #: better), never sit beside it. So at most one shot per pose per window is kept.
    min_frame_gap: int = 5
    min_yaw_change: float = 0.15
    #: Crop padding on every side, as a fraction of the face box's larger side: enough
    #: for dlib's 25%-padded alignment chip and its 5-point shape predictor.
    crop_padding: float = 0.6
    thresholds: QualityThresholds = SIGHTING_THRESHOLDS
    size_weight: float = 0.3
    sharpness_weight: float = 0.25
    frontal_weight: float = 0.25
    brightness_weight: float = 0.1
    detector_weight: float = 0.1
    full_size_interocular_px: float = 40.0
    full_sharpness: float = 300.0
    good_brightness: tuple[float, float] = (70.0, 190.0)

    def __post_init__(self) -> None:
        if self.max_shots < 1:
            raise ValueError("max_shots must be >= 1")
        if self.min_frame_gap < 0 or self.crop_padding < 0:
            raise ValueError("min_frame_gap and crop_padding must be >= 0")


@dataclass(frozen=True, slots=True)
class BestShot:
    """One kept face: a padded crop of the frame and the face in crop coordinates.

    ``face`` (box and landmarks) is relative to ``crop``, so the face can be aligned and
    embedded from the crop alone: ``embedder.embed(shot.crop, [shot.face])``.
    ``crop_origin`` is the crop's top-left corner in the frame (x, y).
    """

    track_id: int
    timestamp_s: float
    frame_index: int
    score: float
    quality: FaceQuality
    face: DetectedFace
    crop: RGBImage
    crop_origin: tuple[int, int]

    @property
    def frame_face(self) -> DetectedFace:
        """The face in full-frame coordinates."""
        return translate_face(self.face, float(self.crop_origin[0]), float(self.crop_origin[1]))


@dataclass(frozen=True, slots=True)
class TrackShots:
    """A finished track with its best shots, best first."""

    track: Track
    shots: tuple[BestShot, ...]


def shot_score(face: DetectedFace, quality: FaceQuality, config: BestShotConfig) -> float:
    """The documented ranking score of one face (see :class:`BestShotConfig`)."""
    size = min(1.0, quality.interocular_px / config.full_size_interocular_px)
    sharpness = min(1.0, quality.sharpness / config.full_sharpness)
    low, high = config.good_brightness
    if quality.brightness < low:
        brightness = max(0.0, quality.brightness / low)
    elif quality.brightness > high:
        brightness = max(0.0, (255.0 - quality.brightness) / (255.0 - high))
    else:
        brightness = 1.0
    detector = min(1.0, max(0.0, face.score))
    return (
        config.size_weight * size
        + config.sharpness_weight * sharpness
        + config.frontal_weight * quality.frontalness
        + config.brightness_weight * brightness
        + config.detector_weight * detector
    )


def _window(frame_index: int, config: BestShotConfig) -> int:
    return frame_index // config.min_frame_gap if config.min_frame_gap > 1 else frame_index


def _rank(shot: BestShot) -> tuple[bool, float]:
    return (shot.quality.passed, shot.score)


class BestShotSelector:
    """Keeps, per live track, the ``max_shots`` best diverse faces (one per camera)."""

    def __init__(self, config: BestShotConfig | None = None) -> None:
        self.config = config or BestShotConfig()
        self._shots: dict[int, list[BestShot]] = {}

    def update(
        self, frame: RGBImage, update: TrackUpdate, detections: Sequence[DetectedFace]
    ) -> list[TrackShots]:
        """Offer this frame's assigned faces; return the shots of tracks that ended."""
        for a in update.assignments:
            face = detections[a.detection_index]
            self.offer(frame, a.track_id, face, update.timestamp_s, update.frame_index)
        return self._finish(update)

    def finish(self, update: TrackUpdate) -> list[TrackShots]:
        """Drop discarded tracks and return the shots of ended ones (e.g. after ``flush``)."""
        return self._finish(update)

    def shots(self, track_id: int) -> tuple[BestShot, ...]:
        """The current best shots of a live track, best first."""
        return tuple(sorted(self._shots.get(track_id, ()), key=_rank, reverse=True))

    def offer(
        self,
        frame: RGBImage,
        track_id: int,
        face: DetectedFace,
        timestamp_s: float,
        frame_index: int,
    ) -> bool:
        """Consider one face of a track; True when it was kept."""
        cfg = self.config
        quality = assess_quality(frame, face, cfg.thresholds)
        score = shot_score(face, quality, cfg)
        rank = (quality.passed, score)
        kept = self._shots.setdefault(track_id, [])
        # Fixed windows rather than "closer than N frames to a kept face": with a sliding
        # rule a face improving frame by frame would replace its predecessor all the way
        # along the track and leave a single shot.
        window = _window(frame_index, cfg)
        near = [
            s
            for s in kept
            if _window(s.frame_index, cfg) == window
            and abs(s.quality.yaw_ratio - quality.yaw_ratio) < cfg.min_yaw_change
        ]
        if near:
            # A near duplicate may only replace what it duplicates, so kept faces stay spread.
            if any(_rank(s) >= rank for s in near):
                return False
            for s in near:
                kept.remove(s)
        elif len(kept) >= cfg.max_shots:
            worst = min(kept, key=_rank)
            if _rank(worst) >= rank:
                return False
            kept.remove(worst)
        # The crop is cut only for faces that are kept: never a copy of every frame.
        kept.append(self._shot(frame, track_id, face, quality, score, timestamp_s, frame_index))
        return True

    def _finish(self, update: TrackUpdate) -> list[TrackShots]:
        for track_id in update.dropped:
            self._shots.pop(track_id, None)
        finished = []
        for track in update.ended:
            shots = sorted(self._shots.pop(track.track_id, []), key=_rank, reverse=True)
            finished.append(TrackShots(track, tuple(shots)))
        return finished

    def _shot(
        self,
        frame: RGBImage,
        track_id: int,
        face: DetectedFace,
        quality: FaceQuality,
        score: float,
        timestamp_s: float,
        frame_index: int,
    ) -> BestShot:
        height, width = frame.shape[:2]
        box = face.box
        pad = self.config.crop_padding * max(box.width, box.height)
        x0 = max(0, math.floor(box.left - pad))
        y0 = max(0, math.floor(box.top - pad))
        x1 = min(width, math.ceil(box.right + pad))
        y1 = min(height, math.ceil(box.bottom + pad))
        crop = np.array(frame[y0:y1, x0:x1], dtype=np.uint8, copy=True, order="C")
        return BestShot(
            track_id=track_id,
            timestamp_s=timestamp_s,
            frame_index=frame_index,
            score=score,
            quality=quality,
            face=translate_face(face, -float(x0), -float(y0)),
            crop=crop,
            crop_origin=(x0, y0),
        )
