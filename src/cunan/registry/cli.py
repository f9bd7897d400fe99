"""Registry commands: ``init``, ``keys``, ``people`` and ``registry`` (mounted by cunan.cli)."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from cunan.audit.log import AuditAction
from cunan.cliutil import DataDirOption, err_console, fail, opened_registry, user_errors
from cunan.config import Settings, load_settings
from cunan.faces.engine import EngineConfig, EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import ImageLoadError, load_image
from cunan.registry.consistency import (
    SAME_FACE_DISTANCE,
    KnownFaces,
    different_people_problem,
    same_face_problem,
)
from cunan.registry.datadir import Registry, initialise, resolve_data_dir
from cunan.registry.errors import RegistryError
from cunan.registry.export import write_export
from cunan.registry.identity import IdDocument
from cunan.registry.keys import reset_keys, rotate_keys, unreadable_values
from cunan.registry.records import (
    ConsentInput,
    ConsentMethod,
    NewPerson,
    PersonCategory,
    PhotoInput,
    TemplateInput,
    TemplateQuality,
    TemplateSource,
)
from cunan.registry.service import RegistryService
from cunan.security.cipher import DecryptionError
from cunan.security.keys import KeyFileError
from cunan.security.spreadsheet import OutputPathError, check_output_file
from cunan.storage.database import damaged_message
from cunan.storage.errors import StorageError

ADMIN_PASSWORD_ENV = "CUNAN_ADMIN_PASSWORD"

console = Console()

keys_app = typer.Typer(help="Manage the encryption key of face data.", no_args_is_help=True)
people_app = typer.Typer(help="Register and manage people.", no_args_is_help=True)
registry_app = typer.Typer(help="Registry-wide operations.", no_args_is_help=True)

#: Errors in registry commands that a user can act on: one line and exit code 2.
_USER_ERRORS: tuple[type[Exception], ...] = (
    RegistryError,
    StorageError,
    KeyFileError,
    DecryptionError,
    EnrolmentPhotoError,
    ImageLoadError,
    FileNotFoundError,
)


def _user_errors() -> AbstractContextManager[None]:
    return user_errors(*_USER_ERRORS)


@contextmanager
def _registry(
    data_dir: Path | None, *, key_required: bool = True
) -> Iterator[tuple[Registry, Settings]]:
    with opened_registry(data_dir, *_USER_ERRORS, key_required=key_required) as opened:
        yield opened


def build_face_engine(settings: Settings) -> FaceEngine:
    """The face engine for enrolment, built from the settings (replaced in tests)."""
    return FaceEngine.from_config(EngineConfig.from_settings(settings.faces))


# -- init ----------------------------------------------------------------------------------


def init_command(
    data_dir: DataDirOption = None,
    village: Annotated[str, typer.Option(help="Name of the village (村/社区).")] = "village",
    admin: Annotated[str, typer.Option(help="Username of the first administrator.")] = "admin",
) -> None:
    """Create the data dir, database, encryption key and the first admin account.

    The admin password is asked twice, or taken from $CUNAN_ADMIN_PASSWORD for automation.
    """
    with _user_errors():
        settings = load_settings()
        target = resolve_data_dir(data_dir, settings)
        password = os.environ.get(ADMIN_PASSWORD_ENV)
        if not password:
            password = typer.prompt(
                f"Password for {admin}", hide_input=True, confirmation_prompt=True
            )
        registry = initialise(
            target, settings, admin_username=admin, admin_password=password, village_name=village
        )
        registry.close()
    console.print(f"initialised {target}", markup=False, highlight=False)
    console.print(
        f"key file: {registry.key_file} - back it up now, apart from the data (see docs/keys.md)",
        markup=False,
        highlight=False,
    )


# -- keys ----------------------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDirOption = None) -> None:
    """Re-encrypt all encrypted data with a new key, then retire the old key.

    Stop 'cunan worker' and 'cunan serve' first: they keep the old key in memory.
    """
    with _registry(data_dir) as (registry, _):
        report = rotate_keys(
            registry.database,
            registry.key_file,
            audit=registry.audit,
            actor=registry.service.actor,
        )
    console.print(
        f"re-encrypted {report.templates} template(s), {report.photos} photo(s), "
        f"{report.sighting_crops} sighting crop(s), {report.sighting_embeddings} sighting "
        f"embedding(s) and {report.quiet_faces} quiet face(s) with key {report.new_key_id}; "
        f"retired {', '.join(report.retired_key_ids) or 'nothing'}. "
        "Back up the key file again.",
        markup=False,
        highlight=False,
    )


@keys_app.command("check")
def keys_check(
    delete: Annotated[
        bool,
        typer.Option(
            "--delete-unreadable",
            help="Delete the unreadable templates (audited); those people must re-enrol.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List encrypted values that cannot be decrypted (damaged, or written with another key):
    templates, enrolment photos, sighting crops and embeddings, quiet faces, camera URLs.

    Exit code 0: everything reads; 1: something does not (listed, one line each).
    """
    with _registry(data_dir) as (registry, _):
        bad = registry.service.unreadable_templates()
        others = unreadable_values(registry.database, registry.service.cipher)
        for t in bad:
            console.print(
                f"template {t.template_id} of person {t.person_id} (key {t.key_id}): {t.reason}",
                markup=False,
                highlight=False,
            )
        for value in others:
            console.print(value.reason, markup=False, highlight=False)
        if bad and delete:
            registry.service.delete_templates([t.template_id for t in bad])
            console.print(
                f"deleted {len(bad)} unreadable template(s); enrol those people again",
                markup=False,
                highlight=False,
            )
            bad = []
    if bad:
        err_console.print(
            f"{len(bad)} unreadable template(s): identification skips them; delete them with "
            "'cunan keys check --delete-unreadable' and enrol those people again, or restore "
            "the key file or database from a backup",
            markup=False,
            highlight=False,
        )
    if others:
        err_console.print(
            f"{len(others)} other unreadable value(s): restore the key file or the database "
            "from a backup",
            markup=False,
            highlight=False,
        )
    if bad or others:
        raise typer.Exit(1)
    console.print("every encrypted value decrypts", markup=False, highlight=False)


