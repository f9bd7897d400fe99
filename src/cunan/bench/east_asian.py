"""East Asian benchmark on LFW: 1:1 and open-set figures of LFW's CJK people beside the rest."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cunan.bench.lfw_embeddings import LfwEmbeddings
from cunan.bench.openset_protocol import person_half, threshold_at_fpir, tpir_at_threshold
from cunan.bench.verification import tar_at_far
from cunan.matching.adaptive import PopulationPrior, adapt, centre, stand_in_scores
from cunan.matching.openset import (
    AdaptiveConfig,
    Gallery,
    MatchArrays,
    OpenSetConfig,
    match_arrays,
)

#: Gallery sizes of the open-set protocol; 0 stands for "every eligible person of the group".
GALLERY_SIZES = (10, 30, 0)
#: Random galleries drawn per size below "all" (figures are the mean over the draws).
DRAWS = 20
#: Impostor pairs sampled per group when there are more than this many.
MAX_IMPOSTOR_PAIRS = 200_000

Group = str  # "east_asian" or "rest"
GROUPS: tuple[Group, ...] = ("east_asian", "rest")


@cache
def east_asian_names() -> frozenset[str]:
    """LFW names of the Chinese, Japanese and Korean people (the packaged list)."""
    text = resources.files("cunan.bench").joinpath("east_asian_names.txt").read_text("utf-8")
    names = (line.strip() for line in text.splitlines())
    return frozenset(n for n in names if n and not n.startswith("#"))


@dataclass(frozen=True, slots=True)
class Population:
    """LFW images split into people of a group and half (A = tuning, B = reporting)."""

    names: tuple[str, ...]
    vectors: NDArray[np.float32]
    numbers: NDArray[np.int32]
    east_asian: NDArray[np.bool_]
    half: NDArray[np.int64]

    @classmethod
    def from_embeddings(cls, emb: LfwEmbeddings) -> Population:
        ea = east_asian_names()
        return cls(
            names=emb.names,
            vectors=emb.vectors,
            numbers=emb.numbers,
            east_asian=np.asarray([n in ea for n in emb.names], dtype=bool),
            half=np.asarray([person_half(n) for n in emb.names], dtype=np.int64),
        )

    def rows(self, group: Group, half: int | None) -> NDArray[np.int64]:
        """Image rows of the group (``half``: 0 = A, 1 = B, None = both)."""
        mask = self.east_asian if group == "east_asian" else ~self.east_asian
        if half is not None:
            mask = mask & (self.half == half)
        return np.flatnonzero(mask).astype(np.int64)

    def by_person(self, rows: NDArray[np.int64]) -> dict[str, list[int]]:
        """Rows of each person, ordered by image number."""
        out: dict[str, list[int]] = defaultdict(list)
        for row in sorted(rows.tolist(), key=lambda r: (self.names[r], int(self.numbers[r]))):
            out[self.names[row]].append(row)
        return dict(out)


# -- 1:1 ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairFigures:
    """1:1 figures of one group: the operating point and TAR at fixed FAR."""

    n_genuine: int
    n_impostor: int
    threshold: float
    far: float
    tar: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float

    def as_json(self) -> dict[str, object]:
        return {
            "genuine_pairs": self.n_genuine,
            "impostor_pairs": self.n_impostor,
            "threshold": round(self.threshold, 4),
            "far_at_threshold": round(self.far, 5),
            "tar_at_threshold": round(self.tar, 5),
            "tar_at_far_1e-2": round(self.tar_at_far_1e2, 5),
            "tar_at_far_1e-3": round(self.tar_at_far_1e3, 5),
        }


def pair_distances(
    vectors: NDArray[np.float32],
    people: dict[str, list[int]],
    *,
    seed: int = 0,
    max_impostors: int = MAX_IMPOSTOR_PAIRS,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(genuine, impostor) distances: every same-person pair; all or sampled different pairs."""
    genuine: list[NDArray[np.float64]] = []
    for rows in people.values():
        if len(rows) < 2:
            continue
        v = vectors[rows].astype(np.float64)
        i, j = np.triu_indices(len(rows), k=1)
        genuine.append(np.linalg.norm(v[i] - v[j], axis=1))
    rows_all = np.asarray([r for rs in people.values() for r in rs], dtype=np.int64)
    owner = np.asarray([k for k, rs in enumerate(people.values()) for _ in rs], dtype=np.int64)
    n = len(rows_all)
    total = n * (n - 1) // 2
    if total <= max_impostors:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=max_impostors * 2)
        j = rng.integers(0, n, size=max_impostors * 2)
    keep = owner[i] != owner[j]
    i, j = i[keep][:max_impostors], j[keep][:max_impostors]
    v = vectors.astype(np.float64)
    impostor = np.linalg.norm(v[rows_all[i]] - v[rows_all[j]], axis=1)
    return (np.concatenate(genuine) if genuine else np.zeros(0)), impostor


