"""Open-set decisions: is a probe face one of the enrolled people (and who), or a stranger."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cunan.domain import FaceQuality
from cunan.faces.quality import QualityThresholds

logger = logging.getLogger(__name__)

Aggregation = Literal["min", "mean"]
Normalisation = Literal["none", "identity", "probe", "symmetric"]
ScoreForm = Literal["log_ratio", "zscore"]
Decision = Literal["known", "unknown"]

#: Cohort statistics below this spread (distance units) are floored: a handful of
#: near-identical cohort distances would otherwise blow a normalised score up.
MIN_COHORT_STD = 0.01
#: Cohort distances kept per identity at enrolment (the largest usable ``cohort_k``).
MAX_COHORT = 64
#: Distances are floored here before a log ratio: an exact duplicate is not infinitely sure.
MIN_DISTANCE = 1e-3
#: Probes are scored in blocks of this many rows to bound the distance matrix in memory.
PROBE_BLOCK = 1024


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """How the gallery adapts the decision (``matching.adaptive_*`` settings).

    - ``target``: the false-known rate to calibrate for: the share of strangers (people
      not enrolled) a decision may name as someone.
    - ``prior_weight``: how many enrolled people the built-in population statistic counts
      as, both for the centre and for the threshold; a site's own people outweigh it as
      the gallery grows.
    - ``recalibrate_change``: relative change of the number of enrolled people that
      triggers a new calibration (any change below ``always_below`` people).
    """

    target: float = 0.01
    prior_weight: float = 30.0
    recalibrate_change: float = 0.1
    always_below: int = 100
    prior: str = "east_asian"

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 0.5:
            raise ValueError("adaptive target must be within (0, 0.5)")
        if self.prior_weight < 0:
            raise ValueError("prior_weight must be >= 0")


@dataclass(frozen=True, slots=True)
class OpenSetConfig:
    """The rules of an open-set decision; every rule that is set must pass for ``known``.

    Distances are Euclidean distances between L2-normalised embeddings (0 = identical,
    2 = opposite); for dlib's ResNet the best LFW same/different threshold is about 0.43
    on this scale (dlib's own 0.6 is on its unnormalised vectors, norm ~1.2-1.7, ~1.4 typical).

    - ``max_distance``: the best identity must be at most this far (the baseline rule).
    - ``min_margin``: the runner-up IDENTITY must be at least this much farther than the
      best one (distance units): if two people both look like the probe, the gallery
      cannot tell them apart, whatever the absolute distance.
    - ``normalisation`` / ``score_form`` / ``min_score``: a cohort-normalised score, higher
      = surer, must reach ``min_score``. ``identity`` compares the distance with the
      claimed identity's own cohort (the mean distance from its templates to its
      ``cohort_k`` nearest other enrolled identities, measured at enrolment: a person with
      look-alikes in the gallery needs a closer match); ``probe`` compares it with the
      probe's cohort (its distances to the ``cohort_k`` nearest identities after the best:
      a generic face close to many people needs a closer match); ``symmetric`` is the mean
      of the two. ``log_ratio`` scores are ``ln(cohort mean / distance)`` (unit: nats;
      0.2 means the match is ~18% closer than the cohort); ``zscore`` scores are
      ``(cohort mean - distance) / cohort std`` (unit: standard deviations). Only the
      gallery itself is used as cohort.
    - ``cohort_k``: cohort size, identities (at most :data:`MAX_COHORT`).
    - ``aggregation``: identity distance over its templates: ``min`` (nearest template)
      or ``mean``.
    - ``quality``: thresholds a probe face must meet to be judged at all (``None``: no
      gate); faces failing them are ``unknown``.
    - ``adaptive``: centre the embeddings on the gallery's own people and calibrate
      ``min_score`` and ``fallback_max_distance`` from them for a target false-known rate
      (:mod:`cunan.matching.adaptive`; docs/calibration.md). Those two numbers of this
      config are then replaced by the calibration's. :func:`match_arrays` takes only a
      resolved config (``adaptive`` None): use :func:`cunan.matching.adaptive.adapt` or
      :class:`cunan.matching.live.LiveGallery`, which apply it.

    The defaults come from ``cunan bench identify`` (docs/benchmarks.md): cohort_k and
    min_score were chosen on one half of LFW's people (enrolled and strangers) and checked
    on the other half; min_score 0.24 is the FPIR-1% point of that tuning half. Symmetric
    log-ratio normalisation does the deciding; a margin gate added nothing on top of it,
    quality gating cost ~1 point of TPIR at equal FPIR on LFW (both off by default);
    ``mean`` aggregation beat ``min`` with two enrolment photos per person. The cohort
    scores depend somewhat on gallery size: re-check min_score on the site's own data.
    ``max_distance`` 0.55 is a sanity cap that did not bind on LFW at FPIR <= 10%.
    ``fallback_max_distance`` replaces the score rule when no cohort exists (a gallery of
    one person): 0.43 is the LFW 10-fold same/different threshold, so a village's first
    enrolments are judged by the tested 1:1 operating point, not by the loose cap.
    ``population_centre``: a population's mean embedding. With it, the *population
    distance* (probe to best identity, both centred on it) must be at most
    ``max_population_distance`` for any ``known``, and at most
    ``fallback_population_distance`` in the one-person fallback (the population rule of
    ``faces compare``). Set by the adaptive calibration (docs/calibration.md).
    """

    max_distance: float = 0.55
    fallback_max_distance: float = 0.43
    min_margin: float | None = None
    normalisation: Normalisation = "symmetric"
    score_form: ScoreForm = "log_ratio"
    min_score: float | None = 0.24
    cohort_k: int = 16
    aggregation: Aggregation = "mean"
    quality: QualityThresholds | None = None
    adaptive: AdaptiveConfig | None = None
    population_centre: tuple[float, ...] | None = None
    fallback_population_distance: float | None = None
    max_population_distance: float | None = None

    def __post_init__(self) -> None:
        needs_centre = (self.fallback_population_distance, self.max_population_distance)
        if self.population_centre is None and any(v is not None for v in needs_centre):
            raise ValueError("population distances need population_centre")
        if not 0.0 <= self.max_distance <= 2.0:
            raise ValueError("max_distance must be within [0, 2]")
        if not 0.0 <= self.fallback_max_distance <= 2.0:
            raise ValueError("fallback_max_distance must be within [0, 2]")
        if self.min_margin is not None and self.min_margin < 0:
            raise ValueError("min_margin must be >= 0")
        if not 1 <= self.cohort_k <= MAX_COHORT:
            raise ValueError(f"cohort_k must be within [1, {MAX_COHORT}]")
        if self.normalisation != "none" and self.min_score is None:
            raise ValueError(f"normalisation {self.normalisation!r} needs min_score")


#: The baseline rule alone: nearest template's identity, one global distance threshold.
BASELINE_CONFIG = OpenSetConfig(
    max_distance=0.43, min_margin=None, normalisation="none", min_score=None, aggregation="min"
)


@dataclass(frozen=True, slots=True)
class Gallery:
    """Enrolled templates grouped by identity, with each identity's nearest other identities.

    Build with :meth:`Gallery.build`. Templates are stored sorted by identity so that
    per-identity reductions are single vectorised ``reduceat`` calls. ``cohort`` holds,
    per identity, the ascending distances to its nearest other identities (nearest
    template pair), ``inf`` where the gallery has fewer identities.
    """

    vectors: NDArray[np.float32]
    template_identity: NDArray[np.int64]
    identities: tuple[str, ...]
    starts: NDArray[np.int64]
    cohort: NDArray[np.float32]
    model_id: str

    @classmethod
    def build(
        cls, vectors: NDArray[np.float32], identities: Sequence[str], *, model_id: str
    ) -> Gallery:
        """Gallery of ``vectors`` (one L2-normalised row per template) labelled ``identities``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(identities):
            raise ValueError("need one vector row per identity label")
        names = sorted(set(identities))
        index = {name: i for i, name in enumerate(names)}
        labels = np.asarray([index[name] for name in identities], dtype=np.int64)
        order = np.argsort(labels, kind="stable")
        vectors = np.ascontiguousarray(vectors[order])
        labels = labels[order]
        starts = np.searchsorted(labels, np.arange(len(names))).astype(np.int64)
        return cls(
            vectors=vectors,
            template_identity=labels,
            identities=tuple(names),
            starts=starts,
            cohort=_identity_cohorts(vectors, starts),
            model_id=model_id,
        )

    def __len__(self) -> int:
        return len(self.identities)

    def cohort_stats(self, k: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Mean and (floored) std of each identity's ``k`` nearest-identity distances.

        ``nan`` for identities with no other identity in the gallery.
        """
        kk = min(k, self.cohort.shape[1])
        if kk == 0:
            nan = np.full(len(self.identities), np.nan, dtype=np.float32)
            return nan, nan
        near = self.cohort[:, :kk]
        mean = np.asarray(near.mean(axis=1), dtype=np.float32)
        std = np.asarray(np.maximum(near.std(axis=1), MIN_COHORT_STD), dtype=np.float32)
        return mean, std


def pairwise_distances(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Euclidean distances between rows of two L2-normalised matrices, float32 (len(a), len(b))."""
    cos = np.asarray(a @ b.T, dtype=np.float32)
    np.clip(cos, -1.0, 1.0, out=cos)
    # |a - b|^2 = 2 - 2 cos for unit vectors: one GEMM instead of a broadcasted difference.
    return np.asarray(np.sqrt(np.maximum(2.0 - 2.0 * cos, 0.0)), dtype=np.float32)


def identity_distances(
    gallery: Gallery, probes: NDArray[np.float32], aggregation: Aggregation = "min"
) -> NDArray[np.float32]:
    """Distance of each probe to each identity, (n_probes, n_identities)."""
    d = pairwise_distances(np.asarray(probes, dtype=np.float32), gallery.vectors)
    if len(gallery.identities) == 0:
        return d
    if aggregation == "min":
        return np.asarray(np.minimum.reduceat(d, gallery.starts, axis=1), dtype=np.float32)
    counts = np.diff(np.append(gallery.starts, len(gallery.vectors))).astype(np.float32)
    return np.asarray(np.add.reduceat(d, gallery.starts, axis=1) / counts, dtype=np.float32)


def _identity_cohorts(
    vectors: NDArray[np.float32], starts: NDArray[np.int64]
) -> NDArray[np.float32]:
    n_ids = len(starts)
    kk = min(MAX_COHORT, max(n_ids - 1, 0))
    cohort = np.full((n_ids, kk), np.inf, dtype=np.float32)
    if kk == 0:
        return cohort
    ends = np.append(starts[1:], len(vectors))
    block = 512  # identities per block keeps the (templates x templates) matrix small
    for first in range(0, n_ids, block):
        last = min(first + block, n_ids)
        rows = slice(int(starts[first]), int(ends[last - 1]))
        d = pairwise_distances(vectors[rows], vectors)
        d = np.minimum.reduceat(d, starts, axis=1)  # (templates, identities)
        d = np.minimum.reduceat(d, starts[first:last] - starts[first], axis=0)  # (ids, ids)
        d[np.arange(last - first), np.arange(first, last)] = np.inf
        nearest = np.partition(d, kk - 1, axis=1)[:, :kk]
        cohort[first:last] = np.sort(nearest, axis=1)
    return cohort


@dataclass(frozen=True, slots=True)
class MatchArrays:
    """Vectorised open-set results for many probes, one entry per probe.

    ``best`` / ``runner_up`` are identity indices into ``Gallery.identities`` (-1: none);
    distances are ``inf`` and scores ``nan`` where they do not exist. ``identity_score``
    and ``probe_score`` are the two halves of the normalised ``score`` in the configured
    ``score_form``.
    """

    best: NDArray[np.int64]
    distance: NDArray[np.float32]
    runner_up: NDArray[np.int64]
    runner_up_distance: NDArray[np.float32]
    margin: NDArray[np.float32]
    identity_score: NDArray[np.float32]
    probe_score: NDArray[np.float32]
    score: NDArray[np.float32]
    quality_ok: NDArray[np.bool_]
    known: NDArray[np.bool_]
    #: Distance to the best identity centred on ``population_centre`` (when set).
    population_distance: NDArray[np.float32] | None = None


def _population_distances(
    gallery: Gallery, probes: NDArray[np.float32], best: NDArray[np.int64], config: OpenSetConfig
) -> NDArray[np.float32]:
    """Each probe's distance to its best identity, both centred on the population mean."""
    assert config.population_centre is not None
    mean = np.asarray(config.population_centre, dtype=np.float32)
    centred = Gallery(
        vectors=_centred(gallery.vectors, mean),
        template_identity=gallery.template_identity,
        identities=gallery.identities,
        starts=gallery.starts,
        cohort=gallery.cohort,
        model_id=gallery.model_id,
    )
    out = np.full(len(probes), np.inf, dtype=np.float32)
    for first in range(0, len(probes), PROBE_BLOCK):
        rows = slice(first, min(first + PROBE_BLOCK, len(probes)))
        d = identity_distances(centred, _centred(probes[rows], mean), config.aggregation)
        safe = np.clip(best[rows], 0, None).reshape(-1, 1)
        out[rows] = np.where(best[rows] >= 0, np.take_along_axis(d, safe, axis=1)[:, 0], np.inf)
    return out


def _centred(vectors: NDArray[np.float32], mean: NDArray[np.float32]) -> NDArray[np.float32]:
    c = np.asarray(vectors, dtype=np.float32) - mean
    return np.asarray(c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-6), np.float32)


