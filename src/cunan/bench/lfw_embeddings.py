"""Embeddings of every LFW image under one face-choice policy, computed once and cached."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from cunan.bench.lfw_data import LfwImage, image_path, list_images
from cunan.domain import BoundingBox, DetectedFace, RGBImage
from cunan.faces.align import (
    JITTER_MAX_ROTATION_DEG,
    JITTER_MAX_SHIFT,
    JITTER_MIN_SCALE,
    ChipJitter,
    random_jitters,
)
from cunan.faces.detect import DlibCnnDetector
from cunan.faces.embed import OnnxModelSpec, l2_normalise
from cunan.faces.engine import JITTER_SEED, EngineConfig, FaceEngine, central_face
from cunan.faces.imageio import load_image
from cunan.faces.landmarks import FivePointLandmarker, canonical_from_dlib5
from cunan.faces.models import ModelNotAvailableError, cache_dir
from cunan.faces.quality import SIGHTING_THRESHOLDS, assess_quality

logger = logging.getLogger(__name__)

Runtime = Literal["auto", "dlib", "onnx"]

#: Where the face is in a 250x250 LFW deep-funneled image when no detector finds it: the
#: funneling aligns every subject to the same place. The numbers are the median HOG box of
#: LFW images (rounded), so a fallback chip is cut like the chips of detected faces.
LFW_CENTRAL_BOX = BoundingBox(left=67.0, top=80.0, right=176.0, bottom=188.0)

#: Face-choice policy of these embeddings; part of the cache key.
POLICY = "hog1-central_cnn1-central_box"

#: Version of the cache file layout; v2 added each face's box and dlib 5-point shape, so
#: jittered runs re-align the chosen face without running the detectors again.
CACHE_LAYOUT = "v2"

#: How each image's face was found (index into this tuple is stored per image).
SOURCES = ("hog", "cnn", "central_box")

#: Per-image quality columns, in the units of :class:`cunan.domain.FaceQuality`.
QUALITY_FIELDS = ("face_width_px", "interocular_px", "sharpness", "frontalness", "brightness")


@dataclass(frozen=True, slots=True)
class LfwEmbeddings:
    """One embedding per LFW image (its central face) with how it was found and its quality."""

    names: tuple[str, ...]
    numbers: NDArray[np.int32]
    vectors: NDArray[np.float32]
    source: NDArray[np.int8]
    n_faces: NDArray[np.int16]
    quality: NDArray[np.float32]
    #: The chosen face of each image: box (left, top, right, bottom) and dlib's 5 points.
    boxes: NDArray[np.float32]
    points: NDArray[np.float32]
    model_id: str
    runtime: str
    images_per_s: float
    build_seconds: float
    build_load: str
    workers: int

    def index(self) -> dict[tuple[str, int], int]:
        """Row of each (name, number)."""
        return {
            (n, int(k)): i for i, (n, k) in enumerate(zip(self.names, self.numbers, strict=True))
        }

    def source_counts(self) -> dict[str, int]:
        return {s: int((self.source == i).sum()) for i, s in enumerate(SOURCES)}

    def multi_face_images(self) -> int:
        return int((self.n_faces > 1).sum())

    def face(self, row: int) -> DetectedFace:
        """The face chosen in image ``row``, rebuilt from the cache (no detector runs)."""
        left, top, right, bottom = (float(v) for v in self.boxes[row])
        points = self.points[row].astype(np.float64)
        return DetectedFace(
            box=BoundingBox(left=left, top=top, right=right, bottom=bottom),
            score=0.0,
            landmarks=canonical_from_dlib5(points),
            detector="lfw_cache",
            landmarks_source="dlib5",
            dlib_points=points,
        )


#: Where a benchmark learns of a site's own recognition model: the site's setting
#: ``faces.onnx_model``, which ``--onnx-model`` sets for the run (the processes a benchmark
#: starts inherit it), so every benchmark embeds with the model the site would use.
ONNX_MODEL_ENV = "CUNAN_FACES__ONNX_MODEL"


def configured_onnx_model() -> Path | None:
    """The recognition model the benchmarks use instead of dlib's ResNet, if any: the
    ``faces.onnx_model`` of the settings (``CUNAN_CONFIG`` file or environment)."""
    from cunan.config import load_settings

    return load_settings().faces.onnx_model


def use_onnx_model(path: Path | None) -> None:
    """Make ``path`` the model of this benchmark run (``--onnx-model``); None keeps the
    settings' choice."""
    if path is not None:
        os.environ[ONNX_MODEL_ENV] = str(Path(path).resolve())