def pair_figures(
    genuine: NDArray[np.float64], impostor: NDArray[np.float64], threshold: float
) -> PairFigures:
    """FAR and TAR at ``threshold`` (accept ``d <= t``), TAR at FAR 1e-2 and 1e-3."""
    return PairFigures(
        n_genuine=len(genuine),
        n_impostor=len(impostor),
        threshold=threshold,
        far=float((impostor <= threshold).mean()),
        tar=float((genuine <= threshold).mean()),
        tar_at_far_1e2=tar_at_far(genuine, impostor, 1e-2)[0],
        tar_at_far_1e3=tar_at_far(genuine, impostor, 1e-3)[0],
    )


# -- open set ----------------------------------------------------------------------------------

#: A rule, given a gallery (template rows' vectors and names), returns a decider: for probe
#: vectors, the index of the best identity (into the sorted identity names, -1 for none) and
#: a score that is >= 0 exactly when the rule decides "known" (higher = surer).
Decider = Callable[[NDArray[np.float32]], tuple[NDArray[np.int64], NDArray[np.float64]]]
Rule = Callable[[NDArray[np.float32], Sequence[str]], Decider]


@dataclass(frozen=True, slots=True)
class OpenSetFigures:
    """Open-set figures of one gallery group and size, means over the draws."""

    group: Group
    size: int
    draws: int
    n_probes: int
    n_strangers: dict[str, int]
    tpir: float
    fpir: dict[str, float]
    tpir_at_fpir_1e2: float
    #: The same group's strangers of the *other* half (every image of its people), when
    #: asked for: a half's galleries of 30 East Asian people have only ~150 stranger
    #: images, so FPIR 1 % there is set by one or two look-alikes (docs/benchmarks.md).
    other_half_strangers: int = 0
    fpir_other_half: float | None = None
    #: TPIR at FPIR 1 % of the same-group strangers of both halves pooled.
    tpir_at_fpir_1e2_both_halves: float | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "gallery_group": self.group,
            "gallery_size": self.size,
            "draws": self.draws,
            "known_probes": self.n_probes,
            "strangers": self.n_strangers,
            "tpir_at_operating_point": round(self.tpir, 4),
            "fpir_at_operating_point": {k: round(v, 4) for k, v in self.fpir.items()},
            "tpir_at_fpir_1e-2_same_group_strangers": round(self.tpir_at_fpir_1e2, 4),
        }
        if self.fpir_other_half is not None and self.tpir_at_fpir_1e2_both_halves is not None:
            out["other_half_same_group_strangers"] = {
                "strangers": self.other_half_strangers,
                "fpir_at_operating_point": round(self.fpir_other_half, 4),
                "tpir_at_fpir_1e-2_both_halves": round(self.tpir_at_fpir_1e2_both_halves, 4),
            }
        return out


def _draw_seed(group: Group, size: int, draw: int) -> int:
    return zlib.crc32(f"{group}/{size}/{draw}".encode())


