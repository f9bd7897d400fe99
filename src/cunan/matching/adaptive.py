"""Gallery-adaptive recognition: thresholds calibrated on the site's own enrolled people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from cunan.matching.openset import (
    MIN_COHORT_STD,
    AdaptiveConfig,
    Gallery,
    OpenSetConfig,
    identity_distances,
    pairwise_distances,
    score_candidates,
)

#: The packaged population statistic (see docs/calibration.md for how it was made).
PRIOR_FILE = "population_prior.json"
#: People scored as stand-in strangers per calibration at most (a seeded sample above).
MAX_CALIBRATION_PEOPLE = 1000
#: Fewest stand-ins whose score spread is trusted (below, the prior alone decides).
MIN_STAND_INS = 10
#: The calibration aims at this share of the target false-known rate. A gallery's own
#: estimate is uncertain, and a stranger named as a resident costs more than a resident
#: left unnamed: aimed at the target itself, the rate overshot it on LFW's tuning half
#: (3.7 % for galleries of 10 East Asian people, 1.9 % for 798 others; docs/calibration.md).
TARGET_MARGIN = 0.5
#: Share of the reference population's different-person pairs that the population-distance
#: gate lets through (a loose gate, on every decision). Chosen on LFW's tuning half: it
#: changed nothing for East Asian galleries and cut East Asian strangers named by galleries
#: of other people from 1.2-1.8 % to 0.3-0.4 % (0.05 let 0.6-0.8 % through).
POPULATION_GATE_RATE = 0.02
#: Probe rows per block when scoring stand-in strangers (bounds the distance matrix).
_BLOCK = 256


@dataclass(frozen=True, slots=True)
class PopulationPrior:
    """What CunAn knows about a population before a site enrols anyone.

    1:1 comparison (``faces compare``): ``mean`` is the mean embedding of the reference
    people (not unit length); ``impostor`` / ``genuine`` are quantiles (at ``levels``) of
    the distances between *centred* embeddings of different-person / same-person image
    pairs; ``pair_threshold`` is the centred distance at which a share ``pair_far`` of
    different-person pairs match.

    Open set: ``raw_impostor`` are the same quantiles for the model's own (uncentred)
    embeddings (reference only); ``stranger_score[t][s]`` is the open-set
    score that a share ``targets[t]`` of reference strangers reached against galleries of
    ``sizes[s]`` people; ``stand_in_z[t]`` is how many standard deviations above the mean
    stand-in score (enrolled people scored against everyone else) that quantile lay.
    ``stranger_score_2`` (optional) is the same table for galleries of two photos per
    person: with more templates per person a stranger's best score is lower, so the
    one-photo table is stricter than needed (issue 12 item 6).
    """

    name: str
    model_id: str
    mean: NDArray[np.float32]
    pair_threshold: float
    pair_far: float
    levels: NDArray[np.float64]
    impostor: NDArray[np.float64]
    genuine: NDArray[np.float64]
    raw_impostor: NDArray[np.float64]
    targets: NDArray[np.float64]
    sizes: NDArray[np.float64]
    stranger_score: NDArray[np.float64]
    stand_in_z: NDArray[np.float64]
    made_by: str
    stranger_score_2: NDArray[np.float64] | None = None

    def as_json(self) -> dict[str, object]:
        def r(values: NDArray[np.float64] | NDArray[np.float32], digits: int = 5) -> object:
            return np.round(np.asarray(values, dtype=np.float64), digits).tolist()

        return {
            "name": self.name,
            "model_id": self.model_id,
            "made_by": self.made_by,
            "pair_threshold": round(self.pair_threshold, 5),
            "pair_far": self.pair_far,
            "levels": r(self.levels, 8),
            "impostor": r(self.impostor),
            "genuine": r(self.genuine),
            "raw_impostor": r(self.raw_impostor),
            "targets": r(self.targets, 8),
            "sizes": r(self.sizes, 0),
            "stranger_score": r(self.stranger_score),
            "stand_in_z": r(self.stand_in_z),
            "mean": r(self.mean, 6),
            **(
                {"stranger_score_2": r(self.stranger_score_2)}
                if self.stranger_score_2 is not None
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PopulationPrior:
        def arr(key: str) -> NDArray[np.float64]:
            value = data[key]
            if not isinstance(value, list):
                raise ValueError(f"{PRIOR_FILE}: {key} must be a list")
            return np.asarray(value, dtype=np.float64)

        return cls(
            name=str(data["name"]),
            model_id=str(data["model_id"]),
            mean=arr("mean").astype(np.float32),
            pair_threshold=float(str(data["pair_threshold"])),
            pair_far=float(str(data["pair_far"])),
            levels=arr("levels"),
            impostor=arr("impostor"),
            genuine=arr("genuine"),
            raw_impostor=arr("raw_impostor"),
            targets=arr("targets"),
            sizes=arr("sizes"),
            stranger_score=arr("stranger_score"),
            stand_in_z=arr("stand_in_z"),
            made_by=str(data["made_by"]),
            stranger_score_2=arr("stranger_score_2") if "stranger_score_2" in data else None,
        )

    def impostor_rate(self, distance: float) -> float:
        """Share of reference different-person pairs at most ``distance`` apart (centred)."""
        return _rate(self.impostor, self.levels, distance)

    def genuine_miss_rate(self, distance: float) -> float:
        """Share of reference same-person pairs farther apart than ``distance`` (centred)."""
        return 1.0 - _rate(self.genuine, self.levels, distance)

    def centred_impostor_distance(self, rate: float) -> float:
        """The centred distance below which a share ``rate`` of different-person pairs fall."""
        return float(np.interp(rate, self.levels, self.impostor))

    def _target_weights(self, target: float) -> tuple[int, int, float]:
        # Interpolate between the two nearest tabulated targets, in log target.
        x = np.log(np.clip(target, self.targets[0], self.targets[-1]))
        logs = np.log(self.targets)
        hi = int(np.clip(np.searchsorted(logs, x), 1, len(logs) - 1))
        lo = hi - 1
        return lo, hi, float((x - logs[lo]) / (logs[hi] - logs[lo]))

    def stranger_min_score(self, people: int, target: float, photos: float = 1.0) -> float:
        """The reference open-set score for ``people`` enrolled at false-known ``target``,
        with ``photos`` templates per person on average.

        Interpolated in log gallery size and log target; clamped to the table's ends.
        Between one and two photos per person the two tables are interpolated linearly
        (more than two: the two-photo table; no such table: the one-photo one).
        """
        lo, hi, f = self._target_weights(target)
        x = np.log(np.clip(people, self.sizes[0], self.sizes[-1]))
        sizes = np.log(self.sizes)

        def at(table: NDArray[np.float64]) -> float:
            a = float(np.interp(x, sizes, table[lo]))
            b = float(np.interp(x, sizes, table[hi]))
            return a + f * (b - a)

        one = at(self.stranger_score)
        if self.stranger_score_2 is None or photos <= 1.0:
            return one
        w = min(photos, 2.0) - 1.0
        return one + w * (at(self.stranger_score_2) - one)

    def z(self, target: float) -> float:
        """Stand-in standard deviations above the mean at false-known ``target``."""
        lo, hi, f = self._target_weights(target)
        return float(self.stand_in_z[lo] + f * (self.stand_in_z[hi] - self.stand_in_z[lo]))


def _rate(quantiles: NDArray[np.float64], levels: NDArray[np.float64], distance: float) -> float:
    # Outside the table the rate is only known to be beyond its ends.
    return float(np.interp(distance, quantiles, levels, left=0.0, right=1.0))


@cache
def load_prior(name: str = "east_asian") -> PopulationPrior:
    """The packaged prior ``name`` (only ``east_asian`` ships)."""
    text = resources.files("cunan.matching").joinpath(PRIOR_FILE).read_text("utf-8")
    data = json.loads(text)
    if name not in data:
        raise ValueError(f"{PRIOR_FILE}: no population prior named {name!r}")
    return PopulationPrior.from_json(data[name])


def prior_for_model(name: str, model_id: str, dim: int) -> PopulationPrior | None:
    """The packaged prior ``name`` if it describes this model's embeddings, else None."""
    prior = load_prior(name)
    if prior.model_id != model_id or len(prior.mean) != dim:
        return None
    return prior