def bench_model_id() -> str:
    """The id of the model the benchmarks embed with (the LFW cache is keyed by it)."""
    onnx_model = configured_onnx_model()
    if onnx_model is None:
        return "dlib_resnet_v1"
    return build_engine("auto").model_id


def build_engine(runtime: Runtime, *, upsample: int = 1) -> FaceEngine:
    """HOG engine with dlib's ResNet, or with the site's ONNX model when the settings name
    one (:func:`configured_onnx_model`); ``auto`` falls back to dlib when ONNX Runtime is
    unavailable."""
    onnx_model = configured_onnx_model()
    if onnx_model is not None:
        return FaceEngine.from_config(
            EngineConfig(
                detector="dlib_hog",
                upsample=upsample,
                onnx_model=OnnxModelSpec(path=onnx_model),
                threads=1,
            )
        )
    config = EngineConfig(detector="dlib_hog", upsample=upsample, embed_runtime=runtime, threads=1)
    try:
        return FaceEngine.from_config(config)
    except (ImportError, ModelNotAvailableError) as exc:
        if runtime != "auto":
            raise
        logger.info("ONNX runtime of dlib's ResNet unavailable (%s); using dlib", exc)
        return FaceEngine.from_config(
            EngineConfig(detector="dlib_hog", upsample=upsample, embed_runtime="dlib", threads=1)
        )


def engine_runtime(engine: FaceEngine) -> str:
    return str(getattr(engine.embedder, "runtime", "unknown"))


class LfwFaceChooser:
    """The LFW face choice: central HOG face, else central CNN face, else the fixed box."""

    def __init__(self, engine: FaceEngine) -> None:
        self.engine = engine
        self.landmarker = FivePointLandmarker()
        self._cnn: DlibCnnDetector | None = None

    def choose(self, image: RGBImage) -> tuple[DetectedFace, int, int]:
        """The face, its source (index into :data:`SOURCES`) and how many faces HOG found."""
        height, width = image.shape[:2]
        faces = self.engine.detect(image)
        face = central_face(faces, width, height)
        if face is not None:
            return face, 0, len(faces)
        if self._cnn is None:
            # Built lazily: the MMOD model is only needed for the few images HOG misses.
            self._cnn = DlibCnnDetector(upsample=1, landmarker=self.landmarker)
        cnn_faces = self._cnn.detect(image)
        face = central_face(cnn_faces, width, height)
        if face is not None:
            return face, 1, len(cnn_faces)
        box = LFW_CENTRAL_BOX
        fallback = DetectedFace(
            box=box,
            score=0.0,
            landmarks=self.landmarker.canonical(image, box),
            detector="lfw_central_box",
            landmarks_source="dlib5",
        )
        return fallback, 2, 0


_worker: LfwFaceChooser | None = None


def _init_worker(runtime: Runtime) -> None:
    global _worker
    _worker = LfwFaceChooser(build_engine(runtime))


@dataclass(frozen=True, slots=True)
class _Chunk:
    vectors: NDArray[np.float32]
    source: NDArray[np.int8]
    n_faces: NDArray[np.int16]
    quality: NDArray[np.float32]
    boxes: NDArray[np.float32]
    points: NDArray[np.float32]
    runtime: str


def _embed_chunk(paths: Sequence[str]) -> _Chunk:
    assert _worker is not None, "worker not initialised"
    chooser = _worker
    chips = []
    sources = np.zeros(len(paths), dtype=np.int8)
    counts = np.zeros(len(paths), dtype=np.int16)
    quality = np.zeros((len(paths), len(QUALITY_FIELDS)), dtype=np.float32)
    boxes = np.zeros((len(paths), 4), dtype=np.float32)
    points = np.zeros((len(paths), 5, 2), dtype=np.float32)
    for i, path in enumerate(paths):
        image = load_image(path)
        face, source, n_faces = chooser.choose(image)
        if face.dlib_points is None:
            # The fallback box has no shape yet; computing it here (as align would) lets
            # the cache keep the exact points this image's chip was cut from.
            face = replace(face, dlib_points=chooser.landmarker.points(image, face.box))
        sources[i] = source
        counts[i] = n_faces
        q = assess_quality(image, face, SIGHTING_THRESHOLDS)
        quality[i] = [getattr(q, name) for name in QUALITY_FIELDS]
        boxes[i] = face.box.as_list()
        points[i] = np.asarray(face.dlib_points, dtype=np.float32)
        chips.append(chooser.engine.embedder.align(image, [face]))
    # One embedding call per chunk: batching across images is what makes ONNX fast.
    vectors = chooser.engine.embedder.embed_chips(np.concatenate(chips)).vectors
    return _Chunk(vectors, sources, counts, quality, boxes, points, engine_runtime(chooser.engine))


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def machine_load() -> str:
    """``uptime``'s load averages, recorded beside wall times (another process may be busy)."""
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
    except OSError:
        return "unknown"


