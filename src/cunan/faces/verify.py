"""1:1 verification: distance between two face embeddings and the same-person verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from cunan.matching.adaptive import PopulationPrior


@dataclass(frozen=True, slots=True)
class Comparison:
    """Euclidean distance between two L2-normalised embeddings, and the verdict at a threshold.

    With a population (``population`` set), the pair must also pass a second test:
    the distance between the embeddings centred on that population's mean
    (``population_distance``) must be at most ``population_threshold``. Centring removes
    what the population's faces share, which the raw distance counts as likeness. The
    two rates then say how sure the verdict is: ``false_match_rate`` is the share of the
    population's different-person pairs at most this far apart (centred), and
    ``false_non_match_rate`` the share of its same-person pairs at least this far apart.
    """

    distance: float
    threshold: float
    same_person: bool
    population: str | None = None
    population_distance: float | None = None
    population_threshold: float | None = None
    false_match_rate: float | None = None
    false_non_match_rate: float | None = None

    def certainty(self) -> str:
        """How sure the verdict is, in words (Chinese first), or '' without a population."""
        if self.population is None:
            return ""
        if self.same_person:
            rate = _percent(self.false_match_rate)
            return (
                f"若是两个不同的人，参考人群中只有 {rate} 的照片对会这么像 "
                f"(were they two different people: only {rate} of different-person pairs "
                f"in the reference population look this alike)"
            )
        rate = _percent(self.false_non_match_rate)
        return (
            f"若是同一个人，参考人群中只有 {rate} 的照片对会这么不像 "
            f"(were this one person: only {rate} of same-person pairs in the reference "
            f"population look this different)"
        )


def _percent(rate: float | None) -> str:
    if rate is None:
        return "?"
    if rate < 0.001:
        return "< 0.1 %"
    return f"{100 * rate:.1f} %"


def embedding_distance(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    if a.shape != b.shape:
        raise ValueError(
            f"embeddings have different shapes {a.shape} and {b.shape} (made by different models?)"
        )
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def compare_embeddings(
    a: NDArray[np.float32], b: NDArray[np.float32], *, threshold: float
) -> Comparison:
    """The raw comparison: distance of the model's embeddings against ``threshold``."""
    distance = embedding_distance(a, b)
    return Comparison(distance=distance, threshold=threshold, same_person=distance <= threshold)


def compare_vectors(
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    *,
    prior: PopulationPrior | None,
    threshold: float = 0.43,
    population_threshold: float | None = None,
) -> Comparison:
    """The comparison ``faces compare`` makes: population-aware when ``prior`` is given.

    Raw distance at most ``threshold``, and with a prior also the centred distance at
    most ``population_threshold`` (default: the prior's, its different-person distance
    at ``pair_far``).
    """
    raw = compare_embeddings(a, b, threshold=threshold)
    if prior is None:
        return raw
    from cunan.matching.adaptive import centre

    if a.shape != (len(prior.mean),):
        raise ValueError(
            f"embeddings of shape {a.shape} do not fit the {prior.name} population statistic "
            f"of model {prior.model_id} ({len(prior.mean)} values)"
        )
    ca, cb = centre(np.vstack([a, b]), prior.mean)
    distance = embedding_distance(ca, cb)
    limit = prior.pair_threshold if population_threshold is None else population_threshold
    return Comparison(
        distance=raw.distance,
        threshold=threshold,
        same_person=raw.same_person and distance <= limit,
        population=prior.name,
        population_distance=distance,
        population_threshold=limit,
        false_match_rate=prior.impostor_rate(distance),
        false_non_match_rate=prior.genuine_miss_rate(distance),
    )
