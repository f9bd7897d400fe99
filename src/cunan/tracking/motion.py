"""Motion gate: a cheap low-resolution frame difference inside a detection zone."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
from numpy.typing import NDArray

from cunan.domain import BoundingBox, DetectedFace, RGBImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DetectionZone:
    """The part of the frame that is watched: a polygon in full-frame pixel coordinates.

    Pixels outside it are ignored by the motion gate (a busy road beside the lane, a tree
    in the wind). ``None`` instead of a zone means the whole frame.
    """

    polygon: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError("a detection zone needs at least 3 points")

    @classmethod
    def rectangle(cls, left: float, top: float, right: float, bottom: float) -> DetectionZone:
        if right <= left or bottom <= top:
            raise ValueError("rectangle zone must have right > left and bottom > top")
        return cls(((left, top), (right, top), (right, bottom), (left, bottom)))

    def contains(self, x: float, y: float) -> bool:
        """Whether the point (full-frame pixels) lies inside the zone or on its edge."""
        points = np.array(self.polygon, dtype=np.float32).reshape(-1, 1, 2)
        return float(cv2.pointPolygonTest(points, (float(x), float(y)), False)) >= 0

    def holds(self, face: DetectedFace) -> bool:
        """Whether a detected face belongs to the zone: the centre of its box is inside."""
        box = face.box
        return self.contains((box.left + box.right) / 2, (box.top + box.bottom) / 2)

    def bounds(self, width: int, height: int) -> BoundingBox:
        """The zone's bounding box clipped to a frame of this size."""
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return BoundingBox(
            left=max(0.0, min(xs)),
            top=max(0.0, min(ys)),
            right=min(float(width), max(xs)),
            bottom=min(float(height), max(ys)),
        )