def population_prior_for(population: str, model_id: str, dim: int) -> PopulationPrior | None:
    """The prior for 1:1 comparison, or None (``none``, or another model than the prior's)."""
    if population == "none":
        return None
    return prior_for_model(population, model_id, dim)


def centre(vectors: NDArray[np.float32], mean: NDArray[np.float32]) -> NDArray[np.float32]:
    """Embeddings minus ``mean``, back to unit length (rows)."""
    v = np.asarray(vectors, dtype=np.float32) - np.asarray(mean, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.asarray(v / np.maximum(norms, 1e-6), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The adapted thresholds for one gallery, and where they came from."""

    people: int
    min_score: float
    fallback_max_distance: float
    target: float
    prior_min_score: float
    site_min_score: float | None
    stand_ins: int
    #: The one-person fallback's population test (the prior's mean and centred distance).
    population_centre: tuple[float, ...] | None = None
    fallback_population_distance: float | None = None
    max_population_distance: float | None = None

    def config(self, base: OpenSetConfig) -> OpenSetConfig:
        """``base`` with this calibration's thresholds, resolved (``adaptive`` None)."""
        return replace(
            base,
            min_score=self.min_score,
            fallback_max_distance=self.fallback_max_distance,
            population_centre=self.population_centre,
            fallback_population_distance=self.fallback_population_distance,
            max_population_distance=self.max_population_distance,
            adaptive=None,
        )

    def as_details(self) -> dict[str, float | int | None]:
        """The numbers for the audit log and the settings page."""
        return {
            "people": self.people,
            "target": self.target,
            "min_score": round(self.min_score, 4),
            "fallback_max_distance": round(self.fallback_max_distance, 4),
            "fallback_population_distance": (
                None
                if self.fallback_population_distance is None
                else round(self.fallback_population_distance, 4)
            ),
            "max_population_distance": (
                None
                if self.max_population_distance is None
                else round(self.max_population_distance, 4)
            ),
            "prior_min_score": round(self.prior_min_score, 4),
            "site_min_score": (
                None if self.site_min_score is None else round(self.site_min_score, 4)
            ),
            "stand_ins": self.stand_ins,
        }


def gallery_view(vectors: NDArray[np.float32], starts: NDArray[np.int64]) -> Gallery:
    """A Gallery of templates sorted by identity, without the O(n^2) identity cohorts."""
    n_ids = len(starts)
    counts = np.diff(np.append(starts, len(vectors)))
    return Gallery(
        vectors=np.asarray(vectors, dtype=np.float32),
        template_identity=np.repeat(np.arange(n_ids), counts).astype(np.int64),
        identities=tuple(str(i) for i in range(n_ids)),
        starts=np.asarray(starts, dtype=np.int64),
        cohort=np.zeros((n_ids, 0), dtype=np.float32),
        model_id="",
    )


def stand_in_scores(
    vectors: NDArray[np.float32],
    starts: NDArray[np.int64],
    config: OpenSetConfig,
    people: NDArray[np.int64],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(score, distance) each listed person's first template gets against everyone else.

    The enrolled people stand in for strangers: what would the decision say if this
    person's photo came from someone not enrolled? The cohorts are those of the gallery
    without that person, as for a real stranger. ``vectors`` are sorted by identity
    (``starts`` = each identity's first row), as the decision sees them.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    n_ids = len(starts)
    ends = np.append(starts[1:], len(vectors))
    scores = np.full(len(people), np.nan, dtype=np.float32)
    dists = np.full(len(people), np.inf, dtype=np.float32)
    if n_ids < 2:
        return scores, dists
    kk = max(min(config.cohort_k, n_ids - 2), 0)
    cols = np.arange(n_ids)
    # Distances only: no cohorts are needed here, so the O(n^2) Gallery.build is skipped.
    view = gallery_view(vectors, starts)
    for first in range(0, len(people), _BLOCK):
        ids = np.asarray(people[first : first + _BLOCK], dtype=np.int64)
        rows = np.arange(len(ids))
        d = identity_distances(view, vectors[starts[ids]], config.aggregation)
        d[rows, ids] = np.inf
        order = np.argsort(d, axis=1, kind="stable")
        sorted_d = np.take_along_axis(d, order, axis=1)
        best, d1 = order[:, 0], sorted_d[:, 0]
        runner = order[:, 1] if n_ids > 2 else np.full(len(ids), -1)
        d2 = sorted_d[:, 1] if n_ids > 2 else np.full(len(ids), np.inf, np.float32)
        nan = np.full(len(ids), np.nan, dtype=np.float32)
        p_mean, p_std, i_mean, i_std = nan, nan, nan.copy(), nan.copy()
        if kk:
            cohort = sorted_d[:, 1 : kk + 1]
            p_mean = cohort.mean(axis=1).astype(np.float32)
            p_std = np.maximum(cohort.std(axis=1), MIN_COHORT_STD).astype(np.float32)
            # The best identity's own cohort: its nearest other identities (nearest
            # template pair), leaving out the stand-in, who is not in the gallery then.
            for r, (j, i) in enumerate(zip(best.tolist(), ids.tolist(), strict=True)):
                own = vectors[starts[j] : ends[j]]
                near = np.minimum.reduceat(pairwise_distances(own, vectors), starts, axis=1)
                near = near.min(axis=0)
                near[(cols == j) | (cols == i)] = np.inf
                near = np.partition(near, kk - 1)[:kk]
                i_mean[r] = float(near.mean())
                i_std[r] = float(max(near.std(), MIN_COHORT_STD))
        arrays = score_candidates(
            best=best.astype(np.int64),
            distance=d1.astype(np.float32),
            runner_up=runner.astype(np.int64),
            runner_up_distance=d2.astype(np.float32),
            identity_cohort=(i_mean, i_std),
            probe_cohort=(p_mean, p_std),
            config=replace(config, adaptive=None),
        )
        scores[first : first + len(ids)] = arrays.score
        dists[first : first + len(ids)] = d1
    return scores, dists


def stand_in_sample(n: int, seed: int = 0) -> NDArray[np.int64]:
    """Which people stand in for strangers: all, or a seeded sample of a large gallery."""
    if n <= MAX_CALIBRATION_PEOPLE:
        return np.arange(n, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n, MAX_CALIBRATION_PEOPLE, replace=False)
    return np.sort(chosen).astype(np.int64)


def calibrate(
    vectors: NDArray[np.float32],
    starts: NDArray[np.int64],
    config: OpenSetConfig,
    adaptive: AdaptiveConfig,
    *,
    prior: PopulationPrior | None,
) -> Calibration:
    """The thresholds for this gallery (its templates sorted by identity, ``starts``).

    Everything aims at ``TARGET_MARGIN`` times the target.
    ``min_score``: the prior's stranger score for a gallery of this size at that rate,
    averaged (``prior_weight`` people against the number of stand-ins) with the site's
    own estimate, the mean stand-in score plus the prior's ``z`` standard deviations
    (from :data:`MIN_STAND_INS` stand-ins on). One person enrolled (no score yet): the
    population rule of ``faces compare`` at that rate: the raw distance at most
    ``config.fallback_max_distance`` and the distance centred on the prior's mean at most
    the prior's different-person distance at that rate. Every decision also needs that
    centred distance within the prior's different-person distance at
    :data:`POPULATION_GATE_RATE` (a loose gate against faces of another population).

    Without a prior (another model than the prior's), ``config``'s own ``min_score`` and
    ``fallback_max_distance`` stand in for the prior's numbers and ``z`` is 3.
    """
    n = len(starts)
    target = adaptive.target * TARGET_MARGIN
    centre: tuple[float, ...] | None = None
    population: float | None = None
    gate: float | None = None
    fallback = config.fallback_max_distance
    if prior is not None:
        # Templates per person: a gallery of several photos each uses the prior's
        # several-photo table (issue 12 item 6).
        photos = len(vectors) / n if n else 1.0
        prior_score = prior.stranger_min_score(max(n, 1), target, photos)
        centre = tuple(float(v) for v in prior.mean)
        population = prior.centred_impostor_distance(target)
        gate = prior.centred_impostor_distance(POPULATION_GATE_RATE)
        z = prior.z(target)
    else:
        prior_score = float(config.min_score if config.min_score is not None else 0.0)
        z = 3.0
    site: float | None = None
    sampled = 0
    if n >= MIN_STAND_INS + 1:
        scores, _ = stand_in_scores(vectors, starts, config, stand_in_sample(n))
        scores = scores[np.isfinite(scores)]
        sampled = len(scores)
        if sampled >= MIN_STAND_INS:
            site = float(scores.mean() + z * scores.std())
    if site is None:
        min_score = prior_score
        sampled = 0
    else:
        w = adaptive.prior_weight
        min_score = (w * prior_score + sampled * site) / (w + sampled)
    return Calibration(
        people=n,
        min_score=float(min_score),
        fallback_max_distance=float(fallback),
        target=adaptive.target,
        prior_min_score=float(prior_score),
        site_min_score=site,
        stand_ins=sampled,
        population_centre=centre,
        fallback_population_distance=population,
        max_population_distance=gate,
    )


@dataclass(frozen=True, slots=True)
class AdaptedGallery:
    """A whole in-memory gallery with its calibration and resolved config."""

    gallery: Gallery
    config: OpenSetConfig
    calibration: Calibration


def adapt(
    vectors: NDArray[np.float32],
    identities: Sequence[str],
    config: OpenSetConfig,
    *,
    model_id: str,
    prior: PopulationPrior | None = None,
) -> AdaptedGallery:
    """Calibrate ``config.adaptive`` on this gallery; the result decides like the live gallery.

    ``prior`` defaults to the packaged one when it fits ``model_id``.
    """
    if config.adaptive is None:
        raise ValueError("config has no adaptive settings")
    gallery = Gallery.build(vectors, identities, model_id=model_id)
    if prior is None:
        prior = prior_for_model(config.adaptive.prior, model_id, gallery.vectors.shape[1])
    calibration = calibrate(gallery.vectors, gallery.starts, config, config.adaptive, prior=prior)
    return AdaptedGallery(gallery, calibration.config(config), calibration)


@dataclass(frozen=True, slots=True)
class SiteEstimate:
    """What a site's own gallery says about its false-known rate (``cunan calibrate``).

    ``current_rate`` estimates the share of strangers named as someone under the current
    settings, from the enrolled people standing in for strangers: the normal tail of their
    scores (mean and spread, with the prior's ``z`` as the link between stand-ins and real
    strangers) above the threshold in force; None with fewer than
    :data:`MIN_STAND_INS` + 1 people. ``for_target`` is the calibration for ``target``.
    """

    people: int
    templates: int
    stand_ins: int
    adaptive: bool
    current_min_score: float | None
    current_rate: float | None
    target: float
    for_target: Calibration


def estimate_site(
    vectors: NDArray[np.float32],
    starts: NDArray[np.int64],
    config: OpenSetConfig,
    target: float,
    *,
    adaptive: AdaptiveConfig | None = None,
    prior: PopulationPrior | None,
) -> SiteEstimate:
    """Expected false-known rate at ``config`` and the thresholds for ``target``.

    ``adaptive`` gives the prior weight etc. when ``config`` is not adaptive itself;
    ``prior`` is :func:`prior_for_model`'s answer for the gallery's model.
    """
    settings = config.adaptive or adaptive or AdaptiveConfig()
    n = len(starts)
    wanted = calibrate(vectors, starts, config, replace(settings, target=target), prior=prior)
    current = config.min_score
    if config.adaptive is not None:
        current = calibrate(vectors, starts, config, config.adaptive, prior=prior).min_score
    rate: float | None = None
    sampled = 0
    if n >= MIN_STAND_INS + 1 and current is not None:
        scores, _ = stand_in_scores(vectors, starts, config, stand_in_sample(n))
        scores = scores[np.isfinite(scores)]
        sampled = len(scores)
        if sampled >= MIN_STAND_INS:
            rate = _tail_rate(scores, current, prior)
    return SiteEstimate(
        people=n,
        templates=len(vectors),
        stand_ins=sampled,
        adaptive=config.adaptive is not None,
        current_min_score=current,
        current_rate=rate,
        target=target,
        for_target=wanted,
    )


def _tail_rate(
    scores: NDArray[np.float32], threshold: float, prior: PopulationPrior | None
) -> float:
    """The target whose calibrated z puts mean + z * std at ``threshold`` (log search)."""
    mean, std = float(scores.mean()), float(max(scores.std(), 1e-6))
    needed = (threshold - mean) / std
    grid = np.geomspace(1e-4, 0.45, 200)
    zs = np.asarray([prior.z(t) if prior is not None else _normal_z(t) for t in grid])
    # z falls as the target rises; the first grid target whose z is at most the needed one.
    below = np.flatnonzero(zs <= needed)
    return float(grid[below[0]]) if len(below) else float(grid[-1])


def _normal_z(rate: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1.0 - rate)