def open_set_figures(
    pop: Population,
    rule: Rule,
    group: Group,
    size: int,
    half: int,
    *,
    draws: int = DRAWS,
    enrol: int = 1,
    probes_from: int | None = None,
    other_half: bool = False,
) -> OpenSetFigures:
    """Galleries of ``size`` eligible people of ``group`` from ``half``.

    Each enrolled with their first ``enrol`` images; known probes are their images from
    number ``probes_from`` on (default: the ones not enrolled); eligible people have
    probes. Strangers of each group (same half): every image of its people not in this
    gallery. ``size`` 0 = all eligible people. With ``enrol`` 1 and ``probes_from`` 2, the
    people and probes are those of ``enrol`` 2, for a like-for-like comparison.
    ``other_half``: also the same group's strangers of the other half (every image of its
    people), apart and pooled with this half's.
    """
    first_probe = enrol if probes_from is None else max(probes_from, enrol)
    people = {g: pop.by_person(pop.rows(g, half)) for g in GROUPS}
    eligible = sorted(n for n, rows in people[group].items() if len(rows) > first_probe)
    size = len(eligible) if size == 0 or size > len(eligible) else size
    runs = 1 if size == len(eligible) else draws
    tpirs, tpir_1e2, probes_seen = [], [], 0
    fpirs: dict[str, list[float]] = {g: [] for g in GROUPS}
    counts: dict[str, int] = {}
    other_rows = [r for rows in pop.by_person(pop.rows(group, 1 - half)).values() for r in rows]
    other_fpir: list[float] = []
    tpir_both: list[float] = []
    for draw in range(runs):
        rng = np.random.default_rng(_draw_seed(group, size, draw))
        chosen = sorted(rng.choice(eligible, size=size, replace=False).tolist())
        g_rows = [r for n in chosen for r in people[group][n][:enrol]]
        g_names = [n for n in chosen for _ in people[group][n][:enrol]]
        p_rows = [r for n in chosen for r in people[group][n][first_probe:]]
        p_names = [n for n in chosen for _ in people[group][n][first_probe:]]
        decider = rule(pop.vectors[g_rows], g_names)
        best, score = decider(pop.vectors[p_rows])
        truth = np.asarray([chosen.index(n) for n in p_names])
        correct = best == truth
        tpirs.append(float(((score >= 0) & correct).mean()))
        probes_seen = len(p_rows)
        same_group_scores = np.zeros(0)
        for g in GROUPS:
            taken = set(chosen) if g == group else set()
            s_rows = [r for n, rows in people[g].items() if n not in taken for r in rows]
            _, s_score = decider(pop.vectors[s_rows])
            fpirs[g].append(float((s_score >= 0).mean()))
            counts[g] = len(s_rows)
            if g == group:
                same_group_scores = s_score
        t = threshold_at_fpir(same_group_scores, 1e-2)
        tpir_1e2.append(tpir_at_threshold(score, correct, t))
        if other_half and other_rows:
            _, o_score = decider(pop.vectors[other_rows])
            other_fpir.append(float((o_score >= 0).mean()))
            both = np.concatenate([same_group_scores, o_score])
            tpir_both.append(tpir_at_threshold(score, correct, threshold_at_fpir(both, 1e-2)))
    return OpenSetFigures(
        group=group,
        size=size,
        draws=runs,
        n_probes=probes_seen,
        n_strangers=counts,
        tpir=float(np.mean(tpirs)),
        fpir={g: float(np.mean(v)) for g, v in fpirs.items()},
        tpir_at_fpir_1e2=float(np.mean(tpir_1e2)),
        other_half_strangers=len(other_rows) if other_fpir else 0,
        fpir_other_half=float(np.mean(other_fpir)) if other_fpir else None,
        tpir_at_fpir_1e2_both_halves=float(np.mean(tpir_both)) if tpir_both else None,
    )


# -- the packaged prior ------------------------------------------------------------------------

