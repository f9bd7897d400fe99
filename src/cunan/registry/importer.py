"""Bulk roster import: validate every row, check photos in parallel, write one person at a time."""

from __future__ import annotations

import csv
import logging
import mimetypes
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path

import numpy as np

from cunan.faces.engine import EngineConfig, EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from cunan.lifetime import bound_process_pool
from cunan.registry.errors import (
    ConsentRequiredError,
    DuplicateIdNumberError,
    GuardianConsentRequiredError,
    RegistryError,
    RoomCapacityError,
)
from cunan.registry.identity import age_on, birth_date_from_id
from cunan.registry.places import VillageDirectory, person_key
from cunan.registry.records import (
    ConsentInput,
    NewPerson,
    PersonCategory,
    PhotoInput,
    TemplateInput,
    TemplateQuality,
    TemplateSource,
    Vector,
)
from cunan.registry.roster import Roster, RosterRow, RowProblem, read_roster
from cunan.registry.service import NewTenancy, RegistryService
from cunan.storage.errors import StorageError

logger = logging.getLogger(__name__)

__all__ = [
    "ImportOptions",
    "ImportReport",
    "RowOutcome",
    "RowStatus",
    "import_roster",
    "write_problem_report",
]

#: Photos per task sent to a worker: enough to amortise the pickling, small enough that
#: the progress bar moves and the last worker is not left alone with a long tail.
_CHUNK = 8


class RowStatus(StrEnum):
    IMPORTED = "imported"
    #: Already in the registry (matched by ID number, else name + house + room): left alone.
    UNCHANGED = "unchanged"
    FAILED = "failed"
    #: Dry run: the row passed every check and would be imported.
    VALID = "valid"


