"""LFW View 2 verification benchmark: 10-fold accuracy and TAR at fixed FAR of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cunan.bench.lfw_data import parse_pairs
from cunan.bench.lfw_embeddings import LfwEmbeddings, Runtime, load_or_compute
from cunan.bench.verification import FoldResult, tar_at_far, ten_fold


@dataclass(frozen=True, slots=True)
class LfwReport:
    """Results of the LFW protocol; TAR at FAR is over all 6,000 pairs pooled."""

    folds: tuple[FoldResult, ...]
    accuracy_mean: float
    accuracy_std: float
    threshold_mean: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    threshold_at_far_1e2: float
    threshold_at_far_1e3: float
    n_pairs: int
    embeddings: LfwEmbeddings

    def as_json(self) -> dict[str, object]:
        e = self.embeddings
        return {
            "benchmark": "lfw",
            "protocol": "LFW View 2, 10 folds, threshold with best accuracy on 9 folds, "
            "accuracy on the 10th; TAR at FAR pooled over all pairs",
            "n_pairs": self.n_pairs,
            "accuracy_mean": round(self.accuracy_mean, 5),
            "accuracy_std": round(self.accuracy_std, 5),
            "fold_accuracies": [round(f.accuracy, 5) for f in self.folds],
            "threshold_mean": round(self.threshold_mean, 4),
            "tar_at_far_1e-2": round(self.tar_at_far_1e2, 5),
            "tar_at_far_1e-3": round(self.tar_at_far_1e3, 5),
            "threshold_at_far_1e-2": round(self.threshold_at_far_1e2, 4),
            "threshold_at_far_1e-3": round(self.threshold_at_far_1e3, 4),
            "images_per_s": round(e.images_per_s, 2),
            "images_per_s_note": "whole LFW (13,233 images) embedded by the face-choice "
            "pipeline with 2 worker processes, measured when the embedding cache was built",
            "embedding_runtime": e.runtime,
            "build_seconds": round(e.build_seconds, 1),
            "build_load": e.build_load,
            "model_id": e.model_id,
            "face_sources": e.source_counts(),
            "multi_face_images": e.multi_face_images(),
        }


def run_lfw(
    lfw_dir: Path,
    pairs_file: Path,
    *,
    runtime: Runtime = "auto",
    workers: int = 2,
    refresh: bool = False,
    show_progress: bool = True,
) -> LfwReport:
    """Run the protocol on the (cached) embeddings of every LFW image."""
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
    distances = np.linalg.norm(emb.vectors[a] - emb.vectors[b], axis=1)
    same = np.asarray([p.same for p in pairs])
    folds_of = np.asarray([p.fold for p in pairs])
    folds = ten_fold(distances, same, folds_of)
    accuracies = np.asarray([f.accuracy for f in folds])
    tar2, thr2 = tar_at_far(distances[same], distances[~same], 1e-2)
    tar3, thr3 = tar_at_far(distances[same], distances[~same], 1e-3)
    return LfwReport(
        folds=tuple(folds),
        accuracy_mean=float(accuracies.mean()),
        # Population std over the 10 folds, as dlib and most LFW tables report it.
        accuracy_std=float(accuracies.std()),
        threshold_mean=float(np.mean([f.threshold for f in folds])),
        tar_at_far_1e2=tar2,
        tar_at_far_1e3=tar3,
        threshold_at_far_1e2=thr2,
        threshold_at_far_1e3=thr3,
        n_pairs=len(pairs),
        embeddings=emb,
    )
