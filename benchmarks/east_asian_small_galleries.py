"""Why East Asian galleries of 30 miss the open-set target: scores, strangers, calibration.

Usage: python benchmarks/east_asian_small_galleries.py --lfw-dir DIR
[--parts scores,strangers,calibration,look-alikes] [--draws 20]

Needs the LFW embedding cache of `cunan bench lfw` (built on first use, CUNAN_CACHE_DIR).
The galleries are those of `cunan bench east-asian` (same seeds: first image enrolled,
eligible people = two or more images). Parts (docs/benchmarks.md section 10, "Gallery of
30: what limits it"):

- scores: threshold-free TPIR at FPIR 1 % (same-half East Asian strangers) of candidate
  scores: the product's cohort score, cohort_k 4, the raw distance, the distance centred
  on the prior's East Asian mean or on the gallery's own mean blended with it, and the
  cohort score minus lambda times that centred distance.
- strangers: the fixed and the adaptive rule against the East Asian strangers of the
  gallery's half and of the other half (three times as many stranger images), with a
  Wilson 95 % interval of the pooled rate (draws share strangers: indicative only).
- calibration: per draw, the prior's, the site's and the blended threshold against the
  threshold that would give the aimed rate on the pooled strangers.
- look-alikes: which stranger -> resident pairs the adaptive rule names, per gallery.
- poor-residents: faces degraded to 60-90 px wide (grey, blur 1; `cunan bench east-asian
  --degraded-width 60,90`) of enrolled East Asian people and of East Asian strangers, per
  half: of the faces that pass the judging gate and are decided unknown, the share whose
  score lies within a band below the calibrated threshold (what an "undecided" band would
  take from residents' false alarms, and from strangers' warnings).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cunan.bench.east_asian import (
    Decider,
    Population,
    Rule,
    _draw_seed,
    adaptive_rule,
    fixed_rule,
    open_set_figures,
)
from cunan.bench.lfw_embeddings import load_or_compute, machine_load
from cunan.bench.openset_protocol import threshold_at_fpir, tpir_at_threshold
from cunan.matching.adaptive import TARGET_MARGIN, PopulationPrior, calibrate, load_prior
from cunan.matching.openset import AdaptiveConfig, Gallery, OpenSetConfig, match_arrays

Rows = list[int]


def candidate(
    kind: str, model_id: str, prior: PopulationPrior, *, lam: float = 0.0, k: int = 16,
    centre: str = "prior",
) -> Rule:  # fmt: skip
    """A rule whose decision value is a candidate score (only its order matters here)."""

    def build(vectors: NDArray[np.float32], names: Sequence[str]) -> Decider:
        gallery = Gallery.build(vectors, list(names), model_id=model_id)
        mean = prior.mean.astype(np.float64)
        if centre == "blend":  # the gallery's own mean, with the prior counting 30 people
            n = len(set(names))
            mean = (30 * mean + n * vectors.mean(axis=0)) / (30 + n)
        config = OpenSetConfig(cohort_k=k, population_centre=tuple(float(v) for v in mean))

        def decide(probes: NDArray[np.float32]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
            a = match_arrays(gallery, probes, config)
            assert a.population_distance is not None
            score = a.score.astype(np.float64)
            centred = a.population_distance.astype(np.float64)
            values = {
                "cohort": score,
                "raw": -a.distance.astype(np.float64),
                "centred": -centred,
                "fusion": score - lam * centred,
            }[kind]
            return a.best, np.where(np.isfinite(values), values, -1e9)

        return decide

    return build


def part_scores(pop: Population, prior: PopulationPrior, model_id: str, draws: int) -> None:
    rules: dict[str, Rule] = {
        "cohort (product)": candidate("cohort", model_id, prior),
        "cohort_k 4": candidate("cohort", model_id, prior, k=4),
        "raw distance": candidate("raw", model_id, prior),
        "centred (prior mean)": candidate("centred", model_id, prior),
        "centred (blended mean)": candidate("centred", model_id, prior, centre="blend"),
    }
    for lam in (0.25, 0.5, 1.0):
        rules[f"fusion {lam} (prior)"] = candidate("fusion", model_id, prior, lam=lam)
        rules[f"fusion {lam} (blend)"] = candidate(
            "fusion", model_id, prior, lam=lam, centre="blend"
        )
    print("threshold-free TPIR @ FPIR 1 %, East Asian galleries: A 10 / 30 / all | B 10 / 30 / all")
    for name, rule in rules.items():
        cells = [
            open_set_figures(pop, rule, "east_asian", size, half, draws=draws).tpir_at_fpir_1e2
            for half in (0, 1)
            for size in (10, 30, 0)
        ]
        text = " / ".join(f"{100 * c:.1f}" for c in cells[:3])
        text += " | " + " / ".join(f"{100 * c:.1f}" for c in cells[3:])
        print(f"  {name:24s} {text}", flush=True)


def _galleries(
    pop: Population, half: int, size: int, draws: int
) -> tuple[dict[int, dict[str, Rows]], list[list[str]]]:
    people = {h: pop.by_person(pop.rows("east_asian", h)) for h in (0, 1)}
    eligible = sorted(n for n, rows in people[half].items() if len(rows) > 1)
    size = len(eligible) if size == 0 else size
    runs = 1 if size == len(eligible) else draws
    chosen = [
        sorted(
            np.random.default_rng(_draw_seed("east_asian", size, d))
            .choice(eligible, size=size, replace=False)
            .tolist()
        )
        for d in range(runs)
    ]
    return people, chosen


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of the rate k / n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def part_strangers(pop: Population, rules: dict[str, Rule], draws: int) -> None:
    print("strangers of the gallery's half and of the other half (East Asian)")
    for name, rule in rules.items():
        for half in (0, 1):
            for size in (10, 30, 0):
                people, chosen = _galleries(pop, half, size, draws)
                mine = people[half]
                tp, same, other, free_same, free_pool = [], [], [], [], []
                k = n = 0
                for names in chosen:
                    decide = rule(pop.vectors[[mine[p][0] for p in names]], names)
                    probes = [r for p in names for r in mine[p][1:]]
                    truth = np.asarray([names.index(pop.names[r]) for r in probes])
                    best, score = decide(pop.vectors[probes])
                    correct = best == truth
                    tp.append(float(((score >= 0) & correct).mean()))
                    taken = set(names)
                    s_same = [r for p, rows in mine.items() if p not in taken for r in rows]
                    s_other = [r for rows in people[1 - half].values() for r in rows]
                    _, ss = decide(pop.vectors[s_same])
                    _, so = decide(pop.vectors[s_other])
                    same.append(float((ss >= 0).mean()))
                    other.append(float((so >= 0).mean()))
                    k += int((ss >= 0).sum() + (so >= 0).sum())
                    n += len(ss) + len(so)
                    pooled = np.concatenate([ss, so])
                    free_same.append(tpir_at_threshold(score, correct, threshold_at_fpir(ss, 0.01)))
                    free_pool.append(
                        tpir_at_threshold(score, correct, threshold_at_fpir(pooled, 0.01))
                    )
                lo, hi = _wilson(k, n)
                print(
                    f"  {name:8s} half {'AB'[half]} {len(chosen[0]):2d} people ({len(chosen)} "
                    f"draws; strangers/draw {len(s_same)} + {len(s_other)}): TPIR "
                    f"{100 * np.mean(tp):.1f}, FPIR same half {100 * np.mean(same):.2f} / other "
                    f"{100 * np.mean(other):.2f} / pooled {100 * k / n:.2f} ({100 * lo:.2f}-"
                    f"{100 * hi:.2f}); TPIR@FPIR 1 % same half {100 * np.mean(free_same):.1f}, "
                    f"pooled {100 * np.mean(free_pool):.1f}",
                    flush=True,
                )


def part_calibration(pop: Population, prior: PopulationPrior, model_id: str, draws: int) -> None:
    config, adaptive = OpenSetConfig(), AdaptiveConfig()
    aim = adaptive.target * TARGET_MARGIN
    print(f"thresholds against the pooled strangers' score at {100 * aim:.1f} % (the aim)")
    for half in (0, 1):
        for size in (10, 20, 30, 0):
            people, chosen = _galleries(pop, half, size, draws)
            mine = people[half]
            found: dict[str, list[float]] = {}
            for names in chosen:
                gallery = Gallery.build(
                    pop.vectors[[mine[p][0] for p in names]], names, model_id=model_id
                )
                c = calibrate(gallery.vectors, gallery.starts, config, adaptive, prior=prior)
                taken = set(names)
                s_rows = [r for p, rows in mine.items() if p not in taken for r in rows]
                s_rows += [r for rows in people[1 - half].values() for r in rows]
                strangers = match_arrays(gallery, pop.vectors[s_rows], config).score
                probes = [r for p in names for r in mine[p][1:]]
                truth = np.asarray([names.index(pop.names[r]) for r in probes])
                a = match_arrays(gallery, pop.vectors[probes], config)
                site = c.site_min_score if c.site_min_score is not None else c.prior_min_score
                oracle = float(np.quantile(strangers, 1 - aim))
                chosen_thresholds = (
                    ("prior", c.prior_min_score),
                    ("site", site),
                    ("blend", c.min_score),
                )
                for key, t in chosen_thresholds:
                    found.setdefault(f"{key} error", []).append(t - oracle)
                    found.setdefault(f"{key} FPIR", []).append(float((strangers >= t).mean()))
                    tpir = float(((a.score >= t) & (a.best == truth)).mean())
                    found.setdefault(f"{key} TPIR", []).append(tpir)
            text = "; ".join(
                f"{key}: error {np.mean(found[key + ' error']):+.3f} (rms "
                f"{np.sqrt(np.mean(np.square(found[key + ' error']))):.3f}), FPIR "
                f"{100 * np.mean(found[key + ' FPIR']):.2f} %, TPIR "
                f"{100 * np.mean(found[key + ' TPIR']):.1f} %"
                for key in ("prior", "site", "blend")
            )
            print(f"  half {'AB'[half]} {len(chosen[0]):2d} people: {text}", flush=True)


def part_look_alikes(pop: Population, rule: Rule, draws: int) -> None:
    print("strangers named by the adaptive rule (same half): (stranger, named as): draws")
    for half in (0, 1):
        for size in (10, 30, 0):
            people, chosen = _galleries(pop, half, size, draws)
            mine = people[half]
            named: Counter[tuple[str, str]] = Counter()
            for names in chosen:
                decide = rule(pop.vectors[[mine[p][0] for p in names]], names)
                taken = set(names)
                s_rows = [r for p, rows in mine.items() if p not in taken for r in rows]
                best, score = decide(pop.vectors[s_rows])
                for i in np.flatnonzero(score >= 0):
                    named[(pop.names[s_rows[i]], names[int(best[i])])] += 1
            pairs = ", ".join(f"{s} -> {r}: {c}" for (s, r), c in named.most_common(8))
            print(f"  half {'AB'[half]} {len(chosen[0]):2d} people ({len(chosen)} draws): {pairs}")


def part_poor_residents(pop: Population, rule: Rule, lfw_dir: Path, draws: int) -> None:
    from cunan.bench.degraded import embed_degraded, resident_rows, stranger_rows

    emb = load_or_compute(lfw_dir, show_progress=False)
    bands = (0.02, 0.05, 0.1)
    print("60-90 px faces passing the gate, decided unknown; share within a band below min_score")
    for half in (0, 1):
        residents = embed_degraded(
            lfw_dir, emb, resident_rows(pop, half, "east_asian"), seed=1, face_width=(60, 90)
        )
        ea = pop.east_asian
        s_rows = np.asarray([r for r in stranger_rows(pop, half, 136) if ea[r]], dtype=np.int64)
        strangers = embed_degraded(lfw_dir, emb, s_rows, face_width=(60, 90))
        for size in (10, 30, 0):
            people, chosen = _galleries(pop, half, size, draws)
            mine = people[half]
            res_unknown: list[NDArray[np.float64]] = []
            str_unknown: list[NDArray[np.float64]] = []
            res_n = str_n = 0
            for names in chosen:
                decide = rule(pop.vectors[[mine[p][0] for p in names]], names)
                taken = set(names)
                owner = [pop.names[r] for r in residents.rows.tolist()]
                use = residents.quality_ok & np.asarray([n in taken for n in owner])
                if use.any():
                    _, value = decide(residents.vectors[use])
                    res_n += int(use.sum())
                    res_unknown.append(value[value < 0])
                owner = [pop.names[r] for r in strangers.rows.tolist()]
                use = strangers.quality_ok & np.asarray([n not in taken for n in owner])
                _, value = decide(strangers.vectors[use])
                str_n += int(use.sum())
                str_unknown.append(value[value < 0])
            ru, su = np.concatenate(res_unknown), np.concatenate(str_unknown)
            cells = ", ".join(
                f"band {b}: residents {100 * float((ru >= -b).sum()) / res_n:.1f} % / "
                f"strangers {100 * float((su >= -b).sum()) / str_n:.1f} %"
                for b in bands
            )
            print(
                f"  half {'AB'[half]} {len(chosen[0]):2d} people: residents judged {res_n}, "
                f"decided unknown {100 * len(ru) / res_n:.1f} %; strangers judged {str_n}, "
                f"unknown {100 * len(su) / str_n:.1f} %; {cells}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw-dir", type=Path, required=True)
    parser.add_argument("--parts", default="scores,strangers,calibration,look-alikes")
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    emb = load_or_compute(args.lfw_dir, show_progress=False)
    pop = Population.from_embeddings(emb)
    prior = load_prior()
    model_id = emb.model_id
    adaptive = adaptive_rule(OpenSetConfig(adaptive=AdaptiveConfig()), model_id, prior)
    rules = {"default": fixed_rule(OpenSetConfig(), model_id), "adaptive": adaptive}
    parts: dict[str, Callable[[], None]] = {
        "scores": lambda: part_scores(pop, prior, model_id, args.draws),
        "strangers": lambda: part_strangers(pop, rules, args.draws),
        "calibration": lambda: part_calibration(pop, prior, model_id, args.draws),
        "look-alikes": lambda: part_look_alikes(pop, adaptive, args.draws),
        "poor-residents": lambda: part_poor_residents(pop, adaptive, args.lfw_dir, args.draws),
    }
    print(f"load before: {machine_load()}", flush=True)
    for part in args.parts.split(","):
        parts[part.strip()]()
    print(f"load after: {machine_load()}", flush=True)


if __name__ == "__main__":
    main()