def centred_identity_distance(
    probes: NDArray[np.float32],
    templates: NDArray[np.float32],
    centre: tuple[float, ...],
    aggregation: Aggregation,
) -> NDArray[np.float32]:
    """Distance of each probe to one identity's templates, all centred on ``centre``."""
    mean = np.asarray(centre, dtype=np.float32)
    d = pairwise_distances(_centred(probes, mean), _centred(templates, mean))
    return np.asarray(d.min(axis=1) if aggregation == "min" else d.mean(axis=1), np.float32)


def _side_score(
    form: ScoreForm,
    distance: NDArray[np.float32],
    mean: NDArray[np.float32],
    std: NDArray[np.float32],
) -> NDArray[np.float32]:
    with np.errstate(invalid="ignore", divide="ignore"):
        if form == "log_ratio":
            return np.asarray(np.log(mean / np.maximum(distance, MIN_DISTANCE)), dtype=np.float32)
        return np.asarray((mean - distance) / std, dtype=np.float32)


def match_arrays(
    gallery: Gallery,
    probes: NDArray[np.float32],
    config: OpenSetConfig,
    *,
    quality_ok: NDArray[np.bool_] | None = None,
) -> MatchArrays:
    """Open-set results for every probe row, vectorised (the form benchmarks and batches use).

    ``quality_ok`` says which probes passed the quality gate (see :func:`quality_failures`);
    it is only used when ``config.quality`` is set.
    """
    if config.adaptive is not None:
        raise ValueError("an adaptive config must be calibrated first (adaptive.adapt)")
    probes = np.asarray(probes, dtype=np.float32)
    n = len(probes)
    n_ids = len(gallery.identities)
    best = np.full(n, -1, dtype=np.int64)
    runner = np.full(n, -1, dtype=np.int64)
    d1 = np.full(n, np.inf, dtype=np.float32)
    d2 = np.full(n, np.inf, dtype=np.float32)
    p_mean = np.full(n, np.nan, dtype=np.float32)
    p_std = np.full(n, np.nan, dtype=np.float32)
    kk = max(min(config.cohort_k, n_ids - 1), 0)
    take = min(n_ids, kk + 1)
    for first in range(0, n if n_ids else 0, PROBE_BLOCK):
        rows = slice(first, min(first + PROBE_BLOCK, n))
        d = identity_distances(gallery, probes[rows], config.aggregation)
        if take < n_ids:
            nearest = np.argpartition(d, take - 1, axis=1)[:, :take]
        else:
            nearest = np.tile(np.arange(n_ids), (d.shape[0], 1))
        near_d = np.take_along_axis(d, nearest, axis=1)
        order = np.argsort(near_d, axis=1, kind="stable")
        nearest = np.take_along_axis(nearest, order, axis=1)
        near_d = np.take_along_axis(near_d, order, axis=1)
        best[rows] = nearest[:, 0]
        d1[rows] = near_d[:, 0]
        if n_ids >= 2:
            runner[rows] = nearest[:, 1]
            d2[rows] = near_d[:, 1]
            cohort = near_d[:, 1 : kk + 1]
            p_mean[rows] = cohort.mean(axis=1)
            p_std[rows] = np.maximum(cohort.std(axis=1), MIN_COHORT_STD)
    population: NDArray[np.float32] | None = None
    if n_ids and config.population_centre is not None:
        population = _population_distances(gallery, probes, best, config)
    if n_ids:
        id_mean, id_std = gallery.cohort_stats(config.cohort_k)
        safe = np.clip(best, 0, None)
        best_mean, best_std = id_mean[safe], id_std[safe]
    else:
        best_mean = np.full(n, np.nan, dtype=np.float32)
        best_std = np.full(n, np.nan, dtype=np.float32)
    return score_candidates(
        best=best,
        distance=d1,
        runner_up=runner,
        runner_up_distance=d2,
        identity_cohort=(best_mean, best_std),
        probe_cohort=(p_mean, p_std),
        config=config,
        quality_ok=quality_ok,
        population_distance=population,
    )