#: Quantile levels of the prior's pair-distance tables: fine in the low tail, where
#: thresholds live, then coarse.
PRIOR_LEVELS = tuple(
    sorted({*np.geomspace(1e-5, 0.1, 41).round(8).tolist(), *np.linspace(0.1, 1.0, 19).tolist()})
)
#: Gallery sizes and false-known targets of the prior's stranger-score table. Sizes stop
#: at 30 so that most of the ~130 people of a half are left out as strangers; above 30
#: the table's last column holds and the site's own stand-ins take over.
PRIOR_SIZES = (2, 3, 5, 10, 20, 30)
PRIOR_TARGETS = (0.001, 0.003, 0.01, 0.03, 0.1)
#: Random galleries per size when deriving the prior.
PRIOR_DRAWS = 40
#: Smallest gallery whose stand-in spread enters the z estimate.
PRIOR_Z_FROM = 10


def derive_prior(
    pop: Population,
    *,
    model_id: str,
    half: int = 0,
    pair_far: float = 0.005,
    cohort_k: int = 16,
) -> PopulationPrior:
    """The East Asian prior from one half of the East Asian people (docs/calibration.md).

    1. ``mean``: the mean over people of each person's mean embedding.
    2. Pair tables: distances of every same-person and different-person image pair,
       centred on ``mean`` (``impostor``, ``genuine``) and raw (``raw_impostor``);
       ``pair_threshold`` is the centred different-person distance at ``pair_far``.
    3. Stranger scores: for each size in :data:`PRIOR_SIZES`, :data:`PRIOR_DRAWS`
       galleries of people drawn at random (first image enrolled); every image of the
       people left out is a stranger. ``stranger_score`` is each target's quantile of the
       strangers' scores (pooled over the draws); ``stand_in_z``: per draw of at least
       :data:`PRIOR_Z_FROM` people, (that draw's stranger quantile - mean stand-in score)
       / stand-in spread, averaged.
    """
    people = pop.by_person(pop.rows("east_asian", half))
    person_means = np.vstack([pop.vectors[rows].mean(axis=0) for rows in people.values()])
    mean = person_means.mean(axis=0).astype(np.float32)
    genuine, impostor = pair_distances(centre(pop.vectors, mean), people, max_impostors=10**7)
    _, raw_impostor = pair_distances(pop.vectors, people, max_impostors=10**7)
    levels = np.asarray(PRIOR_LEVELS, dtype=np.float64)
    config = OpenSetConfig(cohort_k=cohort_k)
    names = sorted(people)
    targets = np.asarray(PRIOR_TARGETS, dtype=np.float64)
    table = np.zeros((len(targets), len(PRIOR_SIZES)))
    zs: list[NDArray[np.float64]] = []
    for column, size in enumerate(PRIOR_SIZES):
        pooled = []
        for draw in range(PRIOR_DRAWS):
            rng = np.random.default_rng(_draw_seed("prior", size, draw))
            chosen = sorted(rng.choice(names, size=size, replace=False).tolist())
            left_out = [n for n in names if n not in set(chosen)]
            gallery = Gallery.build(
                pop.vectors[[people[n][0] for n in chosen]], chosen, model_id=model_id
            )
            s_rows = [r for n in left_out for r in people[n]]
            scores = match_arrays(gallery, pop.vectors[s_rows], config).score
            scores = scores[np.isfinite(scores)]
            pooled.append(scores)
            if size >= PRIOR_Z_FROM:
                loo, _ = stand_in_scores(
                    gallery.vectors, gallery.starts, config, np.arange(size, dtype=np.int64)
                )
                loo = loo[np.isfinite(loo)]
                real = np.quantile(scores, 1.0 - targets)
                zs.append((real - loo.mean()) / max(float(loo.std()), 1e-6))
        table[:, column] = np.quantile(np.concatenate(pooled), 1.0 - targets)
    return PopulationPrior(
        name="east_asian",
        model_id=model_id,
        mean=mean,
        pair_threshold=float(np.quantile(impostor, pair_far)),
        pair_far=pair_far,
        levels=levels,
        impostor=np.quantile(impostor, levels),
        genuine=np.quantile(genuine, levels),
        raw_impostor=np.quantile(raw_impostor, levels),
        targets=targets,
        sizes=np.asarray(PRIOR_SIZES, dtype=np.float64),
        stranger_score=table,
        stand_in_z=np.mean(np.vstack(zs), axis=0),
        made_by=(
            f"cunan bench east-asian --derive-prior: LFW deep-funneled, East Asian people of "
            f"half {'AB'[half]} ({len(people)} people, {sum(map(len, people.values()))} "
            f"images), cached dlib embeddings; pair_far {pair_far}, cohort_k {cohort_k}, "
            f"{PRIOR_DRAWS} draws per gallery size"
        ),
    )