@dataclass(frozen=True, slots=True)
class RowOutcome:
    row: int
    status: RowStatus
    person_id: int | None = None


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to import. ``workers``: photo-checking processes (0 or 1: in this process)."""

    photos_dir: Path
    dry_run: bool = False
    create_places: bool = False
    village: str | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Recorded on every tenancy as who reported it.
    reported_by: str = "roster import"
    engine: EngineConfig = field(default_factory=EngineConfig)
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    #: Under this age consent must come from a guardian (the registry's setting).
    guardian_under_age: int = 14


@dataclass(slots=True)
class ImportReport:
    roster: Roster
    outcomes: list[RowOutcome] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    photos_checked: int = 0

    def count(self, status: RowStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def exit_code(self) -> int:
        """0: every row imported, unchanged or valid; 1: some rows failed."""
        return 1 if self.count(RowStatus.FAILED) else 0


# -- photo checks (in worker processes) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PhotoJob:
    row: int
    index: int
    name: str
    path: str


@dataclass(frozen=True, slots=True)
class _PhotoResult:
    row: int
    index: int
    name: str
    reason: str | None = None
    vector: Vector | None = None
    model_id: str = ""
    quality: TemplateQuality = field(default_factory=TemplateQuality)


_worker_engines: tuple[FaceEngine, FaceEngine] | None = None
_worker_max_pixels = DEFAULT_MAX_PIXELS


def _init_worker(config: EngineConfig, max_pixels: int) -> None:
    """Each worker builds its own engines once: a fast one (no upsampling) and the configured."""
    global _worker_engines, _worker_max_pixels
    from dataclasses import replace

    full = FaceEngine.from_config(config)
    fast = full
    if config.detector == "dlib_hog" and config.upsample > 0:
        fast = FaceEngine(
            FaceEngine.from_config(replace(config, upsample=0)).detector,
            full.embedder,
            enrol_jitter=full.enrol_jitter,
        )
    _worker_engines = (fast, full)
    _worker_max_pixels = max_pixels


def _check_photos(jobs: Sequence[_PhotoJob]) -> list[_PhotoResult]:
    return [_check_photo(job) for job in jobs]


def _check_photo(job: _PhotoJob) -> _PhotoResult:
    assert _worker_engines is not None, "worker not initialised"
    fast, full = _worker_engines
    try:
        image = load_image(job.path, max_pixels=_worker_max_pixels)
    except ImageLoadError as exc:
        return _PhotoResult(job.row, job.index, job.name, reason=f"unreadable photo: {exc.reason}")
    try:
        try:
            # Enrolment faces are >= 80 px, which HOG finds without upsampling at a quarter
            # of the cost; only when that finds no usable face does the configured (slower)
            # detector decide, so every rejection is the engine's own verdict.
            face = fast.enrolment_face(image, source=job.name)
        except EnrolmentPhotoError:
            if fast is full:
                raise
            face = full.enrolment_face(image, source=job.name)
    except EnrolmentPhotoError as exc:
        return _PhotoResult(job.row, job.index, job.name, reason=exc.reason)
    q = face.quality
    return _PhotoResult(
        job.row,
        job.index,
        job.name,
        vector=np.asarray(face.embedding, dtype=np.float32),
        model_id=face.model_id or full.model_id,
        quality=TemplateQuality(
            face_width_px=q.face_width_px,
            sharpness=q.sharpness,
            frontalness=q.frontalness,
            brightness=q.brightness,
            detector_score=face.face.score,
        ),
    )


def _chunks(jobs: Sequence[_PhotoJob], size: int) -> Iterator[list[_PhotoJob]]:
    for start in range(0, len(jobs), size):
        yield list(jobs[start : start + size])


def _run_photo_checks(
    jobs: Sequence[_PhotoJob], options: ImportOptions
) -> Iterator[list[_PhotoResult]]:
    """Results in job order, chunk by chunk."""
    if not jobs:
        return
    if options.workers <= 1:
        _init_worker(options.engine, options.max_image_pixels)
        for chunk in _chunks(jobs, _CHUNK):
            yield _check_photos(chunk)
        return
    # Spawned (the parent holds database connections and a progress-bar thread), and bound
    # to this process: a killed import leaves no worker or resource tracker behind.
    with bound_process_pool(
        options.workers,
        initializer=_init_worker,
        initargs=(options.engine, options.max_image_pixels),
    ) as pool:
        yield from pool.map(_check_photos, _chunks(jobs, _CHUNK))


# -- the import ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """A row that passed validation, waiting for its photo results."""

    row: RosterRow
    problems: list[RowProblem]
    photo_paths: list[Path]
    results: dict[int, _PhotoResult] = field(default_factory=dict)


ProgressCallback = Callable[[int], None]


def import_roster(
    path: Path,
    service: RegistryService,
    options: ImportOptions,
    *,
    progress: ProgressCallback | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a roster file. Raises RosterFileError when the file is unusable; every row
    problem is in the report. ``progress(n)`` is called as n more rows are finished."""
    roster = read_roster(path)
    report = ImportReport(roster=roster)
    if on_total is not None:
        on_total(len(roster.rows))
    village_id = (
        service.village_id_by_name(options.village)
        if options.village
        else service.default_village_id()
    )
    directory = VillageDirectory.load(service, village_id)
    with _wal_kept_open(service):
        return _import_rows(roster, report, service, directory, options, progress)


@contextmanager
def _wal_kept_open(service: RegistryService) -> Iterator[None]:
    """Hold one idle SQLite connection for the whole import.

    The database opens a connection per transaction; when the last connection closes,
    SQLite checkpoints and removes the WAL, an fsync per person. An idle connection (no
    transaction, so it blocks no writer) makes each close cheap; checkpoints still happen
    automatically as the WAL grows.
    """
    if not service.database.is_sqlite:
        yield
        return
    keeper = service.database.engine.raw_connection()
    try:
        yield
    finally:
        keeper.close()


