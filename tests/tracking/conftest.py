"""Synthetic faces for the tracking tests."""

from __future__ import annotations

import numpy as np

from cunan.domain import BoundingBox, DetectedFace


def make_face(cx: float, cy: float, size: float = 60.0, score: float = 0.9) -> DetectedFace:
    """A detection centred at (cx, cy) with plausible frontal landmarks."""
    half = size / 2.0
    landmarks = np.array(
        [
            [cx - 0.2 * size, cy - 0.1 * size],
            [cx + 0.2 * size, cy - 0.1 * size],
            [cx, cy + 0.05 * size],
            [cx - 0.15 * size, cy + 0.25 * size],
            [cx + 0.15 * size, cy + 0.25 * size],
        ],
        dtype=np.float32,
    )
    return DetectedFace(
        box=BoundingBox(cx - half, cy - half, cx + half, cy + half),
        score=score,
        landmarks=landmarks,
        detector="synthetic",
        landmarks_source="synthetic",
    )