def derive_two_photo_scores(
    pop: Population, *, model_id: str, half: int = 0, cohort_k: int = 16
) -> NDArray[np.float64]:
    """The prior's ``stranger_score_2``: as ``stranger_score`` (:func:`derive_prior`), for
    galleries of people enrolled with their first two images (people with two or more;
    sizes above their number use all of them). Strangers: every image of everyone else."""
    people = pop.by_person(pop.rows("east_asian", half))
    two = sorted(n for n, rows in people.items() if len(rows) >= 2)
    config = OpenSetConfig(cohort_k=cohort_k)
    targets = np.asarray(PRIOR_TARGETS, dtype=np.float64)
    table = np.zeros((len(targets), len(PRIOR_SIZES)))
    for column, size in enumerate(PRIOR_SIZES):
        size = min(size, len(two) - 1)
        pooled = []
        for draw in range(PRIOR_DRAWS):
            rng = np.random.default_rng(_draw_seed("prior2", size, draw))
            chosen = sorted(rng.choice(two, size=size, replace=False).tolist())
            taken = set(chosen)
            g_rows = [r for n in chosen for r in people[n][:2]]
            g_names = [n for n in chosen for _ in people[n][:2]]
            gallery = Gallery.build(pop.vectors[g_rows], g_names, model_id=model_id)
            s_rows = [r for n, rows in people.items() if n not in taken for r in rows]
            scores = match_arrays(gallery, pop.vectors[s_rows], config).score
            pooled.append(scores[np.isfinite(scores)])
        table[:, column] = np.quantile(np.concatenate(pooled), 1.0 - targets)
    return table


# -- rules -------------------------------------------------------------------------------------


def decision_scores(arrays: MatchArrays, config: OpenSetConfig) -> NDArray[np.float64]:
    """A number per probe that is >= 0 exactly when ``arrays.known`` (higher = surer).

    The score's distance above ``min_score``, or where no score exists the distance below
    ``fallback_max_distance``; ``-inf`` where another rule (cap, margin, quality) refuses.
    """
    score = arrays.score.astype(np.float64)
    have = np.isfinite(score)
    fallback = config.fallback_max_distance - arrays.distance.astype(np.float64)
    value = np.where(have, score - (config.min_score or 0.0), fallback)
    gates = (arrays.best >= 0) & arrays.quality_ok & (arrays.distance <= config.max_distance)
    if config.min_margin is not None:
        gates &= arrays.margin >= config.min_margin
    if config.max_population_distance is not None and arrays.population_distance is not None:
        gates &= arrays.population_distance <= config.max_population_distance
    if config.normalisation == "none":
        value = config.max_distance - arrays.distance.astype(np.float64)
    out = np.where(gates, value, -np.inf)
    # Ties at exactly the threshold count as known in the product; keep them >= 0.
    out[arrays.known & (out < 0)] = 0.0
    out[~arrays.known & (out >= 0)] = -np.finfo(np.float64).tiny
    return out