def cache_path(lfw_dir: Path, images: Sequence[LfwImage], model_id: str) -> Path:
    digest = hashlib.sha256()
    digest.update(str(lfw_dir.resolve()).encode())
    for image in images:
        digest.update(f"{image.name}/{image.number}\n".encode())
    name = f"lfw-{model_id}-{POLICY}-{CACHE_LAYOUT}-{digest.hexdigest()[:12]}.npz"
    return cache_dir() / "bench" / name


def compute_embeddings(
    images: Sequence[LfwImage],
    *,
    runtime: Runtime = "auto",
    workers: int = 2,
    chunk: int = 32,
    show_progress: bool = True,
) -> tuple[_Chunk, float]:
    """Embed every image with ``workers`` processes; also returns the wall time in seconds."""
    paths = [str(image.path) for image in images]
    parts: list[_Chunk] = []
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn" if os.name != "posix" else "fork")
    with (
        ctx.Pool(workers, initializer=_init_worker, initargs=(runtime,)) as pool,
        Progress(disable=not show_progress, transient=True) as progress,
    ):
        task = progress.add_task("embedding LFW", total=len(paths))
        for part in pool.imap(_embed_chunk, list(_chunks(paths, chunk))):
            parts.append(part)
            progress.advance(task, len(part.source))
    seconds = time.perf_counter() - start
    merged = _Chunk(
        vectors=np.vstack([p.vectors for p in parts]),
        source=np.concatenate([p.source for p in parts]),
        n_faces=np.concatenate([p.n_faces for p in parts]),
        quality=np.vstack([p.quality for p in parts]),
        boxes=np.vstack([p.boxes for p in parts]),
        points=np.concatenate([p.points for p in parts]),
        runtime=parts[0].runtime if parts else runtime,
    )
    return merged, seconds


def load_or_compute(
    lfw_dir: Path,
    *,
    runtime: Runtime = "auto",
    workers: int = 2,
    refresh: bool = False,
    show_progress: bool = True,
) -> LfwEmbeddings:
    """The cached embeddings of every LFW image, computing (and caching) them if needed.

    Both runtimes give the same numbers, so the cache is keyed by model id, face-choice
    policy and the image list, not by runtime.
    """
    images = list_images(lfw_dir)
    model_id = bench_model_id()
    path = cache_path(lfw_dir, images, model_id)
    if path.is_file() and not refresh:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return LfwEmbeddings(
                names=tuple(str(n) for n in data["names"]),
                numbers=data["numbers"].astype(np.int32),
                vectors=data["vectors"].astype(np.float32),
                source=data["source"].astype(np.int8),
                n_faces=data["n_faces"].astype(np.int16),
                quality=data["quality"].astype(np.float32),
                boxes=data["boxes"].astype(np.float32),
                points=data["points"].astype(np.float32),
                model_id=str(meta["model_id"]),
                runtime=str(meta["runtime"]),
                images_per_s=float(meta["images_per_s"]),
                build_seconds=float(meta["build_seconds"]),
                build_load=str(meta["build_load"]),
                workers=int(meta["workers"]),
            )
    load_before = machine_load()
    chunk, seconds = compute_embeddings(
        images, runtime=runtime, workers=workers, show_progress=show_progress
    )
    load_after = machine_load()
    result = LfwEmbeddings(
        names=tuple(image.name for image in images),
        numbers=np.asarray([image.number for image in images], dtype=np.int32),
        vectors=chunk.vectors,
        source=chunk.source,
        n_faces=chunk.n_faces,
        quality=chunk.quality,
        boxes=chunk.boxes,
        points=chunk.points,
        model_id=model_id,
        runtime=chunk.runtime,
        images_per_s=len(images) / seconds if seconds > 0 else 0.0,
        build_seconds=seconds,
        build_load=f"before: {load_before} | after: {load_after}",
        workers=workers,
    )
    meta = {
        "model_id": result.model_id,
        "runtime": result.runtime,
        "images_per_s": result.images_per_s,
        "build_seconds": result.build_seconds,
        "build_load": result.build_load,
        "workers": workers,
        "policy": POLICY,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        names=np.asarray(result.names),
        numbers=result.numbers,
        vectors=result.vectors,
        source=result.source,
        n_faces=result.n_faces,
        quality=result.quality,
        boxes=result.boxes,
        points=result.points,
        meta=np.asarray(json.dumps(meta)),
    )
    tmp.replace(path)
    logger.info("cached LFW embeddings at %s", path)
    return result


