"""The detection zone applies to faces: one found outside it (centre outside) is ignored."""

from __future__ import annotations

import cv2
import numpy as np

from cunan.domain import DetectedFace, RGBImage
from cunan.tracking.motion import DetectionZone, MotionConfig, MotionGate
from cunan.tracking.stage import TrackingStage

from .conftest import make_face
from .test_motion import H, W, frame, scene


class BrightSquareDetector:
    """A real detector for synthetic frames: every bright square is a "face"."""

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        grey = image[:, :, 0]
        mask = (grey >= 235).astype(np.uint8)
        count, _, stats, centroids = cv2.connectedComponentsWithStats(mask)
        return [
            make_face(float(centroids[i][0]), float(centroids[i][1]))
            for i in range(1, count)
            if stats[i][cv2.CC_STAT_AREA] >= 1000
        ]


#: The upper-left half of the frame: its bounding box is the whole frame.
TRIANGLE = DetectionZone(((0.0, 0.0), (float(W), 0.0), (0.0, float(H))))


def _detections(zone: DetectionZone | None) -> list[tuple[int, int]]:
    base, rng = scene(), np.random.default_rng(7)
    # Any motion hands the detector the zone's whole box (here: the whole frame), so the
    # square in the lower-right corner reaches it.
    gate = MotionGate(MotionConfig(whole_zone_fraction=0.0), zone=zone)
    stage = TrackingStage(BrightSquareDetector(), gate=gate)
    for step in range(3):
        stage.process(frame(base, rng), step * 0.1)
    bright = frame(base, rng, square=(100, 100))
    bright[440:500, 840:900] = 240  # a second square, outside the triangle
    result = stage.process(bright, 0.3)
    assert result.motion.motion
    return sorted((int(f.box.left + 30), int(f.box.top + 30)) for f in result.detections)


def test_faces_outside_the_zone_are_ignored() -> None:
    assert len(_detections(None)) == 2  # both squares are faces to the detector
    inside = _detections(TRIANGLE)
    assert len(inside) == 1
    x, y = inside[0]
    assert TRIANGLE.contains(x, y) and (x, y) == (129, 129)


def test_zone_contains_its_inside_and_edge_not_its_outside() -> None:
    square = DetectionZone.rectangle(10, 10, 20, 20)
    assert square.contains(15, 15) and square.contains(10, 15)
    assert not square.contains(25, 15) and not square.contains(15, 9)
