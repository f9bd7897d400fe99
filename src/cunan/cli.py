"""Command-line interface: a thin layer over the same services the API uses."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from cunan import __version__
from cunan.cliutil import EXIT_ERROR, err_console, fail, fail_with
from cunan.config import Settings, load_settings
from cunan.domain import LANDMARK_NAMES, AnalyzedFace
from cunan.errors import EXIT_CODES, ErrorKind, kind_of
from cunan.faces.engine import EngineConfig, FaceEngine
from cunan.faces.imageio import ImageLoadError, load_image
from cunan.faces.models import ModelNotAvailableError
from cunan.faces.verify import compare_vectors
from cunan.security.files import write_private

app = typer.Typer(
    help="CunAn (村安): face-registry comparison for villages and residential communities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
faces_app = typer.Typer(help="Work with faces in image files.", no_args_is_help=True)
app.add_typer(faces_app, name="faces")

console = Console()

T = TypeVar("T")


def _guard(action: Callable[[], T]) -> T:
    """Run an action, turning the errors users cause into one line and their exit code
    (a missing model is "unavailable", 6; a bad image or value 2)."""
    try:
        return action()
    except (ImageLoadError, ModelNotAvailableError, FileNotFoundError, ValueError) as exc:
        fail_with(exc)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"cunan {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log everything, with tracebacks (DEBUG).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        # -v shows DEBUG so that the traceback of an internal error is visible.
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _settings() -> Settings:
    return _guard(load_settings)


def _engine(settings: Settings) -> FaceEngine:
    config = EngineConfig.from_settings(settings.faces)
    return _guard(lambda: FaceEngine.from_config(config))


def _face_json(face: AnalyzedFace) -> dict[str, Any]:
    q = face.quality
    return {
        "box": [round(v, 1) for v in face.face.box.as_list()],
        "score": round(face.face.score, 4),
        "detector": face.face.detector,
        "landmarks": {
            name: [round(float(x), 1), round(float(y), 1)]
            for name, (x, y) in zip(LANDMARK_NAMES, face.face.landmarks, strict=True)
        },
        "landmarks_source": face.face.landmarks_source,
        "quality": {
            "face_width_px": round(q.face_width_px, 1),
            "interocular_px": round(q.interocular_px, 1),
            "sharpness": round(q.sharpness, 1),
            "frontalness": round(q.frontalness, 3),
            "yaw_ratio": round(q.yaw_ratio, 3),
            "roll_deg": round(q.roll_deg, 1),
            "brightness": round(q.brightness, 1),
            "passed": q.passed,
            "reasons": list(q.reasons),
        },
    }


@faces_app.command("detect")
def faces_detect(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image.")] = False,
    enrolment: Annotated[
        bool, typer.Option("--enrolment", help="Judge quality by the enrolment thresholds.")
    ] = False,
) -> None:
    """Find faces: boxes, landmarks and quality."""
    settings = _settings()
    engine = _engine(settings)
    thresholds = engine.enrolment_thresholds if enrolment else engine.sighting_thresholds
    failed = False
    for path in images:
        try:
            image = load_image(path, max_pixels=settings.faces.max_image_pixels)
        except ImageLoadError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            failed = True
            continue
        found = engine.analyze(image, embed=False, thresholds=thresholds)
        if as_json:
            record = {
                "file": str(path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "faces": [_face_json(f) for f in found],
            }
            print(json.dumps(record, ensure_ascii=False))
            continue
        table = Table(title=f"{path}: {len(found)} face(s)")
        for col in ("#", "box (l,t,r,b)", "score", "width", "sharp", "frontal", "bright", "ok"):
            table.add_column(col)
        for i, f in enumerate(found, 1):
            q = f.quality
            table.add_row(
                str(i),
                ",".join(f"{v:.0f}" for v in f.face.box.as_list()),
                f"{f.face.score:.2f}",
                f"{q.face_width_px:.0f}",
                f"{q.sharpness:.0f}",
                f"{q.frontalness:.2f}",
                f"{q.brightness:.0f}",
                "yes" if q.passed else "no: " + "; ".join(q.reasons),
            )
        console.print(table)
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _main_face(engine: FaceEngine, path: Path, settings: Settings) -> AnalyzedFace:
    """The largest face of an image (the subject of a photo), embedded."""
    image = load_image(path, max_pixels=settings.faces.max_image_pixels)
    faces = engine.detect(image)
    if not faces:
        raise ValueError(f"{path}: no face found")
    face = max(faces, key=lambda f: f.box.width * f.box.height)
    quality = engine.quality(image, face)
    vector = engine.embed_faces(image, [face])[0]
    return AnalyzedFace(face=face, quality=quality, embedding=vector, model_id=engine.model_id)


@faces_app.command("compare")
def faces_compare(
    image_a: Annotated[Path, typer.Argument(help="First image.")],
    image_b: Annotated[Path, typer.Argument(help="Second image.")],
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Same-person distance threshold (default: faces.match_threshold); with "
            "faces.population set, the population distance must pass its own threshold too."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Are the largest faces of two images the same person? Exit 0 yes, 1 no, 2+ an error."""
    settings = _settings()
    engine = _engine(settings)
    a = _guard(lambda: _main_face(engine, image_a, settings))
    b = _guard(lambda: _main_face(engine, image_b, settings))
    assert a.embedding is not None and b.embedding is not None  # set by _main_face
    from cunan.matching.adaptive import population_prior_for

    prior = population_prior_for(
        settings.faces.population, engine.model_id, int(a.embedding.shape[-1])
    )
    limit = threshold if threshold is not None else settings.faces.match_threshold
    result = compare_vectors(a.embedding, b.embedding, prior=prior, threshold=limit)
    if as_json:
        print(
            json.dumps(
                {
                    "a": str(image_a),
                    "b": str(image_b),
                    "distance": round(result.distance, 4),
                    "threshold": limit,
                    "same_person": result.same_person,
                    "model_id": engine.model_id,
                    "population": result.population,
                    "population_distance": None
                    if result.population_distance is None
                    else round(result.population_distance, 4),
                    "population_threshold": None
                    if result.population_threshold is None
                    else round(result.population_threshold, 4),
                    "false_match_rate": result.false_match_rate,
                    "false_non_match_rate": result.false_non_match_rate,
                    "certainty": result.certainty(),
                },
                ensure_ascii=False,
            )
        )
    else:
        verdict = "same person" if result.same_person else "different people"
        space = ""
        if result.population_distance is not None and result.population_threshold is not None:
            space = (
                f"; {result.population} population distance {result.population_distance:.4f}"
                f" (threshold {result.population_threshold:.2f})"
            )
        console.print(
            f"distance {result.distance:.4f} (threshold {limit:.2f}, model "
            f"{engine.model_id}){space}: {verdict}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        if result.population:
            console.print(result.certainty(), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if result.same_person else 1)


@faces_app.command("embed")
def faces_embed(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    out: Annotated[Path, typer.Option("--out", help="Output .npy file (n x d float32).")],
    all_faces: Annotated[
        bool, typer.Option("--all-faces", help="Embed every face, not just the largest.")
    ] = False,
) -> None:
    """Embed faces into a .npy matrix; a sidecar OUT.json says which row is which face.

    Both files are written mode 0600 (embeddings are biometric data); the output directory
    must exist.
    """
    if out.suffix != ".npy":
        out = out.with_name(out.name + ".npy")  # np.save would add it silently otherwise
    if not out.parent.is_dir():
        # Checked before any work, and never created: a mistyped path must not scatter
        # biometric data into a new directory.
        fail(f"{out.parent}: output directory does not exist; create it first")
    settings = _settings()
    engine = _engine(settings)
    rows: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    index: list[dict[str, Any]] = []
    failed = False
    for path in images:
        # One bad file is reported and skipped; the others' embeddings are still written.
        try:
            image = load_image(path, max_pixels=settings.faces.max_image_pixels)
        except ImageLoadError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            failed = True
            continue
        faces = engine.detect(image)
        if not faces:
            err_console.print(f"error: {path}: no face found", markup=False, highlight=False)
            failed = True
            continue
        chosen = faces if all_faces else [max(faces, key=lambda f: f.box.width * f.box.height)]
        vectors = engine.embed_faces(image, chosen)
        for face, vector in zip(chosen, vectors, strict=True):
            rows.append(vector)
            index.append({"file": str(path), "box": [round(v, 1) for v in face.box.as_list()]})
    if not rows:
        fail("no face embedded; nothing written")
    matrix = np.vstack(rows).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    sidecar = out.with_name(out.name + ".json")
    try:
        write_private(out, buffer.getvalue())
        write_private(
            sidecar,
            json.dumps(
                {"model_id": engine.model_id, "dim": matrix.shape[1], "rows": index}, indent=1
            ).encode(),
        )
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror or exc})")
    console.print(
        f"wrote {matrix.shape[0]} embedding(s) of {matrix.shape[1]} dims "
        f"(model {engine.model_id}) to {out}",
        markup=False,
        highlight=False,
    )
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _mount_subcommands() -> None:
    from cunan.audit.cli import audit_app
    from cunan.bench.cli import bench_app
    from cunan.calibrate import calibrate_command
    from cunan.cases.cli import cases_app
    from cunan.duties.cli import departures_app, maintenance_app, stats_command
    from cunan.notify.cli import notify_app
    from cunan.pipeline.cli import cameras_app, watch_command, worker_command
    from cunan.registry.cli import (
        identify_command,
        init_command,
        keys_app,
        people_app,
        registry_app,
    )
    from cunan.registry.places_cli import places_app, users_app
    from cunan.registry.reembed import reembed_command
    from cunan.serve import serve_command

    app.command("init")(init_command)
    app.add_typer(people_app, name="people")
    app.command("identify")(identify_command)
    app.add_typer(registry_app, name="registry")
    app.add_typer(places_app, name="places")
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.add_typer(cameras_app, name="cameras")
    app.command("watch")(watch_command)
    app.command("worker")(worker_command)
    app.command("serve")(serve_command)
    app.add_typer(cases_app, name="cases")
    app.add_typer(departures_app, name="departures")
    app.add_typer(maintenance_app, name="maintenance")
    app.command("stats")(stats_command)
    app.add_typer(audit_app, name="audit")
    app.add_typer(notify_app, name="notify")
    app.add_typer(bench_app, name="bench")
    app.command("calibrate")(calibrate_command)
    faces_app.command("reembed")(reembed_command)
    # 燃气报警 (issue 14): the registry's commands; the other gas commands join this group.
    from cunan.gas.registry_cli import mount as mount_gas_registry

    gas_app = typer.Typer(
        help="燃气报警 Gas-leak alarms of catering businesses.", no_args_is_help=True
    )
    mount_gas_registry(gas_app)
    from cunan.gas.ingest_cli import register as register_gas_ingest

    register_gas_ingest(gas_app)
    app.add_typer(gas_app, name="gas")


_mount_subcommands()


def main() -> None:
    """Console-script entry point: every error ends as one line on stderr and the exit code
    of its kind (docs/cli.md); a crash (a bug) exits 70, never 1, which some commands answer
    with."""
    from cunan.errors import EXIT_INTERNAL, CunanError

    try:
        app()
    except (
        CunanError,
        ImageLoadError,
        ModelNotAvailableError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_CODES[kind_of(exc) or ErrorKind.INVALID])
    except Exception as exc:
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        err_console.print(
            f"error: internal error ({type(exc).__name__}: {exc}); run with -v for details",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERNAL)
