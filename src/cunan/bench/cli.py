"""``cunan bench``: run the LFW, open-set identification and peer benchmarks from the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.bench.lfw_embeddings import Runtime

logger = logging.getLogger(__name__)

bench_app = typer.Typer(
    help="Accuracy and speed benchmarks on LFW (verification, open-set identification, "
    "comparison with face_recognition). Every command ends with one JSON line under --json.",
    no_args_is_help=True,
)

LfwDir = Annotated[
    Path,
    typer.Option(
        "--lfw-dir",
        help="LFW images: <Name>/<Name>_NNNN.jpg (e.g. lfw-deepfunneled).",
        exists=True,
        file_okay=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")]
RuntimeOpt = Annotated[
    str,
    typer.Option("--runtime", help="Embedding runtime: auto (ONNX if available), dlib or onnx."),
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")]
OnnxModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--onnx-model",
        help="A site's own ONNX recognition model (ArcFace-style, 112x112) instead of dlib's "
        "ResNet; default: the settings' faces.onnx_model (CUNAN_FACES__ONNX_MODEL).",
        exists=True,
        dir_okay=False,
    ),
]


def _runtime(value: str) -> Runtime:
    if value == "auto":
        return "auto"
    if value == "dlib":
        return "dlib"
    if value == "onnx":
        return "onnx"
    raise typer.BadParameter("use auto, dlib or onnx", param_hint="--runtime")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


@bench_app.command("lfw")
def lfw_command(
    lfw_dir: LfwDir,
    pairs: Annotated[
        Path, typer.Option("--pairs", help="LFW View 2 pairs.txt.", exists=True, dir_okay=False)
    ],
    as_json: JsonFlag = False,
    runtime: RuntimeOpt = "auto",
    workers: WorkersOpt = 2,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Recompute the cached embeddings.")
    ] = False,
    jitter: Annotated[
        str,
        typer.Option(
            "--jitter",
            help="Descriptor of each pair image: mean over N jittered chips (1 = plain), "
            "or 'mirror' (chip + its mirror image). Also reports the asymmetric case "
            "(first image jittered, second plain).",
        ),
    ] = "1",
    onnx_model: OnnxModelOpt = None,
) -> None:
    """LFW View 2: 10-fold accuracy (threshold from the other 9 folds) and TAR at FAR."""
    from cunan.bench.lfw_embeddings import use_onnx_model

    use_onnx_model(onnx_model)
    from cunan.bench.lfw import run_lfw
    from cunan.bench.lfw_embeddings import JitterSpec

    try:
        spec = JitterSpec.parse(jitter)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--jitter") from None
    console = Console()
    report = run_lfw(
        lfw_dir,
        pairs,
        runtime=_runtime(runtime),
        workers=workers,
        refresh=refresh,
        show_progress=not as_json,
        jitter=spec,
    )
    data = report.as_json()
    if not as_json:
        result = report.result
        table = Table(title=f"LFW View 2 (10 folds), jitter: {spec.label()}")
        table.add_column("fold", justify="right")
        table.add_column("threshold", justify="right")
        table.add_column("accuracy", justify="right")
        for fold in result.folds:
            table.add_row(str(fold.fold + 1), f"{fold.threshold:.4f}", _pct(fold.accuracy))
        table.add_row(
            "mean",
            f"{result.threshold_mean:.4f}",
            f"{_pct(result.accuracy_mean)} ± {_pct(result.accuracy_std)}",
        )
        console.print(table)
        summary = Table(title="Summary")
        summary.add_column("measure")
        summary.add_column("value", justify="right")
        summary.add_row("TAR at FAR 1e-2 (all 6000 pairs)", _pct(result.tar_at_far_1e2))
        summary.add_row("TAR at FAR 1e-3 (all 6000 pairs)", _pct(result.tar_at_far_1e3))
        if report.asymmetric is not None:
            asym = report.asymmetric
            summary.add_row(
                "asymmetric (1st jittered, 2nd plain): accuracy",
                f"{_pct(asym.accuracy_mean)} ± {_pct(asym.accuracy_std)}",
            )
            summary.add_row("asymmetric: TAR at FAR 1e-2", _pct(asym.tar_at_far_1e2))
            summary.add_row("asymmetric: TAR at FAR 1e-3", _pct(asym.tar_at_far_1e3))
        if report.jittered is not None:
            summary.add_row(
                "jitter pass images/s (1 process, no detection)",
                f"{report.jittered.images_per_s:.1f}",
            )
        summary.add_row(
            f"images/s ({report.embeddings.workers} processes, cache build, no jitter)",
            f"{report.embeddings.images_per_s:.1f}",
        )
        summary.add_row("embedding runtime", report.embeddings.runtime)
        for source, count in report.embeddings.source_counts().items():
            summary.add_row(f"faces from {source}", str(count))
        summary.add_row("images with several HOG faces", str(report.embeddings.multi_face_images()))
        console.print(summary)
    typer.echo(json.dumps(data))


@bench_app.command("identify")
def identify_command(
    lfw_dir: LfwDir,
    enrol: Annotated[
        int, typer.Option("--enrol", min=1, max=2, help="Enrolment images per person (1 or 2).")
    ] = 1,
    as_json: JsonFlag = False,
    runtime: RuntimeOpt = "auto",
    workers: WorkersOpt = 2,
    enrol_jitter: Annotated[
        str,
        typer.Option(
            "--enrol-jitter",
            help="Gallery templates as the mean over N jittered chips (1 = plain) or "
            "'mirror'; probes and strangers stay plain, as camera faces do.",
        ),
    ] = "1",
    onnx_model: OnnxModelOpt = None,
) -> None:
    """Open-set identification: LFW people with several images enrolled, singletons as strangers."""
    from cunan.bench.lfw_embeddings import use_onnx_model

    use_onnx_model(onnx_model)
    from cunan.bench.identify import run_identify
    from cunan.bench.lfw_embeddings import JitterSpec

    try:
        spec = JitterSpec.parse(enrol_jitter)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--enrol-jitter") from None
    console = Console()
    report = run_identify(
        lfw_dir,
        enrol=enrol,
        runtime=_runtime(runtime),
        workers=workers,
        show_progress=not as_json,
        enrol_jitter=spec,
    )
    data = report.as_json()
    if not as_json:
        table = Table(
            title=f"Open-set identification, enrol {enrol} (jitter: {spec.label()}): "
            f"{report.n_identities} people, {report.n_probes} known probes, "
            f"{report.n_strangers} strangers"
        )
        table.add_column("rule (ablation step)")
        table.add_column("TPIR@FPIR 1%", justify="right")
        table.add_column("TPIR@FPIR 0.1%", justify="right")
        table.add_column("held-out 1%", justify="right")
        table.add_column("held-out 0.1%", justify="right")
        for step in report.steps:
            table.add_row(
                step.name,
                _pct(step.tpir_1e2),
                _pct(step.tpir_1e3),
                _pct(step.heldout_tpir_1e2),
                _pct(step.heldout_tpir_1e3),
            )
        console.print(table)
        curve = Table(title="Default rule: TPIR vs FPIR")
        curve.add_column("FPIR", justify="right")
        curve.add_column("TPIR", justify="right")
        curve.add_column("min_score", justify="right")
        for fpir, tpir, threshold in report.curve:
            curve.add_row(_pct(fpir), _pct(tpir), f"{threshold:.4f}")
        console.print(curve)
        if report.adaptive:
            a = report.adaptive
            console.print(
                f"adaptive rule (calibrated on this gallery, min_score {a['min_score']}): "
                f"TPIR {a['tpir']}, FPIR {a['fpir']} (held-out half: {a['heldout_tpir']}, "
                f"{a['heldout_fpir']})"
            )
        console.print(
            f"closed-set rank-1: {_pct(report.rank1)}; default settings operate at "
            f"TPIR {_pct(report.default_tpir)}, FPIR {_pct(report.default_fpir)} "
            f"(held-out half: {_pct(report.heldout_default_tpir)}, "
            f"{_pct(report.heldout_default_fpir)})"
        )
    typer.echo(json.dumps(data))


@bench_app.command("peer")
def peer_command(
    lfw_dir: LfwDir,
    as_json: JsonFlag = False,
    runtime: RuntimeOpt = "auto",
    workers: WorkersOpt = 2,
    every: Annotated[
        int,
        typer.Option(
            "--every", min=1, help="Use every n-th probe and stranger (1 = all, the benchmark)."
        ),
    ] = 1,
    onnx_model: OnnxModelOpt = None,
) -> None:
    """CunAn vs face_recognition: same gallery and probes, from image files, same processes."""
    from cunan.bench.lfw_embeddings import use_onnx_model

    use_onnx_model(onnx_model)
    from cunan.bench.peer import run_peer

    console = Console()
    report = run_peer(
        lfw_dir,
        runtime=_runtime(runtime),
        workers=workers,
        limit=every if every > 1 else None,
        show_progress=not as_json,
    )
    data = report.as_json()
    if not as_json:
        table = Table(
            title=f"CunAn vs face_recognition ({report.n_identities} enrolled, "
            f"{report.n_probes} known probes, {report.n_strangers} strangers, "
            f"{workers} processes each)"
        )
        table.add_column("")
        table.add_column("CunAn", justify="right")
        table.add_column("face_recognition", justify="right")
        c, p = report.cunan, report.peer
        table.add_row("wall time", f"{c.wall_s:.1f} s", f"{p.wall_s:.1f} s")
        table.add_row("images/s", f"{c.images / c.wall_s:.1f}", f"{p.images / p.wall_s:.1f}")
        table.add_row("images without a face", str(c.no_face), str(p.no_face))
        table.add_row("TPIR at FPIR 1%", _pct(c.tpir_at_fpir_1e2), _pct(p.tpir_at_fpir_1e2))
        table.add_row("own default: TPIR", _pct(c.default_tpir), _pct(p.default_tpir))
        table.add_row("own default: FPIR", _pct(c.default_fpir), _pct(p.default_fpir))
        console.print(table)
        console.print(f"speed-up: {p.wall_s / c.wall_s:.2f}x; load: {report.load_before}")
    typer.echo(json.dumps(data))


@bench_app.command("east-asian")
def east_asian_command(
    lfw_dir: LfwDir,
    as_json: JsonFlag = False,
    runtime: RuntimeOpt = "auto",
    workers: WorkersOpt = 2,
    draws: Annotated[
        int, typer.Option("--draws", min=1, help="Random galleries per size (10 and 30 people).")
    ] = 20,
    derive_prior: Annotated[
        Path | None,
        typer.Option(
            "--derive-prior",
            help="Derive the East Asian population prior from half A, write it to this JSON "
            "file (the package's is src/cunan/matching/population_prior.json), and use it.",
            dir_okay=False,
        ),
    ] = None,
    degraded: Annotated[
        int,
        typer.Option(
            "--degraded",
            min=0,
            help="Also degrade one image of this many half-B people of each group (face "
            "40-60 px wide, grey, blurred) and count those strangers named (0: skip).",
        ),
    ] = 136,
    degraded_width: Annotated[
        str,
        typer.Option(
            "--degraded-width",
            help="Face widths (px) the degraded images are scaled to, drawn uniformly: MIN,MAX.",
        ),
    ] = "40,60",
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="LFW View 2 pairs.txt: also judge its pairs by the raw and the population "
            "1:1 rules, without fitting.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    two_photos: Annotated[
        bool,
        typer.Option(
            "--two-photos",
            help="Also compare one and two enrolment photos per person (people with >= 3 "
            "images; the same probes, images 3 on).",
        ),
    ] = False,
    onnx_model: OnnxModelOpt = None,
) -> None:
    """LFW's Chinese, Japanese and Korean people beside the rest: 1:1 and open set, per half."""
    from cunan.bench.lfw_embeddings import use_onnx_model

    use_onnx_model(onnx_model)
    from cunan.bench.east_asian import Population, run_east_asian
    from cunan.bench.east_asian import derive_prior as derive
    from cunan.bench.lfw_embeddings import load_or_compute
    from cunan.matching.adaptive import PopulationPrior, prior_for_model

    emb = load_or_compute(
        lfw_dir, runtime=_runtime(runtime), workers=workers, show_progress=not as_json
    )
    prior: PopulationPrior | None
    if derive_prior is not None:
        from dataclasses import replace

        from cunan.bench.east_asian import derive_two_photo_scores

        population = Population.from_embeddings(emb)
        prior = derive(population, model_id=emb.model_id)
        prior = replace(
            prior,
            stranger_score_2=derive_two_photo_scores(population, model_id=emb.model_id),
            made_by=prior.made_by + "; stranger_score_2: galleries of 2 photos per person "
            "(people with 2+ images of the same half), derive_two_photo_scores",
        )
        derive_prior.write_text(
            json.dumps({"east_asian": prior.as_json()}, indent=1) + "\n", encoding="utf-8"
        )
    else:
        # None for another model than the prior's: the adaptive rule then calibrates on
        # the gallery alone, as the product does (docs/calibration.md).
        prior = prior_for_model("east_asian", emb.model_id, emb.vectors.shape[1])
    report = run_east_asian(emb, prior=prior, draws=draws, two_photos=two_photos)
    data = report.as_json()
    if pairs is not None and prior is not None:
        from cunan.bench.east_asian import view2_fixed_rules

        data["view2_fixed_rules"] = view2_fixed_rules(emb, pairs, prior)
        if not as_json:
            Console().print(f"LFW View 2, fixed rules: {data['view2_fixed_rules']}")
    degraded_rows: list[dict[str, object]] = []
    if degraded:
        from dataclasses import asdict

        from cunan.bench.degraded import degraded_figures, embed_degraded, stranger_rows
        from cunan.bench.east_asian import adaptive_rule, fixed_rule
        from cunan.faces.quality import SIGHTING_THRESHOLDS
        from cunan.matching.openset import AdaptiveConfig, OpenSetConfig

        low, _, high = degraded_width.partition(",")
        widths = (float(low), float(high or low))
        pop = Population.from_embeddings(emb)
        faces = embed_degraded(lfw_dir, emb, stranger_rows(pop, 1, degraded), face_width=widths)
        data["degraded_setup"] = {
            "face_width_px": list(widths),
            "judging_gate": asdict(SIGHTING_THRESHOLDS),
        }
        compared = {
            "default": fixed_rule(OpenSetConfig(), emb.model_id),
            "adaptive": adaptive_rule(
                OpenSetConfig(adaptive=AdaptiveConfig()), emb.model_id, prior
            ),
        }
        for rule_name, decider in compared.items():
            for group in ("east_asian", "rest"):
                for size in (10, 30, 0):
                    figures = degraded_figures(pop, decider, faces, group, size, 1, draws=draws)
                    degraded_rows.append({"rule": rule_name, **figures.as_json()})
        data["degraded_strangers"] = degraded_rows
        from cunan.bench.degraded import degraded_residents, resident_rows

        residents = embed_degraded(
            lfw_dir, emb, resident_rows(pop, 1, "east_asian"), seed=1, face_width=widths
        )
        data["degraded_residents"] = [
            {"rule": rule_name, **degraded_residents(pop, decider, residents, "east_asian",
                                                     size, 1, draws=draws).as_json()}
            for rule_name, decider in compared.items()
            for size in (10, 30, 0)
        ]  # fmt: skip
    if not as_json:
        console = Console()
        table = Table(title="1:1 (FAR / TAR at the operating point; TAR at FAR 1% / 0.1%)")
        for column in ("people (half)", "rule", "threshold", "FAR", "TAR", "TAR@1%", "TAR@0.1%"):
            table.add_column(column)
        for key, rules in report.pairs.items():
            for rule, f in rules.items():
                table.add_row(
                    key,
                    rule,
                    f"{f.threshold:.3f}",
                    _pct(f.far),
                    _pct(f.tar),
                    _pct(f.tar_at_far_1e2),
                    _pct(f.tar_at_far_1e3),
                )
        console.print(table)
        table = Table(title="Open set (operating point; TPIR at FPIR 1% of same-group strangers)")
        columns = ("rule", "gallery", "size", "TPIR", "FPIR EA", "FPIR rest", "TPIR@1%")
        for column in (*columns, "other half: FPIR / TPIR@1% pooled"):
            table.add_column(column)
        for rule, rows in report.open_set.items():
            for o in rows:
                other = (
                    "-"
                    if o.fpir_other_half is None or o.tpir_at_fpir_1e2_both_halves is None
                    else f"{_pct(o.fpir_other_half)} / {_pct(o.tpir_at_fpir_1e2_both_halves)}"
                )
                table.add_row(
                    rule,
                    o.group,
                    str(o.size),
                    _pct(o.tpir),
                    _pct(o.fpir["east_asian"]),
                    _pct(o.fpir["rest"]),
                    _pct(o.tpir_at_fpir_1e2),
                    other,
                )
        console.print(table)
        if degraded_rows:
            table = Table(title="Degraded strangers (40-60 px, grey, blurred) named as someone")
            for column in ("rule", "gallery", "size", "named", "named after gate", "undecided"):
                table.add_column(column)
            for row in degraded_rows:
                table.add_row(
                    str(row["rule"]),
                    str(row["gallery"]),
                    str(row["size"]),
                    _pct(float(str(row["named_of_all_strangers"]))),
                    _pct(float(str(row["named_after_quality_gate"]))),
                    _pct(float(str(row["undecided_by_quality_gate"]))),
                )
            console.print(table)
    typer.echo(json.dumps(data))