# -- jittered descriptors ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JitterSpec:
    """How each descriptor of a jittered run is made: the mean over ``copies`` chips.

    The chips are :func:`random_jitters`: the plain chip, its mirror image, then random
    jitters; 1 copy is the plain descriptor and 2 copies the chip + mirror average.
    """

    copies: int = 1
    seed: int = JITTER_SEED

    @classmethod
    def parse(cls, value: str) -> JitterSpec:
        """A number of copies (1 = no jitter), or ``"mirror"`` for 2."""
        if value.strip().lower() == "mirror":
            return cls(copies=2)
        try:
            copies = int(value)
        except ValueError:
            raise ValueError(
                f"jitter must be a number of copies or 'mirror', got {value!r}"
            ) from None
        if not 1 <= copies <= 1000:
            raise ValueError(f"jitter copies must be between 1 and 1000, got {copies}")
        return cls(copies=copies)

    @property
    def is_plain(self) -> bool:
        return self.copies == 1

    def jitters(self) -> tuple[ChipJitter, ...]:
        return random_jitters(self.copies, self.seed)

    def label(self) -> str:
        if self.copies <= 2:
            return ("none", "chip + mirror")[self.copies - 1]
        return f"{self.copies} copies (chip, mirror, {self.copies - 2} random)"

    def key(self) -> str:
        """Part of the cache name: everything that changes the jittered chips."""
        ranges = f"r{JITTER_MAX_ROTATION_DEG:g}-t{JITTER_MAX_SHIFT:g}-z{JITTER_MIN_SCALE:g}"
        # "pm": copies 1 and 2 are the plain chip and its mirror image (then random).
        return f"j{self.copies}-pm-s{self.seed}-{ranges}"


@dataclass(frozen=True, slots=True)
class JitteredVectors:
    """Jittered descriptors of some LFW images (rows of the base embeddings).

    ``vectors`` has a row per LFW image; rows never computed are NaN (``have`` is False).
    ``images_per_s`` covers the jitter pass only (image load, chips, embeddings in one
    process with one thread); finding the face is the base run's cost.
    """

    spec: JitterSpec
    vectors: NDArray[np.float32]
    have: NDArray[np.bool_]
    images: int
    seconds: float
    loads: tuple[str, ...]
    #: Longer runs whose first copies gave these descriptors (their time is pro rata).
    derived_from: tuple[str, ...] = ()

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def jitter_cache_path(base_path: Path, spec: JitterSpec) -> Path:
    return base_path.with_name(base_path.stem + f"-{spec.key()}.npz")


#: Shorter runs saved from every longer random run: the first ``p`` of ``random_jitters(n)``
#: are ``random_jitters(p)``, so their mean is the ``p``-copy descriptor at no extra cost.
PREFIX_COPIES = (2, 5, 10, 20, 50)