@keys_app.command("reset")
def keys_reset(
    discard_face_data: Annotated[
        bool,
        typer.Option(
            "--discard-face-data",
            help="Required: every template, photo, crop and quiet face is deleted.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """After the key file was lost: delete all face data (unreadable now) and create a new key.

    People, consents, tenancies, cases and the audit log stay; enrol the faces again.
    """
    if not discard_face_data:
        fail(
            "keys reset deletes all face data (templates, enrolment photos, sighting crops, "
            "quiet faces); confirm with --discard-face-data (see docs/keys.md)"
        )
    with _registry(data_dir, key_required=False) as (registry, _):
        report = reset_keys(
            registry.database,
            registry.key_file,
            audit=registry.audit,
            actor=registry.service.actor,
        )
    d = report.discarded
    console.print(
        f"deleted {d.templates} template(s), {d.photos} photo(s), the crops of {d.sightings} "
        f"sighting(s) and {d.quiet_faces} quiet face(s); new key {report.new_key_id} in "
        f"{registry.key_file}. Back it up now, then enrol the faces again.",
        markup=False,
        highlight=False,
    )


# -- people --------------------------------------------------------------------------------


@people_app.command("add")
def people_add(
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    photo: Annotated[
        list[Path] | None, typer.Option("--photo", help="Enrolment photo (repeatable).")
    ] = None,
    category: Annotated[PersonCategory, typer.Option(help="Category.")] = PersonCategory.TENANT,
    consent_by: Annotated[
        str | None, typer.Option("--consent-by", help="Who collected the consent.")
    ] = None,
    consent_method: Annotated[
        ConsentMethod, typer.Option("--consent-method", help="How consent was given.")
    ] = ConsentMethod.PAPER,
    id_number: Annotated[str | None, typer.Option("--id-number", help="ID card number.")] = None,
    id_type: Annotated[
        IdDocument, typer.Option("--id-type", help="What --id-number is (default resident_id).")
    ] = IdDocument.RESIDENT_ID,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    minor: Annotated[bool, typer.Option("--minor", help="Under 14: needs a guardian.")] = False,
    guardian: Annotated[
        str | None, typer.Option("--guardian", help="Guardian who consented (minors).")
    ] = None,
    non_face: Annotated[
        str | None,
        typer.Option("--non-face", help="Register without face data; how to check them instead."),
    ] = None,
    village: Annotated[
        str | None, typer.Option(help="Village name (needed when several are registered).")
    ] = None,
    allow_same_face: Annotated[
        bool,
        typer.Option(
            "--allow-same-face",
            help="Register although the face matches another person's (twins).",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Register a person with consent and enrolment photos; prints the new person's id."""
    photos = photo or []
    if not photos and non_face is None:
        fail("give at least one --photo, or --non-face NOTE to register without face data")
    if photos and not consent_by:
        fail(
            "refusing to store face data without consent: give --consent-by WHO "
            "(and --consent-method paper|digital)"
        )
    with _registry(data_dir) as (registry, settings):
        # Writing beside a damaged templates page would only bury the damage deeper: say so
        # now (one table's quick check, a fraction of a second even for a large village).
        if damage := registry.database.damage("face_templates"):
            fail(f"{damaged_message(registry.database.url)} ({damage[0]})")
        service = registry.service
        village_id = (
            service.village_id_by_name(village) if village else service.default_village_id()
        )
        templates = _enrol_photos(photos, settings) if photos else []
        _check_faces(photos, templates, service, settings, allow_same_face=allow_same_face)
        consent = (
            ConsentInput(
                collected_by=consent_by,
                collected_at=datetime.now(UTC),
                method=consent_method,
                guardian_name=guardian,
            )
            if consent_by
            else None
        )
        person_id = service.add_person(
            NewPerson(
                name=name,
                village_id=village_id,
                category=category,
                id_number=id_number,
                id_document=id_type,
                phone=phone,
                is_minor=minor,
                non_face_note=non_face,
            ),
            consent=consent,
            templates=templates,
        )
    print(person_id)


def _enrol_photos(photos: list[Path], settings: Settings) -> list[TemplateInput]:
    """One template per photo; every bad photo is reported and nothing is stored."""
    from cunan.registry.importer import enrolment_face_of_file

    engine = build_face_engine(settings)
    templates: list[TemplateInput] = []
    problems: list[str] = []
    for path in photos:
        try:
            # The roster import's decoding (reduced, memory bounded): the same photo gives
            # the same template by either route.
            face = enrolment_face_of_file(
                path, engine, engine, source=str(path), max_pixels=settings.faces.max_image_pixels
            )
            data = path.read_bytes()
        except (ImageLoadError, EnrolmentPhotoError, OSError) as exc:
            problems.append(str(exc))
            continue
        assert face.embedding is not None and face.model_id is not None  # enrolment embeds
        q = face.quality
        templates.append(
            TemplateInput(
                vector=face.embedding,
                model_id=face.model_id,
                source=TemplateSource.ENROLMENT_PHOTO,
                quality=TemplateQuality(
                    face_width_px=q.face_width_px,
                    sharpness=q.sharpness,
                    frontalness=q.frontalness,
                    brightness=q.brightness,
                    detector_score=face.face.score,
                ),
                photo=PhotoInput(
                    data=data,
                    media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                ),
            )
        )
    if problems:
        for problem in problems:
            err_console.print(f"error: {problem}", markup=False, highlight=False, soft_wrap=True)
        fail(f"{len(problems)} photo(s) unusable; nothing was stored")
    return templates


def _check_faces(
    photos: list[Path],
    templates: list[TemplateInput],
    service: RegistryService,
    settings: Settings,
    *,
    allow_same_face: bool,
) -> None:
    """The enrolment face consistency rule (docs/registry.md), as the roster import applies it."""
    if not templates:
        return
    vectors = [t.vector for t in templates]
    why = different_people_problem(
        [p.name for p in photos], vectors, settings.faces.match_threshold
    )
    if why is None and not allow_same_face:
        known = KnownFaces.load(service, templates[0].model_id, int(vectors[0].shape[0]))
        why = same_face_problem(known.nearest(vectors), SAME_FACE_DISTANCE)
    if why is not None:
        fail(f"{why}; nothing was stored")


@people_app.command("list")
def people_list(
    data_dir: DataDirOption = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 1000,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
) -> None:
    """List people (ID numbers masked)."""
    with _registry(data_dir) as (registry, _):
        people = registry.service.list_people(limit=limit, offset=offset)
    table = Table(title=f"{len(people)} people")
    for col in ("id", "name", "ID number", "category", "status", "templates", "consent"):
        table.add_column(col)
    for p in people:
        table.add_row(
            str(p.id),
            p.name,
            p.id_number_masked,
            p.category.value,
            p.status.value,
            str(p.template_count),
            "yes" if p.has_valid_consent else ("non-face" if p.non_face_alternative else "no"),
        )
    console.print(table)


@people_app.command("show")
def people_show(
    person_id: Annotated[int, typer.Argument(help="Person id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Show one person with consents and tenancies (ID number masked)."""
    with _registry(data_dir) as (registry, _):
        service = registry.service
        p = service.get_person(person_id)
        consents = service.consents_of(person_id)
        tenancies = service.tenancies_of(person_id)
    lines = [
        f"id: {p.id}",
        f"name: {p.name}",
        f"ID number: {p.id_number_masked}",
        f"phone: {p.phone or ''}",
        f"category: {p.category.value}",
        f"status: {p.status.value}",
        f"minor: {'yes' if p.is_minor else 'no'}",
        f"face templates: {p.template_count}",
    ]
    if p.non_face_alternative:
        lines.append(f"non-face alternative: {p.non_face_note or 'yes'}")
    for c in consents:
        state = f"withdrawn {c.withdrawn_at:%Y-%m-%d}" if c.withdrawn_at else "valid"
        guardian = f", guardian {c.guardian_name}" if c.guardian_name else ""
        lines.append(
            f"consent {c.id}: {c.method.value} by {c.collected_by} on "
            f"{c.collected_at:%Y-%m-%d}{guardian} ({state})"
        )
    for t in tenancies:
        end = t.move_out.isoformat() if t.move_out else "now"
        lines.append(f"tenancy {t.id}: room {t.room_id} from {t.move_in.isoformat()} to {end}")
    for line in lines:
        console.print(line, markup=False, highlight=False)


@people_app.command("remove")
def people_remove(
    person_id: Annotated[int, typer.Argument(help="Person id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a person with their face data, consents and tenancies."""
    if not yes:
        typer.confirm(f"Delete person {person_id} and all their data?", abort=True)
    # Deleting needs no key: a person can be removed after the key file was lost.
    with _registry(data_dir, key_required=False) as (registry, _):
        removed = registry.service.remove_person(person_id)
    console.print(
        f"removed person {person_id} ({len(removed)} template(s))", markup=False, highlight=False
    )


@people_app.command("withdraw-consent")
def people_withdraw_consent(
    person_id: Annotated[int, typer.Argument(help="Person id.")],
    recorded_by: Annotated[str, typer.Option("--recorded-by", help="Who recorded it.")],
    alternative: Annotated[
        str, typer.Option("--alternative", help="How the person is checked without a face.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Withdraw consent: deletes the person's templates and photos, records the alternative."""
    with _registry(data_dir, key_required=False) as (registry, _):
        removed = registry.service.withdraw_consent(
            person_id, recorded_by=recorded_by, alternative_note=alternative
        )
    console.print(
        f"consent withdrawn; deleted {len(removed)} template(s) of person {person_id}",
        markup=False,
        highlight=False,
    )


# -- registry ------------------------------------------------------------------------------


@registry_app.command("export")
def registry_export(
    file: Annotated[
        Path, typer.Argument(help="File to write: FILE.csv, or FILE.xlsx for an Excel workbook.")
    ],
    encoding: Annotated[
        str, typer.Option(help="CSV only: utf-8-sig (Excel-friendly UTF-8) or gb18030.")
    ] = "utf-8-sig",
    data_dir: DataDirOption = None,
) -> None:
    """Export people to CSV or XLSX: no biometric data, ID numbers masked."""
    if encoding.lower() not in {"utf-8-sig", "utf-8", "gb18030", "gbk"}:
        fail(f"unsupported encoding {encoding!r}; use utf-8-sig, utf-8, gb18030 or gbk")
    try:
        check_output_file(file)
    except OutputPathError as exc:
        fail(str(exc))
    with _registry(data_dir) as (registry, _):
        count = write_export(registry.service, file, encoding=encoding)
    console.print(f"wrote {count} people to {file}", markup=False, highlight=False)


@registry_app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(help="Roster: .xlsx or .csv (UTF-8 or GBK).")],
    photos: Annotated[Path, typer.Option("--photos", help="Folder with the photo files.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything (photos too); write nothing.")
    ] = False,
    create_places: Annotated[
        bool,
        typer.Option("--create-places", help="Create houses that are not registered yet."),
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the problem list to this CSV file.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Photo-checking processes (default: one per core).")
    ] = None,
    village: Annotated[
        str | None, typer.Option(help="Village name (needed when several are registered).")
    ] = None,
    allow_same_face: Annotated[
        bool,
        typer.Option(
            "--allow-same-face",
            help="Import rows whose face matches another person's (twins).",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Import people from a roster and a photo folder; exit 0 all good, 1 rows failed, 2 bad file.

    Every problem is listed as row, column, reason; a failed row stores nothing, and rows
    already registered (same ID number, else same name, house and room) are left unchanged.
    """
    from cunan.registry.importer import (
        ImportOptions,
        RowStatus,
        import_roster,
        write_problem_report,
    )
    from cunan.registry.roster import RosterFileError

    if not photos.is_dir():
        fail(f"{photos}: photo folder not found")
    if report is not None:
        # Checked before the import: a bad --report path must not cost a whole import.
        try:
            check_output_file(report, suffixes=(".csv",))
        except OutputPathError as exc:
            fail(str(exc))
    with _registry(data_dir) as (registry, settings):
        faces = settings.faces
        options = ImportOptions(
            photos_dir=photos,
            dry_run=dry_run,
            create_places=create_places,
            village=village,
            workers=workers if workers is not None else (os.cpu_count() or 1),
            reported_by=f"roster import {file.name}",
            engine=EngineConfig.from_settings(faces),
            max_image_pixels=faces.max_image_pixels,
            guardian_under_age=settings.registry.guardian_consent_under_age,
            person_max_distance=settings.faces.match_threshold,
            allow_same_face=allow_same_face,
        )
        with _import_progress() as (advance, set_total):
            try:
                result = import_roster(
                    file, registry.service, options, progress=advance, on_total=set_total
                )
            except RosterFileError as exc:
                fail(str(exc))
    for p in result.problems:
        console.print(f"row {p.row}, {p.column}: {p.reason}", markup=False, highlight=False)
    if report is not None:
        write_problem_report(result, report)
    if result.roster.ignored_headers:
        console.print(
            "ignored columns: " + ", ".join(result.roster.ignored_headers),
            markup=False,
            highlight=False,
        )
    imported = result.count(RowStatus.VALID if dry_run else RowStatus.IMPORTED)
    console.print(
        f"{'dry run: ' if dry_run else ''}{imported} {'valid' if dry_run else 'imported'}, "
        f"{result.count(RowStatus.UNCHANGED)} unchanged, {result.count(RowStatus.FAILED)} failed"
        f" ({result.photos_checked} photo(s) checked)",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(result.exit_code)


@contextmanager
def _import_progress() -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(advance, set_total) for an import: a live bar on a terminal; elsewhere (a log, a
    service's journal) a line every 10 % of the rows, so long imports show progress too."""
    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("rows", total=None)
            yield (
                lambda n: bar.advance(task, n),
                lambda n: bar.update(task, total=n),
            )
        return
    state = {"done": 0, "total": 0, "shown": 0}

    def advance(n: int) -> None:
        state["done"] += n
        total = state["total"]
        step = max(1, total // 10)
        if total and (state["done"] - state["shown"] >= step or state["done"] == total):
            state["shown"] = state["done"]
            err_console.print(
                f"rows {state['done']}/{total} ({100 * state['done'] // total} %)",
                markup=False,
                highlight=False,
            )

    def set_total(n: int) -> None:
        state["total"] = n

    yield advance, set_total


@registry_app.command("template")
def registry_template(
    file: Annotated[Path, typer.Argument(help="Where to write the empty roster (.csv or .xlsx).")],
) -> None:
    """Write an empty roster: Chinese headers, English keys in row 2, one example row."""
    from cunan.registry.roster import RosterFileError, write_template

    if file.exists():
        fail(f"{file} exists; refusing to overwrite it")
    try:
        write_template(file)
    except (RosterFileError, OSError) as exc:
        fail(str(exc))
    console.print(f"wrote {file}", markup=False, highlight=False)


# -- identify ------------------------------------------------------------------------------


def identify_command(
    image: Annotated[Path, typer.Argument(help="A photo or a camera snapshot.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per face.")] = False,
    top: Annotated[int, typer.Option(help="Nearest people to list per face.")] = 3,
    data_dir: DataDirOption = None,
) -> None:
    """Each face in the image: registered person or unknown, with distances and reasons."""
    import json

    from cunan.matching.live import LiveGallery

    with _registry(data_dir) as (registry, settings):
        engine = build_face_engine(settings)
        picture = load_image(image, max_pixels=settings.faces.max_image_pixels)
        faces = engine.analyze(picture, embed=True)
        gallery = LiveGallery.load(
            registry.service,
            model_id=engine.model_id,
            dim=engine.embedder.dim,
            config=settings.matching.open_set_config(),
            index_kind=settings.matching.index,
            ann_threshold=settings.matching.ann_threshold,
        )
        if not faces:
            fail(f"{image}: no face found")
        vectors = np.vstack([f.embedding for f in faces if f.embedding is not None])
        results = gallery.identify(vectors, qualities=[f.quality for f in faces], top=top)
        if registry.service.unreadable_skipped:
            err_console.print(
                f"warning: {len(registry.service.unreadable_skipped)} template(s) cannot be "
                "read and were left out of the search; see 'cunan keys check'",
                markup=False,
                highlight=False,
            )
        names = {
            c.person_id: registry.service.get_person(c.person_id).name
            for r in results
            for c in r.candidates
        }
        # A 1:N search is audited like any other look-up of people (ids and counts only).
        registry.service.record_audit(
            AuditAction.SEARCH,
            details={
                "faces": len(results),
                "known": sum(1 for r in results if r.person_id is not None),
                "matched_person_ids": sorted(
                    {r.person_id for r in results if r.person_id is not None}
                ),
                "candidate_person_ids": sorted(names),
            },
        )
    for number, (face, result) in enumerate(zip(faces, results, strict=True), 1):
        decision = result.decision
        who = result.person_id
        record = {
            "face": number,
            "box": [round(v, 1) for v in face.face.box.as_list()],
            "decision": decision.decision,
            "person_id": who,
            "person_name": names.get(who) if who is not None else None,
            "distance": round(decision.distance, 4) if np.isfinite(decision.distance) else None,
            "score": round(decision.score, 4) if np.isfinite(decision.score) else None,
            "candidates": [
                {
                    "person_id": c.person_id,
                    "name": names[c.person_id],
                    "distance": round(c.distance, 4),
                }
                for c in result.candidates
            ],
            "reasons": list(decision.reasons),
        }
        if as_json:
            print(json.dumps(record, ensure_ascii=False))
            continue
        verdict = f"person {who} ({names.get(who)})" if who is not None else "unknown"
        console.print(
            f"face {number} at {','.join(f'{v:.0f}' for v in face.face.box.as_list())}: {verdict}",
            markup=False,
            highlight=False,
        )
        for c in result.candidates:
            console.print(
                f"  candidate person {c.person_id} ({names[c.person_id]}): "
                f"distance {c.distance:.3f}",
                markup=False,
                highlight=False,
            )
        for reason in decision.reasons:
            console.print(f"  {reason}", markup=False, highlight=False)