# The benchmarks below parse their own options (argparse) so they also run as
# ``python -m cunan.bench.<name>``; these commands pass every argument through.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@bench_app.command("import", context_settings=_PASS_THROUGH, add_help_option=False)
def import_command(ctx: typer.Context) -> None:
    """Roster import throughput on LFW photos (--lfw-dir DIR [--limit N] [--json])."""
    from cunan.bench.import_bench import main as import_main

    raise typer.Exit(import_main(list(ctx.args)))


@bench_app.command("search", context_settings=_PASS_THROUGH, add_help_option=False)
def search_command(ctx: typer.Context) -> None:
    """Gallery search per backend and size ([--sizes 10000,100000] [--backends ...] [--json])."""
    from cunan.bench.search import main as search_main

    raise typer.Exit(search_main(list(ctx.args)))


@bench_app.command("stream", context_settings=_PASS_THROUGH, add_help_option=False)
def stream_command(ctx: typer.Context) -> None:
    """Camera pipeline real-time factor and latency ([--fps-cap F] [--repeat N] [--json])."""
    from cunan.bench.stream import main as stream_main

    raise typer.Exit(stream_main(list(ctx.args)))


@bench_app.command("api", context_settings=_PASS_THROUGH, add_help_option=False)
def api_command(ctx: typer.Context) -> None:
    """HTTP API under load: 50 logged-in clients, a camera running ([--clients N] [--json])."""
    from cunan.bench.api_load import main as api_main

    raise typer.Exit(api_main(list(ctx.args)))


@bench_app.command("gas", context_settings=_PASS_THROUGH, add_help_option=False)
def gas_command(ctx: typer.Context) -> None:
    """Gas readings/s MQTT -> stored, SQLite and PostgreSQL ([--rate R] [--seconds S] [--json])."""
    from cunan.bench.gas import main as gas_main

    raise typer.Exit(gas_main(list(ctx.args)))
