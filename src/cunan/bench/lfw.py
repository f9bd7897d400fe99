"""LFW View 2 verification benchmark: 10-fold accuracy and TAR at fixed FAR of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cunan.bench.lfw_data import parse_pairs
from cunan.bench.lfw_embeddings import (
    JitteredVectors,
    JitterSpec,
    LfwEmbeddings,
    Runtime,
    load_or_compute,
    load_or_compute_jittered,
)
from cunan.bench.verification import FoldResult, tar_at_far, ten_fold


@dataclass(frozen=True, slots=True)
class ProtocolResult:
    """The protocol's numbers for one way of making the two descriptors of each pair."""

    folds: tuple[FoldResult, ...]
    accuracy_mean: float
    accuracy_std: float
    threshold_mean: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    threshold_at_far_1e2: float
    threshold_at_far_1e3: float

    def as_json(self) -> dict[str, object]:
        return {
            "accuracy_mean": round(self.accuracy_mean, 5),
            "accuracy_std": round(self.accuracy_std, 5),
            "fold_accuracies": [round(f.accuracy, 5) for f in self.folds],
            "threshold_mean": round(self.threshold_mean, 4),
            "tar_at_far_1e-2": round(self.tar_at_far_1e2, 5),
            "tar_at_far_1e-3": round(self.tar_at_far_1e3, 5),
            "threshold_at_far_1e-2": round(self.threshold_at_far_1e2, 4),
            "threshold_at_far_1e-3": round(self.threshold_at_far_1e3, 4),
        }


def evaluate_pairs(
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    same: NDArray[np.bool_],
    folds_of: NDArray[np.int_],
) -> ProtocolResult:
    """10-fold accuracy and pooled TAR at FAR of pairs of descriptors ``a[i]``, ``b[i]``."""
    distances = np.linalg.norm(a - b, axis=1)
    folds = ten_fold(distances, same, folds_of)
    accuracies = np.asarray([f.accuracy for f in folds])
    tar2, thr2 = tar_at_far(distances[same], distances[~same], 1e-2)
    tar3, thr3 = tar_at_far(distances[same], distances[~same], 1e-3)
    return ProtocolResult(
        folds=tuple(folds),
        accuracy_mean=float(accuracies.mean()),
        # Population std over the 10 folds, as dlib and most LFW tables report it.
        accuracy_std=float(accuracies.std()),
        threshold_mean=float(np.mean([f.threshold for f in folds])),
        tar_at_far_1e2=tar2,
        tar_at_far_1e3=tar3,
        threshold_at_far_1e2=thr2,
        threshold_at_far_1e3=thr3,
    )


@dataclass(frozen=True, slots=True)
class LfwReport:
    """Results of the LFW protocol; TAR at FAR is over all 6,000 pairs pooled.

    ``result`` has both images of every pair made the same way (plain or jittered);
    with jitter, ``asymmetric`` has the first image of each pair jittered and the second
    plain, as an enrolment photo meets a camera face.
    """

    result: ProtocolResult
    asymmetric: ProtocolResult | None
    n_pairs: int
    n_pair_images: int
    embeddings: LfwEmbeddings
    jitter: JitterSpec
    jittered: JitteredVectors | None

    @property
    def folds(self) -> tuple[FoldResult, ...]:
        return self.result.folds

    def as_json(self) -> dict[str, object]:
        e = self.embeddings
        data: dict[str, object] = {
            "benchmark": "lfw",
            "protocol": "LFW View 2, 10 folds, threshold with best accuracy on 9 folds, "
            "accuracy on the 10th; TAR at FAR pooled over all pairs",
            "n_pairs": self.n_pairs,
            "n_pair_images": self.n_pair_images,
            "jitter": self.jitter.label(),
            **self.result.as_json(),
            "images_per_s": round(e.images_per_s, 2),
            "images_per_s_note": f"whole LFW ({len(e.names):,} images) embedded without "
            f"jitter by the face-choice pipeline (detection, landmarks, one embedding) with "
            f"{e.workers} worker process(es), measured when the embedding cache was built",
            "embedding_runtime": e.runtime,
            "build_seconds": round(e.build_seconds, 1),
            "build_load": e.build_load,
            "model_id": e.model_id,
            "face_sources": e.source_counts(),
            "multi_face_images": e.multi_face_images(),
        }
        if self.jittered is not None:
            j = self.jittered
            data["jitter_pass"] = {
                "copies_per_image": len(self.jitter.jitters()),
                "cache_key": self.jitter.key(),
                "images": j.images,
                "seconds": round(j.seconds, 1),
                "images_per_s": round(j.images_per_s, 2),
                "note": "jittered descriptors of the pair images, computed from the cached "
                "face of each image (no detection) in 1 process with 1 thread: image load, "
                "chips, embeddings; add the detection cost of the plain run for a new photo",
                "loads": list(j.loads),
                "derived_from": list(j.derived_from),
                "derived_note": "descriptors taken from the first copies of a longer run "
                "(the same chips); its time counted pro rata to copies"
                if j.derived_from
                else None,
            }
        if self.asymmetric is not None:
            data["asymmetric"] = {
                "description": "first image of each pair jittered (enrolment), second plain "
                "(camera probe)",
                **self.asymmetric.as_json(),
            }
        return data


def run_lfw(
    lfw_dir: Path,
    pairs_file: Path,
    *,
    runtime: Runtime = "auto",
    workers: int = 2,
    refresh: bool = False,
    show_progress: bool = True,
    jitter: JitterSpec | None = None,
) -> LfwReport:
    """Run the protocol on the (cached) embeddings of every LFW image.

    With a jitter spec other than plain, the pair images also get jittered descriptors
    (cached per spec), computed from the faces the plain run found.
    """
    jitter = jitter or JitterSpec()
    pairs = parse_pairs(pairs_file)
    emb = load_or_compute(
        lfw_dir, runtime=runtime, workers=workers, refresh=refresh, show_progress=show_progress
    )
    index = emb.index()
    try:
        a = np.asarray([index[(p.name_a, p.number_a)] for p in pairs])
        b = np.asarray([index[(p.name_b, p.number_b)] for p in pairs])
    except KeyError as exc:
        raise FileNotFoundError(f"pairs file names an image not in {lfw_dir}: {exc}") from None
    same = np.asarray([p.same for p in pairs])
    folds_of = np.asarray([p.fold for p in pairs])
    pair_rows = np.unique(np.concatenate([a, b]))
    jittered = None
    asymmetric = None
    if jitter.is_plain:
        result = evaluate_pairs(emb.vectors[a], emb.vectors[b], same, folds_of)
    else:
        jittered = load_or_compute_jittered(
            lfw_dir,
            emb,
            pair_rows.tolist(),
            jitter,
            runtime=runtime,
            show_progress=show_progress,
        )
        result = evaluate_pairs(jittered.vectors[a], jittered.vectors[b], same, folds_of)
        asymmetric = evaluate_pairs(jittered.vectors[a], emb.vectors[b], same, folds_of)
    return LfwReport(
        result=result,
        asymmetric=asymmetric,
        n_pairs=len(pairs),
        n_pair_images=len(pair_rows),
        embeddings=emb,
        jitter=jitter,
        jittered=jittered,
    )
