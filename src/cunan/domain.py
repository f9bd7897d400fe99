"""Typed values passed between the stages of CunAn (frozen dataclasses, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: An RGB image, height x width x 3, uint8, C-contiguous.
RGBImage = NDArray[np.uint8]
#: Five facial landmarks as (x, y) rows, float32, in the canonical order of
#: :data:`LANDMARK_NAMES` (image left/right, not the person's).
Landmarks5 = NDArray[np.float32]
#: One or more embeddings, one row each, float32.
Vectors = NDArray[np.float32]

LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """An axis-aligned box in pixel coordinates (right/bottom exclusive)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)

    def iou(self, other: BoundingBox) -> float:
        """Intersection over union, 0 for disjoint boxes."""
        ix = max(0.0, min(self.right, other.right) - max(self.left, other.left))
        iy = max(0.0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[float]:
        return [self.left, self.top, self.right, self.bottom]


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face found by a detector: box, detector confidence and five landmarks.

    ``landmarks_source`` says where the landmarks came from (``"dlib5"`` when dlib's
    5-point shape predictor refined them, otherwise the detector's own name), because
    some detectors give eye centres and mouth corners and others only approximate them.
    """

    box: BoundingBox
    score: float
    landmarks: Landmarks5
    detector: str
    landmarks_source: str
    #: dlib's raw 5-point shape (5, 2) when it was computed during detection, so the
    #: dlib embedder's alignment need not run the shape predictor a second time.
    dlib_points: NDArray[np.float64] | None = None


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """Measured quality of one face and whether it passes the thresholds it was judged by."""

    face_width_px: float
    interocular_px: float
    sharpness: float
    frontalness: float
    yaw_ratio: float
    roll_deg: float
    brightness: float
    passed: bool
    reasons: tuple[str, ...] = field(default=())
    #: Standard deviation of the grey face crop (0-255); 0 where it was not measured.
    contrast: float = 0.0


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Embedding vectors (one row per face) tagged with the id of the model that made them."""

    vectors: Vectors
    model_id: str

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2:
            raise ValueError(f"embeddings must be 2-D, got shape {self.vectors.shape}")

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


@dataclass(frozen=True, slots=True)
class AnalyzedFace:
    """A detected face with its quality and (optionally) its embedding."""

    face: DetectedFace
    quality: FaceQuality
    embedding: NDArray[np.float32] | None
    model_id: str | None
