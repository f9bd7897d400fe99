"""The LFW verification protocol's arithmetic: 10-fold threshold choice, accuracy, TAR at FAR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def best_threshold(distances: NDArray[np.floating], same: NDArray[np.bool_]) -> float:
    """The distance threshold (accept ``d <= t``) with the highest accuracy on these pairs.

    Candidates lie midway between consecutive distinct distances (plus below the smallest
    and above the largest), so ties never straddle the threshold. Among equally accurate
    candidates the first (smallest) wins.
    """
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same, dtype=bool)
    if d.shape != s.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError("need equally long, non-empty 1-D distances and labels")
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    distinct = np.flatnonzero(np.diff(d) > 0)  # last index of each run of equal values
    cut_after = np.concatenate([[-1], distinct, [len(d) - 1]])
    genuine_le = np.concatenate([[0], np.cumsum(s)])[cut_after + 1]
    impostor_le = (cut_after + 1) - genuine_le
    correct = genuine_le + (int((~s).sum()) - impostor_le)
    best = int(np.argmax(correct))
    i = int(cut_after[best])
    if i < 0:
        return float(d[0] - 1e-6)
    if i >= len(d) - 1:
        return float(d[-1] + 1e-6)
    return float((d[i] + d[i + 1]) / 2.0)


@dataclass(frozen=True, slots=True)
class FoldResult:
    """One fold of the 10-fold protocol: threshold chosen on the others, accuracy on this one."""

    fold: int
    threshold: float
    accuracy: float


def ten_fold(
    distances: NDArray[np.floating], same: NDArray[np.bool_], folds: NDArray[np.integer]
) -> list[FoldResult]:
    """For each fold: the best-accuracy threshold on all other folds, applied to this fold."""
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same, dtype=bool)
    f = np.asarray(folds)
    results = []
    for fold in np.unique(f):
        test = f == fold
        threshold = best_threshold(d[~test], s[~test])
        accuracy = float(((d[test] <= threshold) == s[test]).mean())
        results.append(FoldResult(fold=int(fold), threshold=threshold, accuracy=accuracy))
    return results


def tar_at_far(
    genuine: NDArray[np.floating], impostor: NDArray[np.floating], far: float
) -> tuple[float, float]:
    """True accept rate at the largest threshold whose false accept rate is at most ``far``.

    Accept ``d <= t``. Returns (TAR, threshold). With n impostors the FAR can only be a
    multiple of 1/n: at FAR 1e-3 over 3000 impostor pairs, 3 false accepts are allowed.
    """
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    imp = np.sort(np.asarray(impostor, dtype=np.float64))
    if len(g) == 0 or len(imp) == 0:
        raise ValueError("need genuine and impostor distances")
    allowed = int(np.floor(far * len(imp) + 1e-9))
    # Accept strictly below the (allowed+1)-th smallest impostor distance.
    threshold = float(np.nextafter(imp[allowed], -np.inf)) if allowed < len(imp) else float(imp[-1])
    tar = float(np.searchsorted(g, threshold, side="right") / len(g))
    return tar, threshold
