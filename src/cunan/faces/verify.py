"""1:1 verification: distance between two face embeddings and the same-person verdict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Comparison:
    """Euclidean distance between two L2-normalised embeddings, and the verdict at a threshold."""

    distance: float
    threshold: float
    same_person: bool


def embedding_distance(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    if a.shape != b.shape:
        raise ValueError(
            f"embeddings have different shapes {a.shape} and {b.shape} (made by different models?)"
        )
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def compare_embeddings(
    a: NDArray[np.float32], b: NDArray[np.float32], *, threshold: float
) -> Comparison:
    distance = embedding_distance(a, b)
    return Comparison(distance=distance, threshold=threshold, same_person=distance <= threshold)
