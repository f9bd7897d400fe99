"""Registry commands: ``init``, ``keys``, ``people`` and ``registry`` (mounted by cunan.cli)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.app_services import NewPersonRequest, page
from cunan.cliutil import DataDirOption, err_console, fail, opened_app, user_errors
from cunan.config import load_settings
from cunan.errors import CunanError
from cunan.faces.engine import EnrolmentPhotoError
from cunan.faces.imageio import ImageLoadError
from cunan.registry.datadir import initialise, resolve_data_dir
from cunan.registry.errors import RegistryError
from cunan.registry.identity import IdDocument
from cunan.registry.records import ConsentMethod, PersonCategory
from cunan.security.cipher import DecryptionError
from cunan.security.keys import KeyFileError
from cunan.security.spreadsheet import OutputPathError, check_output_file
from cunan.storage.database import damaged_message
from cunan.storage.enums import PersonStatus
from cunan.storage.errors import StorageError
from cunan.storage.query_repository import PeopleFilter

if TYPE_CHECKING:
    from cunan.app import CunanApp
    from cunan.app_services import AppServices

ADMIN_PASSWORD_ENV = "CUNAN_ADMIN_PASSWORD"

console = Console()

keys_app = typer.Typer(help="Manage the encryption key of face data.", no_args_is_help=True)
people_app = typer.Typer(help="Register and manage people.", no_args_is_help=True)
registry_app = typer.Typer(help="Registry-wide operations.", no_args_is_help=True)

#: Errors in registry commands that a user can act on: one line and the exit code of their
#: kind (docs/cli.md).
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
    return user_errors(CunanError, *_USER_ERRORS)


@contextmanager
def _app(
    data_dir: Path | None, *, key_required: bool = True
) -> Iterator[tuple[CunanApp, AppServices]]:
    """The installation and its services as the command line's account (cunan.cliutil)."""
    with opened_app(data_dir, *_USER_ERRORS, key_required=key_required) as opened:
        yield opened


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
    with _app(data_dir) as (_, services):
        report = services.rotate_keys()
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
    with _app(data_dir) as (_, services):
        bad, others = services.unreadable_values()
        for t in bad:
            console.print(
                f"template {t.template_id} of person {t.person_id} (key {t.key_id}): {t.reason}",
                markup=False,
                highlight=False,
            )
        for value in others:
            console.print(value.reason, markup=False, highlight=False)
        if bad and delete:
            services.delete_templates([t.template_id for t in bad])
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
    with _app(data_dir, key_required=False) as (app, services):
        report = services.reset_keys()
        key_file = app.registry.key_file
    d = report.discarded
    console.print(
        f"deleted {d.templates} template(s), {d.photos} photo(s), the crops of {d.sightings} "
        f"sighting(s) and {d.quiet_faces} quiet face(s); new key {report.new_key_id} in "
        f"{key_file}. Back it up now, then enrol the faces again.",
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
    with _app(data_dir) as (app, services):
        # Writing beside a damaged templates page would only bury the damage deeper: say so
        # now (one table's quick check, a fraction of a second even for a large village).
        if damage := app.registry.database.damage("face_templates"):
            fail(f"{damaged_message(app.registry.database.url)} ({damage[0]})")
        # The same enrolment the web and API use: faces.* decides the model, the same-face
        # rule is checked on the live gallery.
        person_id = services.enrol_person(
            NewPersonRequest(
                name=name,
                category=category,
                consent_by=consent_by,
                consent_method=consent_method,
                id_number=id_number,
                id_document=id_type,
                phone=phone,
                is_minor=minor,
                guardian=guardian,
                non_face_note=non_face,
                allow_same_face=allow_same_face,
                village=village,
            ),
            [_read_photo(path) for path in photos],
            photo_names=[str(path) for path in photos],
        )
    print(person_id)


def _read_photo(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read the photo ({exc.strerror or exc})")


@people_app.command("list")
def people_list(
    data_dir: DataDirOption = None,
    name: Annotated[str | None, typer.Option(help="Part of the name.")] = None,
    id_tail: Annotated[
        str | None, typer.Option("--id-tail", help="Last 1-6 characters of the ID number.")
    ] = None,
    house: Annotated[int | None, typer.Option(help="Living in this house (id) today.")] = None,
    room: Annotated[int | None, typer.Option(help="Living in this room (id) today.")] = None,
    category: Annotated[PersonCategory | None, typer.Option(help="Category.")] = None,
    status: Annotated[PersonStatus | None, typer.Option(help="Status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (max 200).")] = 200,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
) -> None:
    """List people with their room, address and landlord today (ID numbers masked)."""
    with _app(data_dir) as (_, services):
        listing = services.list_people(
            PeopleFilter(
                name=name,
                id_tail=id_tail,
                house_id=house,
                room_id=room,
                category=category,
                status=status,
            ),
            page(offset, limit),
        )
    shown = len(listing.items)
    title = f"{listing.total} people" + (f" ({shown} shown)" if shown < listing.total else "")
    table = Table(title=title)
    table.add_column("id")
    table.add_column("name")
    # Whole, even on a narrow terminal: people are told apart by it.
    table.add_column("ID number", no_wrap=True)
    for col in ("category", "status", "lives at", "landlord"):
        table.add_column(col)
    for p in listing.items:
        table.add_row(
            str(p.id),
            p.name,
            p.id_number_masked,
            p.category,
            p.status,
            f"{p.address} {p.room}" if p.address else "",
            p.landlord or "",
        )
    console.print(table)


@people_app.command("show")
def people_show(
    person_id: Annotated[int, typer.Argument(help="Person id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Show one person with consents and tenancies (ID number masked)."""
    with _app(data_dir) as (_, services):
        p = services.get_person(person_id)
        consents = services.consents_of(person_id)
    lines = [
        f"id: {p.id}",
        f"name: {p.name}",
        f"ID number: {p.id_number_masked}",
        f"phone: {p.phone or ''}",
        f"category: {p.category}",
        f"status: {p.status}",
        f"minor: {'yes' if p.is_minor else 'no'}",
        f"face templates: {p.template_count}",
    ]
    if p.non_face_note:
        lines.append(f"non-face alternative: {p.non_face_note}")
    for c in consents:
        state = f"withdrawn {c.withdrawn_at:%Y-%m-%d}" if c.withdrawn_at else "valid"
        guardian = f", guardian {c.guardian_name}" if c.guardian_name else ""
        lines.append(
            f"consent {c.id}: {c.method.value} by {c.collected_by} on "
            f"{c.collected_at:%Y-%m-%d}{guardian} ({state})"
        )
    for t in p.tenancies:
        end = t.move_out.isoformat() if t.move_out else "now"
        lines.append(
            f"tenancy {t.id}: {t.address} room {t.room} (room id {t.room_id}) "
            f"from {t.move_in.isoformat()} to {end}"
        )
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
    with _app(data_dir, key_required=False) as (_, services):
        removed = services.remove_person(person_id)
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
    with _app(data_dir, key_required=False) as (_, services):
        removed = services.withdraw_consent(person_id, alternative, recorded_by=recorded_by)
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
    with _app(data_dir) as (_, services):
        count = services.export_people(file, encoding=encoding)
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
    from cunan.registry.importer import RowStatus, write_problem_report
    from cunan.registry.roster import RosterFileError

    if not photos.is_dir():
        fail(f"{photos}: photo folder not found")
    if report is not None:
        # Checked before the import: a bad --report path must not cost a whole import.
        try:
            check_output_file(report, suffixes=(".csv",))
        except OutputPathError as exc:
            fail(str(exc))
    with _app(data_dir) as (app, services):
        options = app.import_options(
            photos,
            dry_run=dry_run,
            create_places=create_places,
            village=village,
            workers=workers if workers is not None else (os.cpu_count() or 1),
            reported_by=f"roster import {file.name}",
            allow_same_face=allow_same_face,
        )
        with _import_progress() as (advance, set_total):
            try:
                result = services.import_roster_file(
                    file, options, progress=advance, on_total=set_total
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
    from dataclasses import asdict

    data = _read_photo(image)
    with _app(data_dir) as (app, services):
        # The live gallery of the installation (built once, kept current), never a fresh
        # decryption of every template per question.
        faces = services.identify(data, top=top)
        if not faces:
            fail(f"{image}: no face found")
        skipped = app.registry.service.unreadable_skipped
        if skipped:
            err_console.print(
                f"warning: {len(skipped)} template(s) cannot be read and were left out of "
                "the search; see 'cunan keys check'",
                markup=False,
                highlight=False,
            )
    for face in faces:
        record = asdict(face)
        if as_json:
            print(json.dumps(record, ensure_ascii=False))
            continue
        who = face.person_id
        verdict = f"person {who} ({face.person_name})" if who is not None else "unknown"
        console.print(
            f"face {face.face} at {','.join(f'{v:.0f}' for v in face.box)}: {verdict}",
            markup=False,
            highlight=False,
        )
        for c in face.candidates:
            console.print(
                f"  candidate person {c.person_id} ({c.name}): distance {c.distance:.3f}",
                markup=False,
                highlight=False,
            )
        for reason in face.reasons:
            console.print(f"  {reason}", markup=False, highlight=False)