def _import_rows(
    roster: Roster,
    report: ImportReport,
    service: RegistryService,
    directory: VillageDirectory,
    options: ImportOptions,
    progress: ProgressCallback | None,
) -> ImportReport:
    by_row: dict[int, list[RowProblem]] = {}
    for problem in roster.problems:
        by_row.setdefault(problem.row, []).append(problem)
    room_counts: dict[tuple[str, str], int] = {}
    for r in roster.rows:
        if r.house_address and r.room:
            key = (r.house_address, r.room)
            room_counts[key] = room_counts.get(key, 0) + 1

    pending: dict[int, _Pending] = {}
    jobs: list[_PhotoJob] = []
    seen_ids: dict[str, int] = {}
    seen_keys: dict[tuple[str, str, str], int] = {}
    finished = 0
    for r in roster.rows:
        problems = by_row.setdefault(r.row, [])
        outcome = _match_existing(r, roster, directory, seen_ids, seen_keys, problems)
        if outcome is not None:
            report.outcomes.append(outcome)
            finished += 1
            continue
        problems.extend(_check_row(r, roster, directory, options))
        photo_paths = _photo_paths(r, roster, options.photos_dir, problems)
        item = _Pending(r, problems, photo_paths)
        pending[r.row] = item
        for index, p in enumerate(photo_paths):
            if p.is_file():
                jobs.append(_PhotoJob(r.row, index, r.photos[index], str(p)))
    if progress is not None and finished:
        progress(finished)

    expected = dict.fromkeys(pending, 0)
    for job in jobs:
        expected[job.row] += 1

    def finish(row_number: int) -> None:
        item = pending.pop(row_number)
        report.outcomes.append(_finish_row(item, roster, service, directory, options, room_counts))
        report.problems.extend(item.problems)
        if progress is not None:
            progress(1)

    # Rows are finished in file order, so person ids follow the roster.
    order = [r.row for r in roster.rows if r.row in pending]
    cursor = 0

    def drain() -> None:
        nonlocal cursor
        while cursor < len(order):
            row_number = order[cursor]
            item = pending.get(row_number)
            if item is not None and len(item.results) < expected[row_number]:
                return
            if item is not None:
                finish(row_number)
            cursor += 1

    drain()
    for chunk in _run_photo_checks(jobs, options):
        for result in chunk:
            pending[result.row].results[result.index] = result
            report.photos_checked += 1
        drain()
    drain()
    report.outcomes.sort(key=lambda o: o.row)
    report.problems = sorted(
        [*report.problems, *_problems_of_matched(roster, by_row, report)],
        key=lambda p: (p.row, _column_order(roster, p.column)),
    )
    logger.info(
        "roster import%s: %d imported, %d unchanged, %d valid, %d failed",
        " (dry run)" if options.dry_run else "",
        report.count(RowStatus.IMPORTED),
        report.count(RowStatus.UNCHANGED),
        report.count(RowStatus.VALID),
        report.count(RowStatus.FAILED),
    )
    return report


def _column_order(roster: Roster, column: str) -> int:
    headers = list(roster.headers.values())
    return headers.index(column) if column in headers else len(headers)


def _problems_of_matched(
    roster: Roster, by_row: dict[int, list[RowProblem]], report: ImportReport
) -> list[RowProblem]:
    """Problems of rows that never reached a pending state (matched or duplicate)."""
    done = set(report.problems)
    out: list[RowProblem] = []
    for outcome in report.outcomes:
        if outcome.status is RowStatus.FAILED:
            out.extend(p for p in by_row.get(outcome.row, []) if p not in done)
    return out


def _match_existing(
    r: RosterRow,
    roster: Roster,
    directory: VillageDirectory,
    seen_ids: dict[str, int],
    seen_keys: dict[tuple[str, str, str], int],
    problems: list[RowProblem],
) -> RowOutcome | None:
    """The row's outcome when it is a duplicate or already registered, else None."""
    if r.name is None:
        return None
    if r.id_number:
        first = seen_ids.setdefault(r.id_number, r.row)
        if first != r.row:
            problems.append(
                RowProblem(
                    r.row, roster.header("id_number"), f"duplicate ID number (same as row {first})"
                )
            )
            return RowOutcome(r.row, RowStatus.FAILED)
        existing = directory.by_id_number.get(r.id_number)
        if existing is not None:
            person_id, name = existing
            if " ".join(name.split()) == " ".join(r.name.split()):
                return RowOutcome(r.row, RowStatus.UNCHANGED, person_id)
            problems.append(
                RowProblem(
                    r.row,
                    roster.header("id_number"),
                    f"duplicate ID number: already registered for another name (person "
                    f"{person_id})",
                )
            )
            return RowOutcome(r.row, RowStatus.FAILED)
        return None
    key = person_key(r.name, r.house_address, r.room or r.household)
    first = seen_keys.setdefault(key, r.row)
    if first != r.row:
        problems.append(
            RowProblem(
                r.row,
                roster.header("name"),
                f"same person as row {first} (same name, house and room, no ID number)",
            )
        )
        return RowOutcome(r.row, RowStatus.FAILED)
    found = directory.by_name_place.get(key)
    if found is not None:
        return RowOutcome(r.row, RowStatus.UNCHANGED, found)
    return None


