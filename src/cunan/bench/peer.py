"""Side-by-side run of CunAn and the ``face_recognition`` package from image files."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from cunan.bench.identify import Sweep, sweep_scores
from cunan.bench.lfw_data import list_images
from cunan.bench.lfw_embeddings import Runtime, build_engine, engine_runtime, machine_load
from cunan.bench.openset_protocol import OpenSetSplit, lfw_open_set_split, tpir_at_fpir
from cunan.faces.engine import FaceEngine, central_face
from cunan.faces.imageio import load_image
from cunan.matching.openset import Gallery, OpenSetConfig, match_arrays

logger = logging.getLogger(__name__)

#: face_recognition's default decision tolerance (its CLI's ``--tolerance``).
PEER_TOLERANCE = 0.6


@dataclass(frozen=True, slots=True)
class SideResult:
    """One side of the comparison: wall time, faces found and open-set accuracy."""

    name: str
    wall_s: float
    images: int
    no_face: int
    tpir_at_fpir_1e2: float
    default_tpir: float
    default_fpir: float
    pipeline: str


@dataclass(frozen=True, slots=True)
class PeerReport:
    cunan: SideResult
    peer: SideResult
    load_before: str
    load_after: str
    n_identities: int
    n_probes: int
    n_strangers: int

    def as_json(self) -> dict[str, object]:
        def side(s: SideResult) -> dict[str, object]:
            return {
                "wall_s": round(s.wall_s, 1),
                "images": s.images,
                "images_per_s": round(s.images / s.wall_s, 2) if s.wall_s else None,
                "no_face": s.no_face,
                "tpir_at_fpir_1e-2": round(s.tpir_at_fpir_1e2, 4),
                "default_tpir": round(s.default_tpir, 4),
                "default_fpir": round(s.default_fpir, 4),
                "pipeline": s.pipeline,
            }

        return {
            "benchmark": "peer",
            "n_identities": self.n_identities,
            "n_probes": self.n_probes,
            "n_strangers": self.n_strangers,
            "cunan_wall_s": round(self.cunan.wall_s, 1),
            "peer_wall_s": round(self.peer.wall_s, 1),
            "speedup": round(self.peer.wall_s / self.cunan.wall_s, 2)
            if self.cunan.wall_s
            else None,
            "cunan_tpir_at_fpir_1e-2": round(self.cunan.tpir_at_fpir_1e2, 4),
            "peer_tpir_at_fpir_1e-2": round(self.peer.tpir_at_fpir_1e2, 4),
            "cunan": side(self.cunan),
            "peer": side(self.peer),
            "processes_each": 2,
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


# --- CunAn side --------------------------------------------------------------------------

_engine0: FaceEngine | None = None
_engine1: FaceEngine | None = None


def _cunan_init(runtime: Runtime) -> None:
    global _engine0, _engine1
    _engine0 = build_engine(runtime, upsample=0)
    # Upsampled HOG only for images where the plain pass finds nothing (faces < ~80 px).
    from cunan.faces.detect import DlibHogDetector

    _engine1 = FaceEngine(DlibHogDetector(upsample=1), _engine0.embedder)


def _cunan_chunk(paths: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.bool_], str]:
    assert _engine0 is not None and _engine1 is not None
    chips = []
    found = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        image = load_image(path)
        height, width = image.shape[:2]
        faces = _engine0.detect(image) or _engine1.detect(image)
        face = central_face(faces, width, height)
        if face is None:
            continue
        found[i] = True
        chips.append(_engine0.embedder.align(image, [face]))
    dim = _engine0.embedder.dim
    vectors = np.zeros((len(paths), dim), dtype=np.float32)
    if chips:
        # One batched embedding call per chunk of images.
        vectors[found] = _engine0.embedder.embed_chips(np.concatenate(chips)).vectors
    return vectors, found, engine_runtime(_engine0)


# --- face_recognition side ------------------------------------------------------------------


def _peer_init() -> None:
    import face_recognition  # noqa: F401 - load the models once per process


def _peer_one(path: str) -> NDArray[np.float64] | None:
    import face_recognition

    image = face_recognition.load_image_file(path)
    # Its default detector call: HOG, upsample 1.
    locations = face_recognition.face_locations(image)
    if not locations:
        return None
    height, width = image.shape[:2]
    cy, cx = height / 2.0, width / 2.0

    def off_centre(loc: tuple[int, int, int, int]) -> float:
        top, right, bottom, left = loc
        return float(((left + right) / 2.0 - cx) ** 2 + ((top + bottom) / 2.0 - cy) ** 2)

    # Same face choice as CunAn (the central face), so the comparison is of pipelines.
    location = min(locations, key=off_centre)
    encodings = face_recognition.face_encodings(image, [location])
    return np.asarray(encodings[0], dtype=np.float64) if encodings else None


def _peer_chunk(paths: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.bool_], str]:
    vectors = np.zeros((len(paths), 128), dtype=np.float32)
    found = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        encoding = _peer_one(path)
        if encoding is not None:
            vectors[i] = encoding
            found[i] = True
    return vectors, found, "face_recognition"


def _run_pool(
    label: str,
    paths: Sequence[str],
    init: Callable[..., None],
    initargs: tuple[Any, ...],
    work: Callable[[Sequence[str]], tuple[NDArray[np.float32], NDArray[np.bool_], str]],
    *,
    workers: int,
    chunk: int,
    show_progress: bool,
) -> tuple[NDArray[np.float32], NDArray[np.bool_], str]:
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    vectors, found, runtime = [], [], ""
    ctx = multiprocessing.get_context("fork")
    with (
        ctx.Pool(workers, initializer=init, initargs=initargs) as pool,
        Progress(disable=not show_progress, transient=True) as progress,
    ):
        task = progress.add_task(label, total=len(paths))
        for v, f, used in pool.imap(work, chunks):
            vectors.append(v)
            found.append(f)
            progress.advance(task, len(f))
            runtime = used
    return np.vstack(vectors), np.concatenate(found), runtime


def _evaluate(
    name: str,
    split: OpenSetSplit,
    vectors: NDArray[np.float32],
    found: NDArray[np.bool_],
    *,
    wall_s: float,
    pipeline: str,
    config: OpenSetConfig,
    sweep: Sweep,
) -> SideResult:
    """TPIR at FPIR 1e-2 (sweeping the rule's main number) and the rule's own operating point."""
    n_gal = len(split.gallery_rows)
    n_probe = len(split.probe_rows)
    gal_ok = found[:n_gal]
    gallery = Gallery.build(
        vectors[:n_gal][gal_ok],
        [n for n, ok in zip(split.gallery_names, gal_ok, strict=True) if ok],
        model_id="dlib_resnet_v1",
    )
    p = match_arrays(gallery, vectors[n_gal : n_gal + n_probe], config)
    s = match_arrays(gallery, vectors[n_gal + n_probe :], config)
    index = {n: i for i, n in enumerate(gallery.identities)}
    truth = np.asarray([index.get(n, -2) for n in split.probe_names])
    p_found, s_found = found[n_gal : n_gal + n_probe], found[n_gal + n_probe :]
    correct = (p.best == truth) & p_found
    # Images without a face are never accepted.
    p_score = np.where(p_found, sweep_scores(p, config, sweep), -np.inf)
    s_score = np.where(s_found, sweep_scores(s, config, sweep), -np.inf)
    tpir, _ = tpir_at_fpir(p_score, correct, s_score, 1e-2)
    return SideResult(
        name=name,
        wall_s=wall_s,
        images=len(found),
        no_face=int((~found).sum()),
        tpir_at_fpir_1e2=tpir,
        default_tpir=float((p.known & correct).mean()),
        default_fpir=float((s.known & s_found).mean()),
        pipeline=pipeline,
    )


def run_peer(
    lfw_dir: Path,
    *,
    runtime: Runtime = "auto",
    workers: int = 2,
    enrol: int = 1,
    limit: int | None = None,
    show_progress: bool = True,
) -> PeerReport:
    """Enrol the ``identify`` gallery and identify all its probes, from image files, both ways.

    ``limit`` keeps every ``n``-th probe and stranger (quick runs); the full run is the
    benchmark.
    """
    images = list_images(lfw_dir)
    split = lfw_open_set_split([i.name for i in images], [i.number for i in images], enrol)
    probe_rows, probe_names = split.probe_rows, split.probe_names
    stranger_rows, stranger_names = split.stranger_rows, split.stranger_names
    if limit:
        probe_rows, probe_names = probe_rows[::limit], probe_names[::limit]
        stranger_rows, stranger_names = stranger_rows[::limit], stranger_names[::limit]
        split = OpenSetSplit(
            split.gallery_rows,
            split.gallery_names,
            probe_rows,
            probe_names,
            stranger_rows,
            stranger_names,
        )
    rows = np.concatenate([split.gallery_rows, split.probe_rows, split.stranger_rows])
    paths = [str(images[int(r)].path) for r in rows]
    load_before = machine_load()

    start = time.perf_counter()
    c_vec, c_found, c_runtime = _run_pool(
        "CunAn",
        paths,
        _cunan_init,
        (runtime,),
        _cunan_chunk,
        workers=workers,
        chunk=32,
        show_progress=show_progress,
    )
    cunan_s = time.perf_counter() - start
    load_mid = machine_load()
    logger.info("CunAn side done in %.1f s (%s)", cunan_s, load_mid)

    start = time.perf_counter()
    p_vec, p_found, _ = _run_pool(
        "face_recognition",
        paths,
        _peer_init,
        (),
        _peer_chunk,
        workers=workers,
        chunk=8,
        show_progress=show_progress,
    )
    peer_s = time.perf_counter() - start
    load_after = machine_load()
    # The peer's vectors are dlib's raw descriptors; its face_distance works on those.
    # Normalising them keeps one matching code path; the sweep below is threshold-free,
    # so its TPIR at FPIR does not depend on the scale.
    norms = np.linalg.norm(p_vec, axis=1, keepdims=True)
    p_unit = np.asarray(p_vec / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    peer_rule = OpenSetConfig(
        max_distance=2.0, min_margin=None, normalisation="none", min_score=None
    )
    cunan = _evaluate(
        "cunan",
        split,
        c_vec,
        c_found,
        wall_s=cunan_s,
        config=OpenSetConfig(),
        sweep="score",
        pipeline=f"HOG upsample 0 (1 when nothing found), central face, dlib ResNet via "
        f"{c_runtime}, batched; default open-set rule",
    )
    peer = _evaluate(
        "face_recognition",
        split,
        p_unit,
        p_found,
        wall_s=peer_s,
        config=peer_rule,
        sweep="distance",
        pipeline="face_locations (HOG upsample 1), central face, face_encodings; "
        "nearest neighbour + distance threshold",
    )
    # The peer's own operating point: tolerance 0.6 on its raw (unnormalised) distances.
    peer = _peer_default_point(peer, split, p_vec, p_found)
    return PeerReport(
        cunan=cunan,
        peer=peer,
        load_before=load_before,
        load_after=f"after CunAn: {load_mid} | after peer: {load_after}",
        n_identities=split.n_identities,
        n_probes=len(split.probe_rows),
        n_strangers=len(split.stranger_rows),
    )


def _peer_default_point(
    side: SideResult, split: OpenSetSplit, raw: NDArray[np.float32], found: NDArray[np.bool_]
) -> SideResult:
    """face_recognition's CLI rule: nearest enrolled face with raw distance <= 0.6."""
    n_gal, n_probe = len(split.gallery_rows), len(split.probe_rows)
    gal_ok = found[:n_gal]
    gallery = raw[:n_gal][gal_ok]
    names = np.asarray([n for n, ok in zip(split.gallery_names, gal_ok, strict=True) if ok])

    def nearest(block: NDArray[np.float32]) -> tuple[NDArray[np.str_], NDArray[np.float32]]:
        d = np.sqrt(
            np.maximum(
                (block**2).sum(1)[:, None] - 2 * block @ gallery.T + (gallery**2).sum(1)[None, :],
                0.0,
            )
        )
        i = d.argmin(axis=1)
        return names[i], d[np.arange(len(block)), i]

    p_name, p_d = nearest(raw[n_gal : n_gal + n_probe])
    _, s_d = nearest(raw[n_gal + n_probe :])
    p_found, s_found = found[n_gal : n_gal + n_probe], found[n_gal + n_probe :]
    correct = (p_name == np.asarray(split.probe_names)) & p_found
    return replace(
        side,
        default_tpir=float((correct & (p_d <= PEER_TOLERANCE)).mean()),
        default_fpir=float((s_found & (s_d <= PEER_TOLERANCE)).mean()),
    )