def score_candidates(
    *,
    best: NDArray[np.int64],
    distance: NDArray[np.float32],
    runner_up: NDArray[np.int64],
    runner_up_distance: NDArray[np.float32],
    identity_cohort: tuple[NDArray[np.float32], NDArray[np.float32]],
    probe_cohort: tuple[NDArray[np.float32], NDArray[np.float32]],
    config: OpenSetConfig,
    quality_ok: NDArray[np.bool_] | None = None,
    population_distance: NDArray[np.float32] | None = None,
) -> MatchArrays:
    """Apply the rules of ``config`` to per-probe candidate distances and cohort statistics.

    The one place the decision arithmetic lives: :func:`match_arrays` (a whole in-memory
    gallery) and the live gallery (candidates from a vector index) both end here, so the
    two cannot drift apart. ``identity_cohort`` is the best identity's (mean, std) cohort
    distance, ``probe_cohort`` the probe's; ``nan`` where there is no cohort.
    ``population_distance``: the centred distance to the best identity, needed when
    ``config.population_centre`` is set (missing: the rules that use it refuse).
    """
    best = np.asarray(best, dtype=np.int64)
    n = len(best)
    d1 = np.asarray(distance, dtype=np.float32)
    d2 = np.asarray(runner_up_distance, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # inf - inf for an empty gallery: margin is nan
        margin = np.asarray(d2 - d1, dtype=np.float32)
    id_score = _side_score(config.score_form, d1, identity_cohort[0], identity_cohort[1])
    probe_score = _side_score(config.score_form, d1, probe_cohort[0], probe_cohort[1])
    if config.normalisation == "identity":
        score = id_score
    elif config.normalisation == "probe":
        score = probe_score
    elif config.normalisation == "symmetric":
        score = np.asarray((id_score + probe_score) / 2.0, dtype=np.float32)
    else:
        score = np.full(n, np.nan, dtype=np.float32)
    ok = np.ones(n, dtype=bool)
    if config.quality is not None and quality_ok is not None:
        ok = np.asarray(quality_ok, dtype=bool)
    known = (best >= 0) & ok & (d1 <= config.max_distance)
    if config.max_population_distance is not None:
        if population_distance is None:
            known &= False
        else:
            known &= np.asarray(population_distance) <= config.max_population_distance
    if config.min_margin is not None:
        known &= margin >= config.min_margin
    if config.normalisation != "none" and config.min_score is not None:
        # No cohort (a one-person gallery): the score cannot be judged, so the tested 1:1
        # threshold stands in for it rather than letting the loose sanity cap decide alone.
        no_score = np.isnan(score)
        fallback = d1 <= config.fallback_max_distance
        if config.fallback_population_distance is not None:
            if population_distance is None:
                fallback = np.zeros(n, dtype=bool)
            else:
                fallback &= np.asarray(population_distance) <= config.fallback_population_distance
        known &= np.where(no_score, fallback, score >= config.min_score)
    return MatchArrays(
        best=best,
        distance=d1,
        runner_up=np.asarray(runner_up, dtype=np.int64),
        runner_up_distance=d2,
        margin=margin,
        identity_score=id_score,
        probe_score=probe_score,
        score=score,
        quality_ok=ok,
        known=known,
        population_distance=(
            None
            if population_distance is None
            else np.asarray(population_distance, dtype=np.float32)
        ),
    )


@dataclass(frozen=True, slots=True)
class OpenSetDecision:
    """The decision for one probe face, with every number that led to it."""

    decision: Decision
    identity: str | None
    distance: float
    runner_up_identity: str | None
    runner_up_distance: float
    margin: float
    score: float
    normalisation: Normalisation
    reasons: tuple[str, ...] = field(default=())

    @property
    def known(self) -> bool:
        return self.decision == "known"


def quality_failures(quality: FaceQuality, thresholds: QualityThresholds) -> tuple[str, ...]:
    """Which of ``thresholds`` the measured ``quality`` misses (empty: it passes)."""
    failures = []
    if quality.face_width_px < thresholds.min_face_px:
        failures.append(f"face width {quality.face_width_px:.0f} px < {thresholds.min_face_px:.0f}")
    if quality.interocular_px < thresholds.min_interocular_px:
        failures.append(
            f"interocular {quality.interocular_px:.0f} px < {thresholds.min_interocular_px:.0f}"
        )
    if quality.sharpness < thresholds.min_sharpness:
        failures.append(f"sharpness {quality.sharpness:.0f} < {thresholds.min_sharpness:.0f}")
    if quality.frontalness < thresholds.min_frontalness:
        failures.append(f"frontalness {quality.frontalness:.2f} < {thresholds.min_frontalness:.2f}")
    if not thresholds.min_brightness <= quality.brightness <= thresholds.max_brightness:
        failures.append(
            f"brightness {quality.brightness:.0f} outside "
            f"[{thresholds.min_brightness:.0f}, {thresholds.max_brightness:.0f}]"
        )
    return tuple(failures)


def decide(
    gallery: Gallery,
    probe: NDArray[np.float32],
    config: OpenSetConfig | None = None,
    *,
    quality: FaceQuality | None = None,
) -> OpenSetDecision:
    """The open-set decision for one probe embedding (a 1-D vector or a single row)."""
    config = config or OpenSetConfig()
    return decide_many(gallery, np.reshape(probe, (1, -1)), config, qualities=[quality])[0]


def decide_many(
    gallery: Gallery,
    probes: NDArray[np.float32],
    config: OpenSetConfig | None = None,
    *,
    qualities: Sequence[FaceQuality | None] | None = None,
) -> list[OpenSetDecision]:
    """Open-set decisions for several probe rows at once, each with its reasons."""
    config = config or OpenSetConfig()
    probes = np.asarray(probes, dtype=np.float32)
    if qualities is not None and len(qualities) != len(probes):
        raise ValueError("need one quality (or None) per probe")
    gate = config.quality
    failures: list[tuple[str, ...]] = [()] * len(probes)
    if gate is not None and qualities is not None:
        failures = [() if q is None else quality_failures(q, gate) for q in qualities]
    quality_ok = np.asarray([not f for f in failures], dtype=bool)
    arrays = match_arrays(gallery, probes, config, quality_ok=quality_ok)
    return [explain(gallery.identities, arrays, i, config, failures[i]) for i in range(len(probes))]


def explain(
    identities: Sequence[str],
    arrays: MatchArrays,
    i: int,
    config: OpenSetConfig,
    quality_failed: tuple[str, ...],
) -> OpenSetDecision:
    d1 = float(arrays.distance[i])
    d2 = float(arrays.runner_up_distance[i])
    margin = float(arrays.margin[i])
    score = float(arrays.score[i])
    reasons: list[str] = []
    if arrays.best[i] < 0:
        reasons.append("gallery is empty")
    else:
        ok = "<=" if d1 <= config.max_distance else ">"
        reasons.append(f"distance {d1:.3f} {ok} max_distance {config.max_distance:.3f}")
        gate = config.max_population_distance
        if gate is not None:
            pop_d = arrays.population_distance
            if pop_d is None:
                reasons.append("population distance unavailable: not decided known")
            else:
                ok = "<=" if float(pop_d[i]) <= gate else ">"
                reasons.append(
                    f"population distance {float(pop_d[i]):.3f} {ok} "
                    f"max_population_distance {gate:.3f}"
                )
        if config.min_margin is not None:
            ok = ">=" if margin >= config.min_margin else "<"
            reasons.append(
                f"margin to runner-up identity {margin:.3f} {ok} min_margin {config.min_margin:.3f}"
            )
        if config.normalisation != "none" and config.min_score is not None:
            if np.isnan(score):
                ok = "<=" if d1 <= config.fallback_max_distance else ">"
                reasons.append(
                    f"{config.normalisation} score unavailable (cohort too small): distance "
                    f"{d1:.3f} {ok} fallback_max_distance {config.fallback_max_distance:.3f}"
                )
                limit = config.fallback_population_distance
                if limit is not None:
                    pop = arrays.population_distance
                    if pop is None:
                        reasons.append("population distance unavailable: not decided known")
                    else:
                        value = float(pop[i])
                        ok = "<=" if value <= limit else ">"
                        reasons.append(
                            f"population distance {value:.3f} {ok} "
                            f"fallback_population_distance {limit:.3f}"
                        )
            else:
                ok = ">=" if score >= config.min_score else "<"
                reasons.append(
                    f"{config.normalisation} {config.score_form} score {score:.3f} {ok} "
                    f"min_score {config.min_score:.3f} (identity side "
                    f"{float(arrays.identity_score[i]):.3f}, probe side "
                    f"{float(arrays.probe_score[i]):.3f}, cohort_k {config.cohort_k})"
                )
    if config.quality is not None:
        if quality_failed:
            reasons.append("quality gate failed: " + "; ".join(quality_failed))
        else:
            reasons.append("quality gate passed")
    known = bool(arrays.known[i])
    return OpenSetDecision(
        decision="known" if known else "unknown",
        identity=identities[int(arrays.best[i])] if arrays.best[i] >= 0 else None,
        distance=d1,
        runner_up_identity=(
            identities[int(arrays.runner_up[i])] if arrays.runner_up[i] >= 0 else None
        ),
        runner_up_distance=d2,
        margin=margin,
        score=score,
        normalisation=config.normalisation,
        reasons=tuple(reasons),
    )