def _check_row(
    r: RosterRow, roster: Roster, directory: VillageDirectory, options: ImportOptions
) -> list[RowProblem]:
    """Every rule that can be checked without photos or writing."""
    out: list[RowProblem] = []

    def problem(key: str, reason: str) -> None:
        out.append(RowProblem(r.row, roster.header(key), reason))

    if r.house_address is None:
        if r.category is PersonCategory.TENANT:
            problem("house_address", "missing required field: house address (tenants)")
        for key, value in (("room", r.room), ("household", r.household)):
            if value is not None:
                problem("house_address", f"missing required field: house address (for {key})")
                break
    elif directory.house_id(r.house_address, create=False) is None and not options.create_places:
        problem(
            "house_address",
            f"unknown house {r.house_address!r}; register it first or use --create-places",
        )
    if r.category is PersonCategory.TENANT and r.room is None:
        problem("room", "missing required field: room (tenants)")
    if r.room is not None and r.move_in is None and not _has_problem(roster, r.row, "move_in"):
        problem("move_in", "missing required field: move-in date (for the room)")
    if r.move_in and r.expected_end and r.expected_end < r.move_in:
        problem("expected_end", f"expected end {r.expected_end} is before move-in {r.move_in}")
    if r.photos:
        if r.consent_by is None:
            problem("consent_by", "missing required field: who collected the consent (photos)")
        if r.consent_date is None and not _has_problem(roster, r.row, "consent_date"):
            problem("consent_date", "missing required field: consent date (photos)")
        if _is_minor(r, options) and r.guardian is None:
            problem(
                "guardian",
                f"minor (under {options.guardian_under_age} by the ID number): "
                "consent must come from a guardian; give the guardian's name",
            )
    elif r.non_face is None:
        problem(
            "photos",
            "missing required field: photos (or say in 非人脸核验/non_face how the person is "
            "checked without face data)",
        )
    return out


def _has_problem(roster: Roster, row: int, key: str) -> bool:
    return any(p.row == row and p.column == roster.header(key) for p in roster.problems)


def _is_minor(r: RosterRow, options: ImportOptions) -> bool:
    birth = birth_date_from_id(r.id_number)
    return birth is not None and age_on(birth, date.today()) < options.guardian_under_age


def _photo_paths(
    r: RosterRow, roster: Roster, photos_dir: Path, problems: list[RowProblem]
) -> list[Path]:
    root = photos_dir.resolve()
    paths: list[Path] = []
    for name in r.photos:
        candidate = (root / name).resolve()
        if not candidate.is_relative_to(root):
            # A roster must not make the importer read files outside the photo folder.
            problems.append(
                RowProblem(r.row, roster.header("photos"), f"{name}: outside the photo folder")
            )
        elif not candidate.is_file():
            problems.append(
                RowProblem(r.row, roster.header("photos"), f"{name}: missing photo (not found)")
            )
        paths.append(candidate)
    return paths