@dataclass(frozen=True, slots=True)
class MotionConfig:
    """Policy of the motion gate; defaults tuned on the street video and synthetic frames.

    All pixel values are on the downscaled grey image unless a name says ``full``.
    """

    #: Width of the analysed grey image in pixels (height keeps the aspect ratio).
    analysis_width_px: int = 160
    #: Gaussian blur kernel side (odd) on the small image; smooths sensor noise.
    blur_kernel_px: int = 5
    #: Grey-level difference (0-255) from the background that counts as change.
    diff_threshold: float = 18.0
    #: Fraction of the zone that must change for the frame to count as motion.
    min_changed_fraction: float = 0.002
    #: Weight of the newest frame in the exponential background average (per frame).
    background_alpha: float = 0.05
    #: When more than this fraction of the zone changes at once, the scene changed
    #: globally (lights, IR switch, camera bumped): re-seed the background, report no motion.
    reseed_fraction: float = 0.7
    #: When the motion regions cover more than this fraction of the zone's box, the
    #: gate returns the whole zone as one region (one detector pass is cheaper than many).
    whole_zone_fraction: float = 0.4
    #: Padding added around each motion region, as a fraction of its larger side, in
    #: full-frame pixels at least ``min_region_padding_full_px``: a face sits above the
    #: moving body and the detector needs context around it.
    region_padding_fraction: float = 0.25
    min_region_padding_full_px: int = 48
    #: Changed blobs smaller than this many small-image pixels are noise.
    min_blob_px: int = 4
    #: Normalise each frame's brightness to the background's median (robust to a
    #: camera's auto-exposure steps and clouds).
    normalise_brightness: bool = True

    def __post_init__(self) -> None:
        if self.analysis_width_px < 16:
            raise ValueError("analysis_width_px must be >= 16")
        if self.blur_kernel_px < 1 or self.blur_kernel_px % 2 == 0:
            raise ValueError("blur_kernel_px must be a positive odd number")
        if not 0.0 < self.background_alpha <= 1.0:
            raise ValueError("background_alpha must be in (0, 1]")
        if not 0.0 < self.reseed_fraction <= 1.0:
            raise ValueError("reseed_fraction must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What the gate saw in one frame.

    ``regions`` are boxes in full-frame coordinates where detection should run (merged,
    padded, clipped to the zone's box); ``whole_zone`` says the regions are the zone itself
    because motion was large. ``reseeded`` marks a frame where the background was reset.
    """

    motion: bool
    regions: tuple[BoundingBox, ...]
    changed_fraction: float
    whole_zone: bool = False
    reseeded: bool = False


@dataclass(slots=True)
class _Geometry:
    frame_shape: tuple[int, int]
    small_size: tuple[int, int]  # width, height
    scale: float  # full-frame pixels per small pixel
    mask: NDArray[np.bool_]
    mask_u8: NDArray[np.uint8]
    zone_pixels: int
    zone_box: BoundingBox
    intermediate_size: tuple[int, int] = field(default=(0, 0))


class MotionGate:
    """Frame differencing against a running background, at low resolution, inside a zone.

    Stateful (one per camera). ``check`` is the only call; the first frame seeds the
    background and reports no motion.
    """

    def __init__(self, config: MotionConfig | None = None, zone: DetectionZone | None = None):
        self.config = config or MotionConfig()
        self.zone = zone
        self._geometry: _Geometry | None = None
        self._background: NDArray[np.float32] | None = None
        self._background_median = 0.0
        kernel = self.config.blur_kernel_px
        self._blur = (kernel, kernel)

    def reset(self) -> None:
        """Forget the background (e.g. after a reconnect: the next frame re-seeds it)."""
        self._background = None

    def check(self, frame: RGBImage) -> MotionResult:
        geometry = self._geometry_for(frame)
        small = self._small_grey(frame, geometry)
        if self._background is None:
            self._seed(small, geometry)
            return MotionResult(False, (), 0.0, reseeded=True)
        if self.config.normalise_brightness:
            median = self._median(small, geometry)
            if median > 1.0:
                # Multiplicative gain: auto-exposure and daylight scale all pixels alike.
                small *= self._background_median / median
        diff = cv2.absdiff(small, self._background)
        changed = (diff > self.config.diff_threshold) & geometry.mask
        count = int(np.count_nonzero(changed))
        fraction = count / geometry.zone_pixels
        if fraction > self.config.reseed_fraction:
            logger.debug("global change over %.0f%% of the zone; re-seeding", fraction * 100)
            self._seed(small, geometry)
            return MotionResult(False, (), fraction, reseeded=True)
        cv2.accumulateWeighted(small, self._background, self.config.background_alpha)
        if fraction < self.config.min_changed_fraction:
            return MotionResult(False, (), fraction)
        regions = self._regions(changed, geometry)
        if not regions:
            return MotionResult(False, (), fraction)
        zone_area = geometry.zone_box.width * geometry.zone_box.height
        covered = sum(r.width * r.height for r in regions)
        if covered > self.config.whole_zone_fraction * zone_area:
            return MotionResult(True, (geometry.zone_box,), fraction, whole_zone=True)
        return MotionResult(True, tuple(regions), fraction)

    def _seed(self, small: NDArray[np.float32], geometry: _Geometry) -> None:
        self._background = small.copy()
        self._background_median = self._median(small, geometry)

    @staticmethod
    def _median(small: NDArray[np.float32], geometry: _Geometry) -> float:
        # A 256-bin histogram median: ~10x cheaper than np.median on the masked pixels, and
        # whole grey levels are precise enough for an exposure gain.
        hist = cv2.calcHist([small], [0], geometry.mask_u8, [256], [0.0, 256.0]).ravel()
        cumulative = np.cumsum(hist)
        return float(np.searchsorted(cumulative, cumulative[-1] / 2.0))

    def _geometry_for(self, frame: RGBImage) -> _Geometry:
        height, width = frame.shape[:2]
        cached = self._geometry
        if cached is not None and cached.frame_shape == (height, width):
            return cached
        small_w = min(self.config.analysis_width_px, width)
        small_h = max(1, round(height * small_w / width))
        scale = width / small_w
        mask_img = np.zeros((small_h, small_w), dtype=np.uint8)
        if self.zone is None:
            mask_img[:] = 1
            zone_box = BoundingBox(0.0, 0.0, float(width), float(height))
        else:
            points = np.array(self.zone.polygon, dtype=np.float64) / scale
            cv2.fillPoly(mask_img, [np.round(points).astype(np.int32)], 1)
            zone_box = self.zone.bounds(width, height)
        mask = mask_img.astype(bool)
        zone_pixels = int(np.count_nonzero(mask))
        if zone_pixels == 0:
            raise ValueError("the detection zone does not cover any part of the frame")
        # Nearest-neighbour to twice the analysis size, then area-average down: every small
        # pixel averages 4 samples (noise) at a cost that does not grow with the frame.
        self._geometry = _Geometry(
            frame_shape=(height, width),
            small_size=(small_w, small_h),
            scale=scale,
            mask=mask,
            mask_u8=mask_img,
            zone_pixels=zone_pixels,
            zone_box=zone_box,
            intermediate_size=(min(2 * small_w, width), min(2 * small_h, height)),
        )
        self._background = None
        return self._geometry

    def _small_grey(self, frame: RGBImage, geometry: _Geometry) -> NDArray[np.float32]:
        mid = cv2.resize(frame, geometry.intermediate_size, interpolation=cv2.INTER_NEAREST)
        grey = cv2.cvtColor(mid, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(grey, geometry.small_size, interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(small, self._blur, 0)
        return np.asarray(blurred, dtype=np.float32)

    def _regions(self, changed: NDArray[np.bool_], geometry: _Geometry) -> list[BoundingBox]:
        # Close small gaps so one walking person is one blob, not a dozen.
        mask = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        cfg = self.config
        boxes: list[BoundingBox] = []
        for i in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < cfg.min_blob_px:
                continue
            s = geometry.scale
            left, top, right, bottom = x * s, y * s, (x + w) * s, (y + h) * s
            pad = max(cfg.min_region_padding_full_px, cfg.region_padding_fraction * max(w, h) * s)
            boxes.append(
                _clip(
                    BoundingBox(left - pad, top - pad, right + pad, bottom + pad),
                    geometry.zone_box,
                )
            )
        return merge_boxes(boxes)


def _clip(box: BoundingBox, bounds: BoundingBox) -> BoundingBox:
    return BoundingBox(
        left=max(bounds.left, box.left),
        top=max(bounds.top, box.top),
        right=min(bounds.right, box.right),
        bottom=min(bounds.bottom, box.bottom),
    )


def _overlap(a: BoundingBox, b: BoundingBox) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


def merge_boxes(boxes: Sequence[BoundingBox]) -> list[BoundingBox]:
    """Union overlapping boxes until none overlap (so no face is detected twice)."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        out: list[BoundingBox] = []
        for box in merged:
            for i, other in enumerate(out):
                if _overlap(box, other):
                    out[i] = BoundingBox(
                        min(box.left, other.left),
                        min(box.top, other.top),
                        max(box.right, other.right),
                        max(box.bottom, other.bottom),
                    )
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return merged


class Detector(Protocol):
    """Anything that finds faces in an RGB image (e.g. ``BlazeFaceDetector``)."""

    def detect(self, image: RGBImage) -> list[DetectedFace]: ...


@runtime_checkable
class FrameScheduledDetector(Detector, Protocol):
    """A detector that carries state from one whole frame of a camera to the next (e.g.
    ``TileScheduler``); anything else (a crop) must go to its ``unscheduled`` detector."""

    @property
    def unscheduled(self) -> Detector: ...


def detect_in_regions(
    detector: Detector,
    frame: RGBImage,
    regions: Sequence[BoundingBox],
    *,
    whole_zone: bool = False,
) -> list[DetectedFace]:
    """Run ``detector`` on each region of ``frame`` and return faces in frame coordinates.

    Regions come from :meth:`MotionGate.check` and do not overlap, so no face is found
    twice unless it straddles two regions' padding. ``whole_zone`` says the one region is
    the camera's whole detection zone (the same crop every time): only then does a
    :class:`FrameScheduledDetector` keep its schedule; other crops go to its plain detector.
    """
    height, width = frame.shape[:2]
    faces: list[DetectedFace] = []
    for region in regions:
        x0, y0 = max(0, int(region.left)), max(0, int(region.top))
        x1, y1 = min(width, int(np.ceil(region.right))), min(height, int(np.ceil(region.bottom)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        # A motion crop is not the camera's next frame: a scheduler's per-frame state (which
        # tiles ran lately) would be advanced by each crop and mixed up between crops.
        scheduled = whole_zone and len(regions) == 1
        chosen = (
            detector.unscheduled
            if isinstance(detector, FrameScheduledDetector) and not scheduled
            else detector
        )
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        faces.extend(translate_face(f, float(x0), float(y0)) for f in chosen.detect(crop))
    return faces


def translate_face(face: DetectedFace, dx: float, dy: float) -> DetectedFace:
    """The same face with box and landmarks shifted by (dx, dy) pixels."""
    box = face.box
    shift = np.array([dx, dy], dtype=np.float32)
    return DetectedFace(
        box=BoundingBox(box.left + dx, box.top + dy, box.right + dx, box.bottom + dy),
        score=face.score,
        landmarks=(face.landmarks + shift).astype(np.float32),
        detector=face.detector,
        landmarks_source=face.landmarks_source,
    )
