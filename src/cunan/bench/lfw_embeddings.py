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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from cunan.bench.lfw_data import LfwImage, list_images
from cunan.domain import BoundingBox, DetectedFace, RGBImage
from cunan.faces.detect import DlibCnnDetector
from cunan.faces.engine import EngineConfig, FaceEngine, central_face
from cunan.faces.imageio import load_image
from cunan.faces.landmarks import FivePointLandmarker
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
    model_id: str
    runtime: str
    images_per_s: float
    build_seconds: float
    build_load: str

    def index(self) -> dict[tuple[str, int], int]:
        """Row of each (name, number)."""
        return {
            (n, int(k)): i for i, (n, k) in enumerate(zip(self.names, self.numbers, strict=True))
        }

    def source_counts(self) -> dict[str, int]:
        return {s: int((self.source == i).sum()) for i, s in enumerate(SOURCES)}

    def multi_face_images(self) -> int:
        return int((self.n_faces > 1).sum())


def build_engine(runtime: Runtime, *, upsample: int = 1) -> FaceEngine:
    """HOG engine with dlib's ResNet; ``auto`` falls back to dlib when ONNX is unavailable."""
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
        self._landmarker = FivePointLandmarker()
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
            self._cnn = DlibCnnDetector(upsample=1, landmarker=self._landmarker)
        cnn_faces = self._cnn.detect(image)
        face = central_face(cnn_faces, width, height)
        if face is not None:
            return face, 1, len(cnn_faces)
        box = LFW_CENTRAL_BOX
        fallback = DetectedFace(
            box=box,
            score=0.0,
            landmarks=self._landmarker.canonical(image, box),
            detector="lfw_central_box",
            landmarks_source="dlib5",
        )
        return fallback, 2, 0


_worker: LfwFaceChooser | None = None


def _init_worker(runtime: Runtime) -> None:
    global _worker
    _worker = LfwFaceChooser(build_engine(runtime))


def _embed_chunk(
    paths: Sequence[str],
) -> tuple[NDArray[np.float32], NDArray[np.int8], NDArray[np.int16], NDArray[np.float32], str]:
    assert _worker is not None, "worker not initialised"
    chooser = _worker
    chips = []
    sources = np.zeros(len(paths), dtype=np.int8)
    counts = np.zeros(len(paths), dtype=np.int16)
    quality = np.zeros((len(paths), len(QUALITY_FIELDS)), dtype=np.float32)
    for i, path in enumerate(paths):
        image = load_image(path)
        face, source, n_faces = chooser.choose(image)
        sources[i] = source
        counts[i] = n_faces
        q = assess_quality(image, face, SIGHTING_THRESHOLDS)
        quality[i] = [getattr(q, name) for name in QUALITY_FIELDS]
        chips.append(chooser.engine.embedder.align(image, [face]))
    # One embedding call per chunk: batching across images is what makes ONNX fast.
    vectors = chooser.engine.embedder.embed_chips(np.concatenate(chips)).vectors
    return vectors, sources, counts, quality, engine_runtime(chooser.engine)


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
    return cache_dir() / "bench" / f"lfw-{model_id}-{POLICY}-{digest.hexdigest()[:12]}.npz"


def compute_embeddings(
    images: Sequence[LfwImage],
    *,
    runtime: Runtime = "auto",
    workers: int = 2,
    chunk: int = 32,
    show_progress: bool = True,
) -> tuple[
    NDArray[np.float32], NDArray[np.int8], NDArray[np.int16], NDArray[np.float32], str, float
]:
    """Embed every image with ``workers`` processes; also returns the wall time in seconds."""
    paths = [str(image.path) for image in images]
    parts: list[
        tuple[NDArray[np.float32], NDArray[np.int8], NDArray[np.int16], NDArray[np.float32], str]
    ] = []
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn" if os.name != "posix" else "fork")
    with (
        ctx.Pool(workers, initializer=_init_worker, initargs=(runtime,)) as pool,
        Progress(disable=not show_progress, transient=True) as progress,
    ):
        task = progress.add_task("embedding LFW", total=len(paths))
        for part in pool.imap(_embed_chunk, list(_chunks(paths, chunk))):
            parts.append(part)
            progress.advance(task, len(part[1]))
    seconds = time.perf_counter() - start
    return (
        np.vstack([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.vstack([p[3] for p in parts]),
        parts[0][4] if parts else runtime,
        seconds,
    )


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
    model_id = "dlib_resnet_v1"
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
                model_id=str(meta["model_id"]),
                runtime=str(meta["runtime"]),
                images_per_s=float(meta["images_per_s"]),
                build_seconds=float(meta["build_seconds"]),
                build_load=str(meta["build_load"]),
            )
    load_before = machine_load()
    vectors, source, n_faces, quality, used_runtime, seconds = compute_embeddings(
        images, runtime=runtime, workers=workers, show_progress=show_progress
    )
    load_after = machine_load()
    result = LfwEmbeddings(
        names=tuple(image.name for image in images),
        numbers=np.asarray([image.number for image in images], dtype=np.int32),
        vectors=vectors,
        source=source,
        n_faces=n_faces,
        quality=quality,
        model_id=model_id,
        runtime=used_runtime,
        images_per_s=len(images) / seconds if seconds > 0 else 0.0,
        build_seconds=seconds,
        build_load=f"before: {load_before} | after: {load_after}",
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
        meta=np.asarray(json.dumps(meta)),
    )
    tmp.replace(path)
    logger.info("cached LFW embeddings at %s", path)
    return result
