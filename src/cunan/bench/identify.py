"""Open-set identification on LFW: TPIR at fixed FPIR of each decision rule, as an ablation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cunan.bench.lfw_embeddings import (
    QUALITY_FIELDS,
    JitteredVectors,
    JitterSpec,
    LfwEmbeddings,
    Runtime,
    load_or_compute,
    load_or_compute_jittered,
)
from cunan.bench.openset_protocol import (
    OpenSetSplit,
    lfw_open_set_split,
    person_half,
    threshold_at_fpir,
    tpir_at_fpir,
    tpir_at_threshold,
)
from cunan.faces.quality import SIGHTING_THRESHOLDS, QualityThresholds
from cunan.matching.adaptive import adapt
from cunan.matching.openset import (
    BASELINE_CONFIG,
    AdaptiveConfig,
    Gallery,
    MatchArrays,
    OpenSetConfig,
    match_arrays,
)

logger = logging.getLogger(__name__)

Sweep = Literal["distance", "margin", "score"]

#: FPIR points of the reported curve.
CURVE_FPIRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
#: cohort_k values tried on the tuning half.
COHORT_GRID = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True, slots=True)
class Step:
    """One row of the ablation: a rule, and which of its numbers the FPIR sweep moves.

    The swept number's threshold is set by the FPIR; every other rule of ``config``
    applies at its configured value.
    """

    name: str
    config: OpenSetConfig
    sweep: Sweep


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    sweep: Sweep
    tpir_1e2: float
    tpir_1e3: float
    heldout_tpir_1e2: float
    heldout_tpir_1e3: float


def quality_mask(quality: NDArray[np.float32], thresholds: QualityThresholds) -> NDArray[np.bool_]:
    """Which rows of the cached quality columns meet ``thresholds``."""
    col = dict(zip(QUALITY_FIELDS, quality.T, strict=True))
    return np.asarray(
        (col["face_width_px"] >= thresholds.min_face_px)
        & (col["interocular_px"] >= thresholds.min_interocular_px)
        & (col["sharpness"] >= thresholds.min_sharpness)
        & (col["frontalness"] >= thresholds.min_frontalness)
        & (col["brightness"] >= thresholds.min_brightness)
        & (col["brightness"] <= thresholds.max_brightness),
        dtype=bool,
    )


def sweep_scores(arrays: MatchArrays, config: OpenSetConfig, sweep: Sweep) -> NDArray[np.float64]:
    """The swept number per probe (higher = accept), ``-inf`` where another rule refuses."""
    if sweep == "distance":
        value = -arrays.distance.astype(np.float64)
        gates = arrays.quality_ok.copy()
    else:
        value = (arrays.margin if sweep == "margin" else arrays.score).astype(np.float64)
        gates = arrays.quality_ok & (arrays.distance <= config.max_distance)
    if config.min_margin is not None and sweep != "margin":
        gates &= arrays.margin >= config.min_margin
    return np.where(gates & (arrays.best >= 0) & ~np.isnan(value), value, -np.inf)


@dataclass(frozen=True, slots=True)
class Evaluated:
    probe: NDArray[np.float64]
    stranger: NDArray[np.float64]
    correct: NDArray[np.bool_]
    probe_arrays: MatchArrays
    stranger_arrays: MatchArrays


class IdentifyData:
    """The split, its gallery and the halves used for tuning (A) and reporting (B)."""

    def __init__(self, emb: LfwEmbeddings, enrol: int) -> None:
        self.emb = emb
        self.enrol = enrol
        self.split: OpenSetSplit = lfw_open_set_split(emb.names, emb.numbers.tolist(), enrol)
        self.gallery = Gallery.build(
            emb.vectors[self.split.gallery_rows],
            list(self.split.gallery_names),
            model_id=emb.model_id,
        )
        index = {name: i for i, name in enumerate(self.gallery.identities)}
        self.truth = np.asarray([index[n] for n in self.split.probe_names])
        self.probe_half = np.asarray([person_half(n) for n in self.split.probe_names])
        self.stranger_half = np.asarray([person_half(n) for n in self.split.stranger_names])

    def evaluate(self, step: Step) -> Evaluated:
        cfg = step.config
        p_ok = s_ok = None
        if cfg.quality is not None:
            p_ok = quality_mask(self.emb.quality[self.split.probe_rows], cfg.quality)
            s_ok = quality_mask(self.emb.quality[self.split.stranger_rows], cfg.quality)
        p = match_arrays(
            self.gallery, self.emb.vectors[self.split.probe_rows], cfg, quality_ok=p_ok
        )
        s = match_arrays(
            self.gallery, self.emb.vectors[self.split.stranger_rows], cfg, quality_ok=s_ok
        )
        return Evaluated(
            probe=sweep_scores(p, cfg, step.sweep),
            stranger=sweep_scores(s, cfg, step.sweep),
            correct=np.asarray(p.best == self.truth),
            probe_arrays=p,
            stranger_arrays=s,
        )

    def tpir(self, ev: Evaluated, fpir: float, half: int | None = None) -> float:
        pm = np.ones(len(ev.probe), bool) if half is None else self.probe_half == half
        sm = np.ones(len(ev.stranger), bool) if half is None else self.stranger_half == half
        return tpir_at_fpir(ev.probe[pm], ev.correct[pm], ev.stranger[sm], fpir)[0]


def default_steps(enrol: int, default: OpenSetConfig) -> list[Step]:
    """The ablation, from the baseline to the default rule and the variations around it."""
    none = {"normalisation": "none", "min_score": None, "min_margin": None, "max_distance": 2.0}
    baseline = replace(BASELINE_CONFIG, max_distance=2.0)
    z = replace(default, score_form="zscore", min_score=0.0, max_distance=2.0)
    lr = replace(default, max_distance=2.0)
    steps = [
        Step("1 nearest identity, global distance threshold (baseline)", baseline, "distance"),
        Step("2 margin to runner-up identity", replace(default, **none), "margin"),  # type: ignore[arg-type]
        Step("3a z-score, identity cohort (z-norm)", replace(z, normalisation="identity"), "score"),
        Step("3b z-score, probe cohort (t-norm)", replace(z, normalisation="probe"), "score"),
        Step("3c z-score, symmetric (s-norm)", replace(z, normalisation="symmetric"), "score"),
        Step("4a log-ratio, identity cohort", replace(lr, normalisation="identity"), "score"),
        Step("4b log-ratio, probe cohort", replace(lr, normalisation="probe"), "score"),
        Step("4c log-ratio, symmetric (DEFAULT rule)", lr, "score"),
        Step("5 default + max_distance cap", default, "score"),
        Step("6 default + margin gate 0.02", replace(default, min_margin=0.02), "score"),
        Step(
            "7 default + quality gate (sighting)",
            replace(default, quality=SIGHTING_THRESHOLDS),
            "score",
        ),
    ]
    if enrol > 1:
        steps.append(
            Step("8 default, min over templates", replace(default, aggregation="min"), "score")
        )
        steps.append(
            Step(
                "8b baseline, mean over templates",
                replace(baseline, aggregation="mean"),
                "distance",
            )
        )
    return steps


@dataclass(frozen=True, slots=True)
class IdentifyReport:
    enrol: int
    n_identities: int
    n_probes: int
    n_strangers: int
    rank1: float
    steps: tuple[StepResult, ...]
    tuning: dict[str, object]
    default_config: OpenSetConfig
    tpir_1e2: float
    tpir_1e3: float
    heldout_tpir_1e2: float
    heldout_tpir_1e3: float
    curve: tuple[tuple[float, float, float], ...]
    default_tpir: float
    default_fpir: float
    heldout_default_tpir: float
    heldout_default_fpir: float
    face_sources: dict[str, int]
    enrol_jitter: JitterSpec = field(default_factory=JitterSpec)
    jittered: JitteredVectors | None = None
    adaptive: dict[str, float | int | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        c = self.default_config
        return {
            "benchmark": "identify",
            "enrol": self.enrol,
            "enrol_jitter": self.enrol_jitter.label(),
            "enrol_jitter_pass": None
            if self.jittered is None
            else {
                "cache_key": self.enrol_jitter.key(),
                "images": self.jittered.images,
                "seconds": round(self.jittered.seconds, 1),
                "images_per_s": round(self.jittered.images_per_s, 2),
                "note": "gallery images only are jittered (probes and strangers plain), "
                "from the cached face of each image, 1 process with 1 thread",
            },
            "n_identities": self.n_identities,
            "n_known_probes": self.n_probes,
            "n_stranger_probes": self.n_strangers,
            "rank1_closed_set": round(self.rank1, 4),
            "tpir_at_fpir_1e-2": round(self.tpir_1e2, 4),
            "tpir_at_fpir_1e-3": round(self.tpir_1e3, 4),
            "heldout_tpir_at_fpir_1e-2": round(self.heldout_tpir_1e2, 4),
            "heldout_tpir_at_fpir_1e-3": round(self.heldout_tpir_1e3, 4),
            "default_tpir": round(self.default_tpir, 4),
            "default_fpir": round(self.default_fpir, 4),
            "heldout_default_tpir": round(self.heldout_default_tpir, 4),
            "heldout_default_fpir": round(self.heldout_default_fpir, 4),
            "default_rule": {
                "normalisation": c.normalisation,
                "score_form": c.score_form,
                "cohort_k": c.cohort_k,
                "min_score": c.min_score,
                "max_distance": c.max_distance,
                "min_margin": c.min_margin,
                "aggregation": c.aggregation,
                "quality_gate": c.quality is not None,
            },
            "curve": [
                {"fpir": f, "tpir": round(t, 4), "threshold": round(th, 4)}
                for f, t, th in self.curve
            ],
            "ablation": [
                {
                    "step": s.name,
                    "sweep": s.sweep,
                    "tpir_at_fpir_1e-2": round(s.tpir_1e2, 4),
                    "tpir_at_fpir_1e-3": round(s.tpir_1e3, 4),
                    "heldout_tpir_at_fpir_1e-2": round(s.heldout_tpir_1e2, 4),
                    "heldout_tpir_at_fpir_1e-3": round(s.heldout_tpir_1e3, 4),
                }
                for s in self.steps
            ],
            "tuning": self.tuning,
            "adaptive": self.adaptive,
            "face_sources": self.face_sources,
            "notes": "TPIR = known probe identified as the right person and accepted; FPIR = "
            "stranger accepted as anyone. 'heldout' = people of half B only (half A, by a "
            "hash of the name, was used to choose cohort_k and min_score); other figures use "
            "all probes. No stranger data is used to fit any rule: cohorts are the gallery.",
        }


def tune_on_half_a(data: IdentifyData, default: OpenSetConfig) -> dict[str, object]:
    """Choose cohort_k (mean TPIR at FPIR 1e-2 and 1e-3) and min_score (FPIR 1e-2) on half A."""
    rows = []
    best_k, best_value = default.cohort_k, -1.0
    for k in COHORT_GRID:
        ev = data.evaluate(Step("tune", replace(default, cohort_k=k, max_distance=2.0), "score"))
        a2, a3 = data.tpir(ev, 1e-2, half=0), data.tpir(ev, 1e-3, half=0)
        rows.append(
            {"cohort_k": k, "halfA_tpir_1e-2": round(a2, 4), "halfA_tpir_1e-3": round(a3, 4)}
        )
        if (a2 + a3) / 2 > best_value:
            best_k, best_value = k, (a2 + a3) / 2
    ev = data.evaluate(Step("tune", replace(default, cohort_k=best_k), "score"))
    a_strangers = ev.stranger[data.stranger_half == 0]
    min_score = threshold_at_fpir(a_strangers, 1e-2)
    return {
        "half_A": "people with crc32(name) % 2 == 0",
        "grid": rows,
        "chosen_cohort_k": best_k,
        "min_score_at_halfA_fpir_1e-2": round(min_score, 4),
        "product_default_cohort_k": default.cohort_k,
        "product_default_min_score": default.min_score,
    }


def run_identify(
    lfw_dir: Path,
    *,
    enrol: int = 1,
    runtime: Runtime = "auto",
    workers: int = 2,
    show_progress: bool = True,
    config: OpenSetConfig | None = None,
    enrol_jitter: JitterSpec | None = None,
) -> IdentifyReport:
    """The ablation and default-rule numbers; ``enrol_jitter`` jitters the gallery only."""
    emb = load_or_compute(lfw_dir, runtime=runtime, workers=workers, show_progress=show_progress)
    enrol_jitter = enrol_jitter or JitterSpec()
    jittered = None
    if not enrol_jitter.is_plain:
        # As in the product: enrolment photos get jittered templates, camera faces
        # (here the probes and strangers) are embedded once.
        rows = lfw_open_set_split(emb.names, emb.numbers.tolist(), enrol).gallery_rows
        jittered = load_or_compute_jittered(
            lfw_dir, emb, list(rows), enrol_jitter, runtime=runtime, show_progress=show_progress
        )
        vectors = emb.vectors.copy()
        vectors[list(rows)] = jittered.vectors[list(rows)]
        emb = replace(emb, vectors=vectors)
    default = config or OpenSetConfig()
    data = IdentifyData(emb, enrol)
    tuning = tune_on_half_a(data, default)
    results = []
    for step in default_steps(enrol, default):
        ev = data.evaluate(step)
        results.append(
            StepResult(
                name=step.name,
                sweep=step.sweep,
                tpir_1e2=data.tpir(ev, 1e-2),
                tpir_1e3=data.tpir(ev, 1e-3),
                heldout_tpir_1e2=data.tpir(ev, 1e-2, half=1),
                heldout_tpir_1e3=data.tpir(ev, 1e-3, half=1),
            )
        )
    main = data.evaluate(Step("default", default, "score"))
    curve = []
    for fpir in CURVE_FPIRS:
        threshold = threshold_at_fpir(main.stranger, fpir)
        curve.append((fpir, tpir_at_threshold(main.probe, main.correct, threshold), threshold))
    p, s = main.probe_arrays, main.stranger_arrays
    b_p, b_s = data.probe_half == 1, data.stranger_half == 1
    known_ok = p.known & main.correct
    adaptive = adaptive_operating_point(data, replace(default, adaptive=AdaptiveConfig()))
    return IdentifyReport(
        enrol=enrol,
        n_identities=len(data.gallery),
        n_probes=len(data.split.probe_rows),
        n_strangers=len(data.split.stranger_rows),
        rank1=float(main.correct.mean()),
        steps=tuple(results),
        tuning=tuning,
        default_config=default,
        tpir_1e2=data.tpir(main, 1e-2),
        tpir_1e3=data.tpir(main, 1e-3),
        heldout_tpir_1e2=data.tpir(main, 1e-2, half=1),
        heldout_tpir_1e3=data.tpir(main, 1e-3, half=1),
        curve=tuple(curve),
        default_tpir=float(known_ok.mean()),
        default_fpir=float(s.known.mean()),
        heldout_default_tpir=float(known_ok[b_p].mean()),
        heldout_default_fpir=float(s.known[b_s].mean()),
        face_sources=emb.source_counts(),
        enrol_jitter=enrol_jitter,
        jittered=jittered,
        adaptive=adaptive,
    )


def adaptive_operating_point(
    data: IdentifyData, config: OpenSetConfig
) -> dict[str, float | int | None]:
    """Where the adaptive rule, calibrated on this gallery, operates (all and half B)."""
    split = data.split
    adapted = adapt(
        data.emb.vectors[split.gallery_rows],
        list(split.gallery_names),
        config,
        model_id=data.emb.model_id,
    )
    p = match_arrays(adapted.gallery, data.emb.vectors[split.probe_rows], adapted.config)
    s = match_arrays(adapted.gallery, data.emb.vectors[split.stranger_rows], adapted.config)
    ok = p.known & (p.best == data.truth)
    b_p, b_s = data.probe_half == 1, data.stranger_half == 1
    return {
        **adapted.calibration.as_details(),
        "tpir": round(float(ok.mean()), 4),
        "fpir": round(float(s.known.mean()), 4),
        "heldout_tpir": round(float(ok[b_p].mean()), 4),
        "heldout_fpir": round(float(s.known[b_s].mean()), 4),
    }
