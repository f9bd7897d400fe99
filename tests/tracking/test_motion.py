"""Motion gate on synthetic frames: noise, a moving square, the zone, brightness steps."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cunan.domain import BoundingBox, DetectedFace, RGBImage
from cunan.tracking.motion import (
    DetectionZone,
    MotionGate,
    detect_in_regions,
    merge_boxes,
)

from .conftest import make_face

H, W = 540, 960


def scene(seed: int = 0) -> NDArray[np.float64]:
    """A fixed textured background (smooth gradient plus blobs), float grey levels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = 80 + 60 * (x / W) + 30 * np.sin(y / 40.0)
    for _ in range(20):
        cx, cy, r = rng.integers(0, W), rng.integers(0, H), rng.integers(10, 60)
        base[(x - cx) ** 2 + (y - cy) ** 2 < r * r] += rng.integers(-40, 40)
    return np.asarray(base, dtype=np.float64)


def frame(
    base: NDArray[np.float64],
    rng: np.random.Generator,
    *,
    square: tuple[int, int] | None = None,
    gain: float = 1.0,
    noise: float = 3.0,
) -> RGBImage:
    grey = base * gain + rng.normal(0.0, noise, base.shape)
    if square is not None:
        x, y = square
        grey[y : y + 60, x : x + 60] = 240.0
    rgb = np.repeat(np.clip(grey, 0, 255)[:, :, None], 3, axis=2)
    return np.ascontiguousarray(rgb.astype(np.uint8))


def test_static_noisy_frames_report_no_motion() -> None:
    base, rng, gate = scene(), np.random.default_rng(1), MotionGate()
    results = [gate.check(frame(base, rng)) for _ in range(30)]
    assert not any(r.motion for r in results)


def test_moving_square_inside_zone_is_motion_with_a_region_around_it() -> None:
    base, rng = scene(), np.random.default_rng(2)
    gate = MotionGate(zone=DetectionZone.rectangle(0, 0, W / 2, H))
    for _ in range(5):
        gate.check(frame(base, rng))
    for step in range(5):
        x, y = 150 + 12 * step, 200
        result = gate.check(frame(base, rng, square=(x, y)))
        assert result.motion
        square = BoundingBox(x, y, x + 60, y + 60)
        assert any(
            r.left <= square.left and r.top <= square.top
            and r.right >= square.right and r.bottom >= square.bottom
            for r in result.regions
        )  # fmt: skip
        # Regions stay small: detection runs on the square's neighbourhood, not the zone.
        assert not result.whole_zone
        assert sum(r.width * r.height for r in result.regions) < 0.25 * (W / 2) * H


def test_same_square_outside_zone_is_no_motion() -> None:
    base, rng = scene(), np.random.default_rng(3)
    gate = MotionGate(zone=DetectionZone.rectangle(0, 0, W / 2, H))
    for _ in range(5):
        gate.check(frame(base, rng))
    results = [gate.check(frame(base, rng, square=(650 + 12 * s, 200))) for s in range(5)]
    assert not any(r.motion for r in results)


def test_polygon_zone_ignores_pixels_outside_it() -> None:
    base, rng = scene(), np.random.default_rng(4)
    triangle = DetectionZone(((0.0, 0.0), (W, 0.0), (0.0, H)))  # upper-left half
    gate = MotionGate(zone=triangle)
    for _ in range(3):
        gate.check(frame(base, rng))
    assert not gate.check(frame(base, rng, square=(850, 450))).motion
    assert gate.check(frame(base, rng, square=(100, 100))).motion


def test_brightness_step_does_not_report_motion_for_long() -> None:
    base, rng, gate = scene(), np.random.default_rng(5), MotionGate()
    for _ in range(5):
        gate.check(frame(base, rng))
    # Auto-exposure jumps by 35 %, then stays there.
    after = [gate.check(frame(base, rng, gain=1.35)).motion for _ in range(40)]
    assert not any(after[5:])


def test_sudden_global_change_reseeds_the_background() -> None:
    base, rng, gate = scene(), np.random.default_rng(6), MotionGate()
    gate.check(frame(base, rng))
    other = 255.0 - scene(seed=99)  # the camera was bumped: a different view entirely
    result = gate.check(frame(other, rng))
    assert result.reseeded and not result.motion
    assert not gate.check(frame(other, rng)).motion


def test_large_motion_returns_the_whole_zone() -> None:
    base, rng, gate = scene(), np.random.default_rng(7), MotionGate()
    gate.check(frame(base, rng))
    moved = base.copy()
    moved[:, : W // 2] = np.roll(base[:, : W // 2], 40, axis=1)  # half the view pans
    result = gate.check(frame(moved, rng))
    assert result.motion and result.whole_zone
    assert result.regions == (BoundingBox(0.0, 0.0, float(W), float(H)),)


def test_merge_boxes_unions_overlaps() -> None:
    boxes = [BoundingBox(0, 0, 10, 10), BoundingBox(5, 5, 20, 20), BoundingBox(50, 50, 60, 60)]
    merged = merge_boxes(boxes)
    assert sorted(b.as_list() for b in merged) == [[0, 0, 20, 20], [50, 50, 60, 60]]


class _ShiftedStub:
    """Finds one face at a fixed place of whatever image it is given."""

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return [make_face(30.0, 40.0, size=20.0)]


def test_detect_in_regions_returns_frame_coordinates() -> None:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    faces = detect_in_regions(_ShiftedStub(), image, [BoundingBox(100, 200, 300, 400)])
    assert faces[0].box.center == (130.0, 240.0)
    assert np.allclose(faces[0].landmarks[2], [130.0, 241.0])