def _finish_row(
    item: _Pending,
    roster: Roster,
    service: RegistryService,
    directory: VillageDirectory,
    options: ImportOptions,
    room_counts: dict[tuple[str, str], int],
) -> RowOutcome:
    r = item.row
    for index in sorted(item.results):
        result = item.results[index]
        if result.reason is not None:
            item.problems.append(
                RowProblem(r.row, roster.header("photos"), f"{result.name}: {result.reason}")
            )
    if item.problems:
        return RowOutcome(r.row, RowStatus.FAILED)
    if options.dry_run:
        return RowOutcome(r.row, RowStatus.VALID)
    assert r.name is not None and r.category is not None  # no problems means both parsed
    try:
        person_id = _write_person(item, service, directory, options, room_counts)
    except (RegistryError, StorageError) as exc:
        item.problems.append(RowProblem(r.row, roster.header(_column_of(exc)), str(exc)))
        return RowOutcome(r.row, RowStatus.FAILED)
    except OSError as exc:
        # A photo moved, deleted or made unreadable after it was checked: this row fails,
        # the import goes on and the report says why.
        name = Path(os.fsdecode(exc.filename)).name if exc.filename else "photo"
        item.problems.append(
            RowProblem(
                r.row,
                roster.header("photos"),
                f"{name}: photo could not be read ({exc.strerror or exc})",
            )
        )
        return RowOutcome(r.row, RowStatus.FAILED)
    directory.remember(
        person_id, r.name, r.id_number, person_key(r.name, r.house_address, r.room or r.household)
    )
    return RowOutcome(r.row, RowStatus.IMPORTED, person_id)


def _column_of(exc: Exception) -> str:
    if isinstance(exc, DuplicateIdNumberError):
        return "id_number"
    if isinstance(exc, GuardianConsentRequiredError):
        return "guardian"
    if isinstance(exc, ConsentRequiredError):
        return "consent_by"
    if isinstance(exc, RoomCapacityError):
        return "room"
    return "name"


def _write_person(
    item: _Pending,
    service: RegistryService,
    directory: VillageDirectory,
    options: ImportOptions,
    room_counts: dict[tuple[str, str], int],
) -> int:
    r = item.row
    assert r.name is not None and r.category is not None
    # Photo bytes first: an unreadable photo (OSError) fails the row before a house or room
    # is created for it.
    templates = [
        _template(item.results[i], item.photo_paths[i], service) for i in sorted(item.results)
    ]
    landlord_id = directory.landlord_id(r.landlord) if r.landlord else None
    house_id = (
        directory.house_id(r.house_address, create=options.create_places, landlord_id=landlord_id)
        if r.house_address
        else None
    )
    household_id = (
        directory.household_id(house_id, r.household)
        if house_id is not None and r.household
        else None
    )
    tenancy: NewTenancy | None = None
    if house_id is not None and r.room is not None and r.move_in is not None:
        # A room the roster creates holds everyone the roster puts in it.
        capacity = room_counts.get((r.house_address or "", r.room), 1)
        room_id = directory.room_id(house_id, r.room, capacity=max(1, capacity))
        tenancy = NewTenancy(
            room_id=room_id,
            move_in=r.move_in,
            expected_end=r.expected_end,
            reported_by=options.reported_by,
            landlord_id=landlord_id,
        )
    consent = None
    if templates:
        assert r.consent_by is not None and r.consent_date is not None
        consent = ConsentInput(
            collected_by=r.consent_by,
            # The roster gives a day; noon local time keeps it on that day in any zone nearby.
            collected_at=datetime.combine(r.consent_date, time(12, 0)).astimezone(UTC),
            method=r.consent_method,
            guardian_name=r.guardian,
        )
    return service.add_person(
        NewPerson(
            name=r.name,
            village_id=directory.village_id,
            category=r.category,
            id_number=r.id_number,
            phone=r.phone,
            household_id=household_id,
            non_face_note=None if templates else r.non_face,
        ),
        consent=consent,
        templates=templates,
        tenancy=tenancy,
    )


def _template(result: _PhotoResult, path: Path, service: RegistryService) -> TemplateInput:
    assert result.vector is not None
    photo = None
    if service.settings.keep_enrolment_photos:
        photo = PhotoInput(
            data=path.read_bytes(),
            media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        )
    return TemplateInput(
        vector=result.vector,
        model_id=result.model_id,
        source=TemplateSource.ENROLMENT_PHOTO,
        quality=result.quality,
        photo=photo,
    )


def write_problem_report(report: ImportReport, path: Path) -> None:
    """The problem list as CSV (row, column, reason), UTF-8 with BOM for Excel."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "column", "reason"])
        for p in report.problems:
            writer.writerow([p.row, p.column, p.reason])