def fixed_rule(config: OpenSetConfig, model_id: str) -> Rule:
    """The rule ``config`` as it stands (no adaptation), on raw embeddings."""

    def build(vectors: NDArray[np.float32], names: Sequence[str]) -> Decider:
        gallery = Gallery.build(vectors, list(names), model_id=model_id)

        def decide(probes: NDArray[np.float32]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
            arrays = match_arrays(gallery, probes, config)
            return arrays.best, decision_scores(arrays, config)

        return decide

    return build


def adaptive_rule(config: OpenSetConfig, model_id: str, prior: PopulationPrior | None) -> Rule:
    """The product's adaptive rule: thresholds calibrated on the gallery's own people."""

    def build(vectors: NDArray[np.float32], names: Sequence[str]) -> Decider:
        adapted = adapt(vectors, list(names), config, model_id=model_id, prior=prior)

        def decide(probes: NDArray[np.float32]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
            arrays = match_arrays(adapted.gallery, probes, adapted.config)
            return arrays.best, decision_scores(arrays, adapted.config)

        return decide

    return build


#: A centred distance no threshold reaches (unit vectors are at most 2 apart).
NEVER = 4.0


def population_pair_figures(
    pop: Population, people: dict[str, list[int]], prior: PopulationPrior
) -> PairFigures:
    """1:1 figures of ``faces compare``'s population rule (both distances must pass).

    TAR at fixed FAR sweeps the centred distance with the raw rule held.
    """
    from cunan.faces.verify import compare_vectors

    raw_g, raw_i = pair_distances(pop.vectors, people)
    new_g, new_i = pair_distances(centre(pop.vectors, prior.mean), people)
    probe = compare_vectors(pop.vectors[0], pop.vectors[0], prior=prior)
    limit = probe.threshold
    # Pairs the raw rule refuses can never match: a distance beyond any threshold says so.
    g = np.where(raw_g <= limit, new_g, NEVER)
    i = np.where(raw_i <= limit, new_i, NEVER)
    assert probe.population_threshold is not None
    return pair_figures(g, i, probe.population_threshold)


# -- the run -----------------------------------------------------------------------------------

#: 1:1 comparison as it was (raw distance, ``faces.match_threshold``).
RAW_THRESHOLD = 0.43


@dataclass(frozen=True, slots=True)
class EastAsianReport:
    """Every figure of the benchmark, per half, group and rule."""

    people: dict[str, dict[str, int]]
    pairs: dict[str, dict[str, PairFigures]]
    open_set: dict[str, list[OpenSetFigures]]
    #: None for a model the packaged prior does not describe (a site's ONNX model).
    prior: PopulationPrior | None
    load: str
    #: Rule -> figures of people with >= 3 images enrolled with 1 and with 2 photos (the
    #: same people and probes: images 3 on), empty unless asked for.
    two_photos: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "benchmark": "east_asian",
            "people": self.people,
            "one_to_one": {
                key: {rule: f.as_json() for rule, f in rules.items()}
                for key, rules in self.pairs.items()
            },
            "open_set": {rule: [f.as_json() for f in rows] for rule, rows in self.open_set.items()},
            "two_photos": self.two_photos,
            "prior": self.prior.made_by if self.prior is not None else None,
            "load": self.load,
            "notes": "half A (crc32(name) % 2 == 0) chose the rules and made the prior; half B "
            "is the report. 1:1 'raw' = distance <= 0.43 on the model's embeddings; "
            "'population' = faces compare's population-aware rule. Open set 'default' = the "
            "fixed rule (min_score 0.24), 'adaptive' = the product's adaptive rule. "
            "'other_half_same_group_strangers': East Asian galleries against the East Asian "
            "strangers of the other half too (the adaptive rule's prior came from half A, "
            "so half-B galleries' figures against half-A strangers are a little optimistic).",
        }


def run_east_asian(
    emb: LfwEmbeddings,
    *,
    prior: PopulationPrior | None,
    draws: int = DRAWS,
    halves: Sequence[int] = (0, 1),
    adaptive: AdaptiveConfig | None = None,
    two_photos: bool = False,
) -> EastAsianReport:
    """1:1 and open-set figures of East Asian people and the rest, old and new rules."""
    from cunan.bench.lfw_embeddings import machine_load

    load_before = machine_load()
    pop = Population.from_embeddings(emb)
    people: dict[str, dict[str, int]] = {}
    pairs: dict[str, dict[str, PairFigures]] = {}
    centred = centre(pop.vectors, prior.mean) if prior is not None else None
    for half in halves:
        for group in GROUPS:
            key = f"{group}/half_{'AB'[half]}"
            by_person = pop.by_person(pop.rows(group, half))
            people[key] = {
                "people": len(by_person),
                "images": sum(map(len, by_person.values())),
                "people_with_2_or_more": sum(len(r) >= 2 for r in by_person.values()),
            }
            raw_g, raw_i = pair_distances(pop.vectors, by_person)
            pairs[key] = {"raw": pair_figures(raw_g, raw_i, RAW_THRESHOLD)}
            if prior is not None and centred is not None:
                # The population rules exist only for the model the prior describes.
                new_g, new_i = pair_distances(centred, by_person)
                pairs[key]["centred"] = pair_figures(new_g, new_i, prior.pair_threshold)
                pairs[key]["population"] = population_pair_figures(pop, by_person, prior)
    model_id = emb.model_id
    rules = {
        "default": fixed_rule(OpenSetConfig(), model_id),
        "adaptive": adaptive_rule(
            OpenSetConfig(adaptive=adaptive or AdaptiveConfig()), model_id, prior
        ),
    }
    open_set: dict[str, list[OpenSetFigures]] = {name: [] for name in rules}
    for name, rule in rules.items():
        for half in halves:
            for group in GROUPS:
                for size in GALLERY_SIZES:
                    # East Asian halves are small: their galleries also meet the other
                    # half's East Asian strangers (three times as many images).
                    figures = open_set_figures(
                        pop, rule, group, size, half, draws=draws, other_half=group == "east_asian"
                    )
                    open_set[name].append(replace(figures, group=f"{group}/half_{'AB'[half]}"))
    two: dict[str, list[dict[str, object]]] = {}
    if two_photos:
        for name, rule in rules.items():
            two[name] = []
            for half in halves:
                for group in GROUPS:
                    for size in (10, 0):
                        for enrol in (1, 2):
                            f = open_set_figures(
                                pop,
                                rule,
                                group,
                                size,
                                half,
                                draws=draws,
                                enrol=enrol,
                                probes_from=2,
                            )
                            row = replace(f, group=f"{group}/half_{'AB'[half]}").as_json()
                            two[name].append({"enrol": enrol, **row})
    return EastAsianReport(
        two_photos=two,
        people=people,
        pairs=pairs,
        open_set=open_set,
        prior=prior,
        load=f"before: {load_before} | after: {machine_load()}",
    )


def view2_fixed_rules(
    emb: LfwEmbeddings, pairs_file: Path, prior: PopulationPrior
) -> dict[str, object]:
    """LFW View 2 pairs judged by the raw 0.43 rule and by ``faces compare``'s rule, unfitted."""
    from cunan.bench.lfw_data import parse_pairs
    from cunan.faces.verify import compare_vectors

    index = emb.index()
    ea = east_asian_names()
    raw, population, same, east = [], [], [], []
    for p in parse_pairs(pairs_file):
        a = emb.vectors[index[(p.name_a, p.number_a)]]
        b = emb.vectors[index[(p.name_b, p.number_b)]]
        result = compare_vectors(a, b, prior=prior, threshold=RAW_THRESHOLD)
        raw.append(result.distance <= RAW_THRESHOLD)
        population.append(result.same_person)
        same.append(p.same)
        east.append(p.name_a in ea or p.name_b in ea)
    r, q, s, e = (np.asarray(x, dtype=bool) for x in (raw, population, same, east))
    return {
        "pairs": len(s),
        "pairs_with_east_asian": int(e.sum()),
        "raw_accuracy": round(float((r == s).mean()), 5),
        "population_accuracy": round(float((q == s).mean()), 5),
        "raw_errors": int((r != s).sum()),
        "population_errors": int((q != s).sum()),
        "raw_errors_east_asian": int(((r != s) & e).sum()),
        "population_errors_east_asian": int(((q != s) & e).sum()),
        "raw_far": round(float(r[~s].mean()), 5),
        "population_far": round(float(q[~s].mean()), 5),
    }