def _jitter_rows(
    lfw_dir: Path,
    base: LfwEmbeddings,
    rows: Sequence[int],
    spec: JitterSpec,
    runtime: Runtime,
    show_progress: bool,
) -> dict[int, NDArray[np.float32]]:
    """Jittered descriptors of ``rows`` in this process, batched across images.

    Returns them by number of copies: ``spec.copies`` and, for random jitters, the
    shorter :data:`PREFIX_COPIES` (means of the first copies of the same chips).
    """
    embedder = build_engine(runtime).embedder
    jitters = spec.jitters()
    n = len(jitters)
    prefixes = [p for p in PREFIX_COPIES if p < n]
    # Enough images per model call to fill a batch of 32 chips when there are few copies.
    group = max(1, 32 // n)
    out = {c: np.zeros((len(rows), embedder.dim), dtype=np.float32) for c in [*prefixes, n]}
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"LFW, {spec.label()}", total=len(rows))
        for start in range(0, len(rows), group):
            batch = rows[start : start + group]
            chips = np.concatenate(
                [
                    embedder.align_jittered(
                        load_image(image_path(lfw_dir, base.names[r], int(base.numbers[r]))),
                        base.face(r),
                        jitters,
                    )
                    for r in batch
                ]
            )
            # Same arithmetic as cunan.faces.embed.embed_jittered, for every prefix.
            per_chip = embedder.embed_chips(chips).vectors.reshape(len(batch), n, -1)
            for copies, target in out.items():
                means = per_chip[:, :copies].mean(axis=1, dtype=np.float64).astype(np.float32)
                target[start : start + len(batch)] = l2_normalise(means)
            progress.advance(task, len(batch))
    return out


def _read_jitter_cache(
    path: Path, shape: tuple[int, int]
) -> tuple[NDArray[np.float32], NDArray[np.bool_], dict[str, object]]:
    if not path.is_file():
        empty: dict[str, object] = {"images": 0, "seconds": 0.0, "loads": []}
        return np.full(shape, np.nan, dtype=np.float32), np.zeros(shape[0], dtype=bool), empty
    with np.load(path, allow_pickle=False) as data:
        vectors = data["vectors"].astype(np.float32)
        have = data["have"].astype(bool)
        meta = json.loads(str(data["meta"]))
    return vectors, have, meta


def _write_jitter_cache(
    path: Path, vectors: NDArray[np.float32], have: NDArray[np.bool_], meta: dict[str, object]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, vectors=vectors, have=have, meta=np.asarray(json.dumps(meta)))
    tmp.replace(path)


def load_or_compute_jittered(
    lfw_dir: Path,
    base: LfwEmbeddings,
    rows: Sequence[int],
    spec: JitterSpec,
    *,
    runtime: Runtime = "auto",
    show_progress: bool = True,
) -> JitteredVectors:
    """Jittered descriptors of at least ``rows``; cached, computing only the missing rows.

    The cache sits beside the base embeddings' (same model, policy and image list) with
    the jitter spec in its name, and grows as runs ask for more rows. A random run also
    fills the caches of its shorter prefixes; their time is the run's, scaled by the
    share of copies (the embeddings are nearly all of the cost) and marked as derived.
    """
    images = list_images(lfw_dir)
    base_path = cache_path(lfw_dir, images, base.model_id)
    path = jitter_cache_path(base_path, spec)
    shape = (len(base.names), int(base.vectors.shape[1]))
    vectors, have, meta = _read_jitter_cache(path, shape)
    missing = [int(r) for r in rows if not have[r]]
    if missing:
        load_before = machine_load()
        start = time.perf_counter()
        results = _jitter_rows(lfw_dir, base, missing, spec, runtime, show_progress)
        seconds = time.perf_counter() - start
        load = f"{len(missing)} images: before: {load_before} | after: {machine_load()}"
        n = len(spec.jitters())
        for copies, computed in results.items():
            target = spec if copies == n else replace(spec, copies=copies)
            target_path = jitter_cache_path(base_path, target)
            v, h, m = (
                (vectors, have, meta) if target == spec else _read_jitter_cache(target_path, shape)
            )
            new = [r for r, row in enumerate(missing) if not h[row]]
            new_rows = [missing[r] for r in new]
            v[new_rows] = computed[new]
            h[new_rows] = True
            share = len(new) / len(missing) * (copies / n)
            m["images"] = int(str(m["images"])) + len(new)
            m["seconds"] = float(str(m["seconds"])) + seconds * share
            m["loads"] = [*_str_list(m["loads"]), load]
            if target != spec:
                m["derived_from"] = sorted({*_str_list(m.get("derived_from", [])), spec.key()})
            m["spec"] = target.key()
            _write_jitter_cache(target_path, v, h, m)
        logger.info("cached jittered LFW embeddings at %s", path)
    return JitteredVectors(
        spec,
        vectors,
        have,
        int(str(meta["images"])),
        float(str(meta["seconds"])),
        tuple(_str_list(meta["loads"])),
        tuple(_str_list(meta.get("derived_from", []))),
    )


def _str_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
