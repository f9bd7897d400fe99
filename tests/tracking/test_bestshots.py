"""Best-shot selection: the K best by score, diversity, crops usable without the frame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cunan.domain import BoundingBox, DetectedFace
from cunan.faces.engine import FaceEngine
from cunan.faces.imageio import load_image
from cunan.tracking.bestshots import BestShotConfig, BestShotSelector, TrackShots
from cunan.tracking.motion import MotionResult
from cunan.tracking.stage import FrameAnalysisError, TrackingStage
from cunan.tracking.tracker import FaceTracker, TrackUpdate

from .conftest import make_face


def textured_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, size=(480, 640, 3), dtype=np.uint8)


def test_keeps_the_k_best_by_score() -> None:
    frame = textured_frame()
    selector = BestShotSelector(BestShotConfig(max_shots=3, min_frame_gap=5))
    scores = [0.55, 0.9, 0.6, 0.95, 0.7, 0.85, 0.5, 0.8]
    for i, score in enumerate(scores):
        # Same place, same pixels: only the detector score differs, frames far apart.
        selector.offer(frame, 1, make_face(320, 240, 80, score=score), i * 0.4, i * 10)
    kept = selector.shots(1)
    assert [s.face.score for s in kept] == [0.95, 0.9, 0.85]
    assert kept[0].score > kept[1].score > kept[2].score


def test_near_duplicate_frames_are_not_all_kept() -> None:
    frame = textured_frame()
    config = BestShotConfig(max_shots=4, min_frame_gap=5)
    selector = BestShotSelector(config)
    for i in range(20):
        # Consecutive frames, slowly improving: the naive top 4 would be frames 16-19.
        selector.offer(frame, 1, make_face(320, 240, 80, score=0.5 + 0.02 * i), i / 25, i)
    frames = sorted(s.frame_index for s in selector.shots(1))
    assert len(frames) == 4
    # At most one face per window of min_frame_gap frames, and the best one of each.
    assert frames == [4, 9, 14, 19]


def test_a_different_pose_is_not_a_duplicate() -> None:
    frame = textured_frame()
    selector = BestShotSelector(BestShotConfig(max_shots=4, min_frame_gap=5))
    frontal = make_face(320, 240, 80)
    turned = make_face(320, 240, 80)
    turned.landmarks[2, 0] += 12.0  # nose a third of the eye distance off centre
    selector.offer(frame, 1, frontal, 0.0, 0)
    selector.offer(frame, 1, turned, 0.04, 1)
    assert len(selector.shots(1)) == 2


def test_crop_landmarks_are_in_crop_coordinates() -> None:
    frame = textured_frame()
    selector = BestShotSelector(BestShotConfig(crop_padding=0.5))
    face = make_face(300, 200, 80)
    selector.offer(frame, 7, face, 0.0, 0)
    shot = selector.shots(7)[0]
    x0, y0 = shot.crop_origin
    assert shot.crop.dtype == np.uint8 and shot.crop.flags["C_CONTIGUOUS"]
    assert shot.crop.shape == (160, 160, 3)
    assert np.array_equal(shot.crop, frame[y0 : y0 + 160, x0 : x0 + 160])
    assert np.allclose(shot.face.landmarks + np.array([x0, y0], dtype=np.float32), face.landmarks)
    assert np.allclose(shot.frame_face.box.as_list(), face.box.as_list())


def test_tracker_updates_feed_the_selector_and_end_with_the_track() -> None:
    frame = textured_frame()
    tracker, selector = FaceTracker(), BestShotSelector(BestShotConfig(max_shots=3))
    finished = []
    for i in range(40):
        faces = [make_face(100 + 5 * i, 240, 80)] if i < 30 else []
        if i == 10:
            faces.append(make_face(600, 100, 40))  # one-frame ghost: its shots are dropped
        update = tracker.update(i / 25, faces, frame)
        finished += selector.update(frame, update, faces)
    finished += selector.finish(tracker.flush())
    assert len(finished) == 1
    assert 1 <= len(finished[0].shots) <= 3
    assert {s.track_id for s in finished[0].shots} == {finished[0].track.track_id}
    assert selector._shots == {}  # nothing left behind: memory is bounded by live tracks


@pytest.mark.slow
def test_embedding_from_the_crop_matches_the_full_frame(engine: FaceEngine, examples: Path) -> None:
    image = load_image(examples / "obama.jpg")
    face = engine.detect(image)[0]
    selector = BestShotSelector()
    selector.offer(image, 1, face, 0.0, 0)
    shot = selector.shots(1)[0]
    assert shot.crop.shape[0] < image.shape[0] or shot.crop.shape[1] < image.shape[1]
    from_frame = engine.embedder.embed(image, [face]).vectors[0]
    from_crop = engine.embedder.embed(shot.crop, [shot.face]).vectors[0]
    assert float(np.max(np.abs(from_frame - from_crop))) < 1e-3


class _AlwaysMotion:
    """A gate that always sees motion over the whole frame (the faces here are synthetic)."""

    zone = None  # the whole frame: no face is left out

    def check(self, frame: np.ndarray) -> MotionResult:
        height, width = frame.shape[:2]
        return MotionResult(True, (BoundingBox(0, 0, width, height),), 1.0, whole_zone=True)


class _ScriptedDetector:
    def __init__(self, script: list[list[DetectedFace]]) -> None:
        self.script = script
        self.call = 0

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        faces = self.script[self.call] if self.call < len(self.script) else []
        self.call += 1
        return faces


class _FailsWhenATrackEnds(BestShotSelector):
    def update(
        self, frame: np.ndarray, update: TrackUpdate, detections: Sequence[DetectedFace]
    ) -> list[TrackShots]:
        if update.ended:
            raise ValueError("selector failed on the frame that ended a track")
        return super().update(frame, update, detections)


def test_a_selector_failure_hands_on_the_tracks_the_tracker_ended() -> None:
    frame = textured_frame()
    script = [[make_face(100 + 5 * i, 240, 80)] for i in range(20)]
    stage = TrackingStage(
        _ScriptedDetector(script),
        gate=_AlwaysMotion(),  # type: ignore[arg-type]
        selector=_FailsWhenATrackEnds(BestShotConfig(max_shots=3)),
    )
    caught: list[FrameAnalysisError] = []
    for i in range(80):
        try:
            stage.process(frame, i / 25)
        except FrameAnalysisError as exc:
            caught.append(exc)
            assert isinstance(exc.__cause__, ValueError)
    (error,) = caught
    (ended,) = error.finished
    assert ended.track.hits >= 3
    assert 1 <= len(ended.shots) <= 3  # the shots it had before the failing frame
    assert stage.selector._shots == {}  # nothing left behind
