"""Bulk roster import: validate every row, check photos in parallel, write one person at a time."""

from __future__ import annotations

import csv
import errno
import hashlib
import logging
import mimetypes
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path

import numpy as np

from cunan.domain import AnalyzedFace
from cunan.faces.engine import EngineConfig, EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, decode_image, load_image
from cunan.lifetime import bound_process_pool
from cunan.registry.consistency import (
    SAME_FACE_DISTANCE,
    FaceLookup,
    TemplateLookup,
    different_people_problem,
    known_faces,
    same_face_problem,
)
from cunan.registry.enrolment import ENROLMENT_DECODE_PIXELS, enrolment_face
from cunan.registry.errors import (
    ConsentRequiredError,
    DuplicateIdNumberError,
    GuardianConsentRequiredError,
    RegistryError,
    RoomCapacityError,
)
from cunan.registry.identity import age_on, birth_date_from_id
from cunan.registry.photo_folder import OUTSIDE, PhotoRefusedError, check_photo, read_photo
from cunan.registry.places import VillageDirectory, lock_and_find, person_key
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
from cunan.registry.validation import Stay, consent_date_problem, field_limit, peak_occupancy
from cunan.security.spreadsheet import neutralise_row
from cunan.storage.errors import StorageError
from cunan.storage.repositories import RegistryRepository
from cunan.storage.tables import Consent, House, Household, Landlord, Person, Room

logger = logging.getLogger(__name__)

__all__ = [
    "ImportOptions",
    "ImportReport",
    "RowOutcome",
    "RowStatus",
    "import_roster",
    "write_problem_report",
    "write_problems",
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
    #: Photos are checked decoded at about this many pixels (None: full size); a photo
    #: refused at that size is checked again at four times the pixels before it is refused.
    decode_pixels: int | None = ENROLMENT_DECODE_PIXELS
    #: A row's photos farther apart than this are different people (faces.match_threshold:
    #: what ``cunan faces compare`` calls different people).
    person_max_distance: float = 0.43
    #: A photo this close to another person's template is refused as the same face...
    same_face_distance: float = SAME_FACE_DISTANCE
    #: ... unless the user says they are different people (twins).
    allow_same_face: bool = False
    #: Capacity of a room the import creates (see NEW_ROOM_CAPACITY).
    new_room_capacity: int = 4
    #: Under this age consent must come from a guardian (the registry's setting).
    guardian_under_age: int = 14
    #: The application's live gallery (serve, the API): the same-face rule looks faces up
    #: there instead of decrypting every registered template (None: plain CLI use).
    gallery: TemplateLookup | None = None


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
    #: The photo folder: the worker opens ``name`` inside it itself (cunan.registry.
    #: photo_folder), never a path the parent resolved earlier.
    root: str


@dataclass(frozen=True, slots=True)
class _PhotoResult:
    row: int
    index: int
    name: str
    reason: str | None = None
    vector: Vector | None = None
    model_id: str = ""
    quality: TemplateQuality = field(default_factory=TemplateQuality)
    #: SHA-256 of the bytes checked: a photo kept later must be these very bytes.
    digest: str = ""


_worker_engines: tuple[FaceEngine, FaceEngine] | None = None
_worker_max_pixels = DEFAULT_MAX_PIXELS
_worker_reduce_to: int | None = ENROLMENT_DECODE_PIXELS


def _init_worker(config: EngineConfig, max_pixels: int, reduce_to: int | None) -> None:
    """Each worker builds its own engines once: a fast one (no upsampling) and the configured."""
    global _worker_engines, _worker_max_pixels, _worker_reduce_to
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
    _worker_reduce_to = reduce_to


def _check_photos(jobs: Sequence[_PhotoJob]) -> list[_PhotoResult]:
    return [_check_photo(job) for job in jobs]


def enrolment_face_of_file(
    path: Path,
    fast: FaceEngine,
    full: FaceEngine,
    *,
    source: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: int | None = ENROLMENT_DECODE_PIXELS,
) -> AnalyzedFace:
    """:func:`cunan.registry.enrolment.enrolment_face` of a photo file."""
    return enrolment_face(
        lambda pixels: load_image(path, max_pixels=max_pixels, reduce_to=pixels),
        fast,
        full,
        source=source,
        reduce_to=reduce_to,
    )


def _check_photo(job: _PhotoJob) -> _PhotoResult:
    assert _worker_engines is not None, "worker not initialised"
    fast, full = _worker_engines
    try:
        # Opened inside the folder and read from that descriptor: the bytes decoded are
        # the bytes of the file that passed the folder check, whatever the name is now.
        data = read_photo(Path(job.root), job.name)
        face = enrolment_face(
            lambda pixels: decode_image(
                data, source=job.name, max_pixels=_worker_max_pixels, reduce_to=pixels
            ),
            fast,
            full,
            source=job.name,
            reduce_to=_worker_reduce_to,
        )
    except PhotoRefusedError as exc:
        return _PhotoResult(job.row, job.index, job.name, reason=exc.reason)
    except EnrolmentPhotoError as exc:
        return _PhotoResult(job.row, job.index, job.name, reason=exc.reason)
    except ImageLoadError as exc:
        return _PhotoResult(job.row, job.index, job.name, reason=f"unreadable photo: {exc.reason}")
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
        digest=hashlib.sha256(data).hexdigest(),
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
        _init_worker(options.engine, options.max_image_pixels, options.decode_pixels)
        for chunk in _chunks(jobs, _CHUNK):
            yield _check_photos(chunk)
        return
    # Spawned (the parent holds database connections and a progress-bar thread), and bound
    # to this process: a killed import leaves no worker or resource tracker behind.
    with bound_process_pool(
        options.workers,
        initializer=_init_worker,
        initargs=(options.engine, options.max_image_pixels, options.decode_pixels),
    ) as pool:
        yield from pool.map(_check_photos, _chunks(jobs, _CHUNK))


# -- the import ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """A row that passed validation, waiting for its photo results."""

    row: RosterRow
    problems: list[RowProblem]
    photo_paths: list[Path | None]
    #: Problems of single photos (missing, unreadable, no usable face): the row fails on
    #: them only when none of its photos is usable.
    photo_problems: list[RowProblem] = field(default_factory=list)
    results: dict[int, _PhotoResult] = field(default_factory=dict)
    #: Problems reported without failing the row (photos skipped).
    notes: list[RowProblem] = field(default_factory=list)
    #: Photo results the row waits for.
    expected: int = 0


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

    When the last connection to the database closes, SQLite checkpoints and removes the
    WAL, an fsync per person if every transaction closed its own. The pool keeps idle
    connections open anyway; this one (no transaction, so it blocks no writer) also holds
    when the pool is emptied or disabled. Checkpoints still happen as the WAL grows.
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
    plan = _PlacePlan.of(roster, directory, options)

    pending: dict[int, _Pending] = {}
    jobs: list[_PhotoJob] = []
    seen_ids: dict[str, int] = {}
    seen_keys: dict[tuple[str, str, str], int] = {}
    # Rows are finished in file order, so person ids follow the roster; a finished row
    # leaves this queue (and the pending map) at once.
    order: deque[int] = deque()

    def finish(row_number: int) -> None:
        item = pending.pop(row_number)
        report.outcomes.append(_finish_row(item, roster, service, directory, options, plan))
        report.problems.extend(item.problems)
        report.problems.extend(item.notes)
        if progress is not None:
            progress(1)

    def drain() -> None:
        while order:
            row_number = order[0]
            item = pending[row_number]
            if len(item.results) < item.expected:
                return
            order.popleft()
            finish(row_number)

    for r in roster.rows:
        # Only rows with problems from parsing have a list yet; no empty list per row.
        problems = by_row.pop(r.row, [])
        outcome = _match_existing(r, roster, directory, seen_ids, seen_keys, problems)
        if outcome is not None:
            report.outcomes.append(outcome)
            if outcome.status is RowStatus.FAILED:
                report.problems.extend(problems)
            if progress is not None:
                progress(1)
            continue
        problems.extend(_check_row(r, roster, directory, options))
        item = _Pending(r, problems, [])
        item.photo_paths = _photo_paths(r, roster, options.photos_dir, item)
        pending[r.row] = item
        order.append(r.row)
        for index, p in enumerate(item.photo_paths):
            if p is not None:
                jobs.append(_PhotoJob(r.row, index, r.photos[index], str(options.photos_dir)))
                item.expected += 1
        # Rows without photos before any row that waits for its photos are finished now,
        # so a roster without photos (or a long stretch of one) is not all held at once.
        if not jobs:
            drain()

    drain()
    for chunk in _run_photo_checks(jobs, options):
        for result in chunk:
            pending[result.row].results[result.index] = result
            report.photos_checked += 1
        drain()
    drain()
    report.outcomes.sort(key=lambda o: o.row)
    report.problems.sort(key=lambda p: (p.row, _column_order(roster, p.column)))
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
    today = date.today()

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
    for key, value, limit in _bounded_fields(r):
        if value is not None and limit is not None and len(value) > limit:
            problem(key, f"过长 (too long): {len(value)} characters, at most {limit}")
    if r.consent_date is not None and (why := consent_date_problem(r.consent_date, today)):
        problem("consent_date", why)
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


def _bounded_fields(r: RosterRow) -> list[tuple[str, str | None, int | None]]:
    """The row's text fields with the length of the column each is stored in."""
    return [
        ("name", r.name, field_limit(Person, "name")),
        ("phone", r.phone, field_limit(Person, "phone")),
        ("house_address", r.house_address, field_limit(House, "address")),
        ("room", r.room, field_limit(Room, "label")),
        ("household", r.household, field_limit(Household, "name")),
        ("landlord", r.landlord, field_limit(Landlord, "name")),
        ("consent_by", r.consent_by, field_limit(Consent, "collected_by")),
        ("guardian", r.guardian, field_limit(Consent, "guardian_name")),
    ]


def _has_problem(roster: Roster, row: int, key: str) -> bool:
    return any(p.row == row and p.column == roster.header(key) for p in roster.problems)


def _is_minor(r: RosterRow, options: ImportOptions) -> bool:
    birth = birth_date_from_id(r.id_number)
    return birth is not None and age_on(birth, date.today()) < options.guardian_under_age


def _photo_paths(
    r: RosterRow, roster: Roster, photos_dir: Path, item: _Pending
) -> list[Path | None]:
    """Each photo name as a path inside the photo folder, or None (and a problem) for a name
    that leaves the folder (the row fails: a roster must not point outside), loops, is
    missing or cannot be a path (a problem of that photo only). Nothing is read here; the
    worker opens the photo inside the folder again (cunan.registry.photo_folder)."""
    paths: list[Path | None] = []
    for name in r.photos:
        try:
            check_photo(photos_dir, name)
        except PhotoRefusedError as exc:
            problem = RowProblem(r.row, roster.header("photos"), f"{name}: {exc.reason}")
            (item.problems if exc.reason == OUTSIDE else item.photo_problems).append(problem)
            paths.append(None)
            continue
        paths.append(photos_dir / name)
    return paths


#: A room an import creates holds at least this many (more when the roster puts more in it),
#: unless the roster's 房间容量/room_capacity column says otherwise: a room sized to one
#: file's head count would refuse every later tenant and 补录 until someone moved out.
NEW_ROOM_CAPACITY = 4


@dataclass(slots=True)
class _PlacePlan:
    """What the roster will do to places, known before any row is written, so that the dry
    run and the import apply the same room-capacity check (the service re-checks on write)."""

    directory: VillageDirectory
    #: (house address, room label) -> people of the roster in that room.
    heads: dict[tuple[str, str], int]
    #: (house address, room label) -> the largest 房间容量 a row gives.
    capacities: dict[tuple[str, str], int]
    #: house address -> the first landlord a row of that house names.
    landlords: dict[str, str]
    default_capacity: int
    #: (house address, room label) -> (capacity, stays), as rows are written (or would be).
    rooms: dict[tuple[str, str], tuple[int, list[Stay]]] = field(default_factory=dict)
    #: Registered faces plus this run's, loaded at the first row with photos.
    faces: FaceLookup | None = None

    def known_faces(
        self,
        service: RegistryService,
        model_id: str,
        dim: int,
        gallery: TemplateLookup | None,
    ) -> FaceLookup:
        if self.faces is None:
            self.faces = known_faces(service, model_id, dim, gallery)
        return self.faces

    def enrolled(self, owner: str, item: _Pending) -> None:
        if self.faces is not None:
            vectors = [res.vector for res in item.results.values() if res.vector is not None]
            self.faces.add(owner, vectors)

    @classmethod
    def of(cls, roster: Roster, directory: VillageDirectory, options: ImportOptions) -> _PlacePlan:
        heads: dict[tuple[str, str], int] = {}
        capacities: dict[tuple[str, str], int] = {}
        landlords: dict[str, str] = {}
        for r in roster.rows:
            if r.house_address and r.room:
                key = (r.house_address.strip(), r.room.strip())
                heads[key] = heads.get(key, 0) + 1
                if r.room_capacity is not None:
                    capacities[key] = max(capacities.get(key, 0), r.room_capacity)
            if r.house_address and r.landlord:
                landlords.setdefault(r.house_address.strip(), r.landlord)
        return cls(directory, heads, capacities, landlords, options.new_room_capacity)

    def house_landlord(self, address: str) -> str | None:
        return self.landlords.get(address.strip())

    def new_room_capacity(self, r: RosterRow) -> int:
        key = _room_key(r)
        if key in self.capacities:
            return self.capacities[key]
        return max(self.default_capacity, self.heads.get(key, 1))

    def _room(self, r: RosterRow) -> tuple[int, list[Stay]]:
        key = _room_key(r)
        if key not in self.rooms:
            room_id = self.directory.existing_room(*key)
            if room_id is None:
                self.rooms[key] = (self.new_room_capacity(r), [])
            else:
                stays = list(self.directory.room_stays.get(room_id, []))
                self.rooms[key] = (self.directory.room_capacity.get(room_id, 1), stays)
        return self.rooms[key]

    def room_full(self, r: RosterRow) -> str | None:
        """Why the row's tenancy would overfill its room, or None."""
        if not (r.house_address and r.room and r.move_in):
            return None
        capacity, stays = self._room(r)
        peak = peak_occupancy(stays, r.move_in, None)
        if peak + 1 <= capacity:
            return None
        return (
            f"房间已满 (room full): room {r.room!r} of {r.house_address!r} holds {capacity} and "
            f"already has {peak} tenant(s) from {r.move_in}; record a move-out first"
        )

    def moved_in(self, r: RosterRow) -> None:
        if r.house_address and r.room and r.move_in:
            self._room(r)[1].append((r.move_in, None))


def _room_key(r: RosterRow) -> tuple[str, str]:
    return ((r.house_address or "").strip(), (r.room or "").strip())


#: Added to the problem of a photo that was left out because another photo of the row is good.
SKIPPED_PHOTO = " (photo skipped; the row's other photo(s) were used)"


def _finish_row(
    item: _Pending,
    roster: Roster,
    service: RegistryService,
    directory: VillageDirectory,
    options: ImportOptions,
    plan: _PlacePlan,
) -> RowOutcome:
    r = item.row
    photo_problems = list(item.photo_problems)
    for index in sorted(item.results):
        result = item.results[index]
        if result.reason is not None:
            photo_problems.append(
                RowProblem(r.row, roster.header("photos"), f"{result.name}: {result.reason}")
            )
    # One rule for the dry run and the import: a row needs one usable photo; unusable
    # ones next to a usable one are skipped and reported, never stored.
    if any(result.reason is None for result in item.results.values()):
        item.notes.extend(
            RowProblem(p.row, p.column, p.reason + SKIPPED_PHOTO) for p in photo_problems
        )
        for index in [i for i, res in item.results.items() if res.reason is not None]:
            del item.results[index]
    else:
        item.problems.extend(photo_problems)

    def failed() -> RowOutcome:
        # A row that fails for another reason lists its unusable photos as plain problems.
        if item.notes:
            item.notes.clear()
            item.problems.extend(photo_problems)
        return RowOutcome(r.row, RowStatus.FAILED)

    if not item.problems and item.results:
        face = _face_problem(item, service, options, plan)
        if face is not None:
            item.problems.append(RowProblem(r.row, roster.header("photos"), face))
    if not item.problems:
        full = plan.room_full(r)
        if full is not None:
            item.problems.append(RowProblem(r.row, roster.header("room"), full))
    if item.problems:
        return failed()
    if options.dry_run:
        plan.moved_in(r)
        plan.enrolled(f"row {r.row}", item)
        return RowOutcome(r.row, RowStatus.VALID)
    assert r.name is not None and r.category is not None  # no problems means both parsed
    try:
        person_id, created = _write_person(item, service, directory, options, plan)
    except (RegistryError, StorageError) as exc:
        item.problems.append(RowProblem(r.row, roster.header(_column_of(exc)), str(exc)))
        return failed()
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
        return failed()
    directory.remember(
        person_id, r.name, r.id_number, person_key(r.name, r.house_address, r.room or r.household)
    )
    if not created:
        # Another import registered this person meanwhile: left alone, like a re-run.
        item.notes.clear()
        return RowOutcome(r.row, RowStatus.UNCHANGED, person_id)
    plan.moved_in(r)
    plan.enrolled(f"person {person_id}", item)
    return RowOutcome(r.row, RowStatus.IMPORTED, person_id)


def _face_problem(
    item: _Pending, service: RegistryService, options: ImportOptions, plan: _PlacePlan
) -> str | None:
    """The face consistency rule: a row's photos show one person, and that face is not
    registered (or imported earlier in this run) as someone else."""
    usable = [item.results[i] for i in sorted(item.results)]
    vectors = [res.vector for res in usable if res.vector is not None]
    why = different_people_problem(
        [res.name for res in usable], vectors, options.person_max_distance
    )
    if why is not None or options.allow_same_face:
        return why
    known = plan.known_faces(service, usable[0].model_id, int(vectors[0].shape[0]), options.gallery)
    return same_face_problem(known.nearest(vectors), options.same_face_distance)


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
    plan: _PlacePlan,
) -> tuple[int, bool]:
    """Write one row: (person id, True), or (id, False) when a concurrent import registered
    the same person first (same ID number and name, else the identity rule's name + place)."""
    r = item.row
    assert r.name is not None and r.category is not None
    # Photo bytes first: an unreadable photo (OSError) fails the row before a house or room
    # is created for it.
    templates = [
        _template(item.results[i], options.photos_dir, service) for i in sorted(item.results)
    ]
    landlord_id = directory.landlord_id(r.landlord) if r.landlord else None
    house_id: int | None = None
    if r.house_address:
        house_landlord = plan.house_landlord(r.house_address)
        house_id = directory.house_id(
            r.house_address,
            create=options.create_places,
            landlord_id=directory.landlord_id(house_landlord) if house_landlord else None,
        )
    household_id = (
        directory.household_id(house_id, r.household)
        if house_id is not None and r.household
        else None
    )
    tenancy: NewTenancy | None = None
    room_id: int | None = None
    if house_id is not None and r.room is not None and r.move_in is not None:
        room_id = directory.room_id(house_id, r.room, capacity=plan.new_room_capacity(r))
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
    person = NewPerson(
        name=r.name,
        village_id=directory.village_id,
        category=r.category,
        id_number=r.id_number,
        id_document=r.id_document,
        phone=r.phone,
        household_id=household_id,
        non_face_note=None if templates else r.non_face,
    )
    if r.id_number:
        # The unique (village, ID number) constraint makes concurrent runs safe; the loser
        # sees who won.
        try:
            created = service.add_person(
                person, consent=consent, templates=templates, tenancy=tenancy
            )
        except DuplicateIdNumberError:
            winner = _registered_with_id(service, directory.village_id, r.id_number)
            if winner is None or " ".join(winner[1].split()) != " ".join(r.name.split()):
                raise
            return winner[0], False
        return created, True
    # No ID number: the identity rule (name + room, else household, else name alone) is
    # checked and the person added in one transaction, under a lock on that place.
    with service.unit_of_work() as unit:
        found = lock_and_find(
            RegistryRepository(unit.session),
            directory.village_id,
            r.name,
            room_id=room_id,
            household_id=None if room_id is not None else household_id,
        )
        if found is not None:
            return found, False
        created = service.add_person(person, consent=consent, templates=templates, tenancy=tenancy)
    return created, True


def _registered_with_id(
    service: RegistryService, village_id: int, id_number: str
) -> tuple[int, str] | None:
    with service.database.transaction() as session:
        person = RegistryRepository(session).person_by_id_number(village_id, id_number)
        return None if person is None else (person.id, person.name)


def _template(result: _PhotoResult, photos_dir: Path, service: RegistryService) -> TemplateInput:
    assert result.vector is not None
    photo = None
    if service.settings.keep_enrolment_photos:
        photo = PhotoInput(
            data=_same_photo(result, photos_dir),
            media_type=mimetypes.guess_type(result.name)[0] or "application/octet-stream",
        )
    return TemplateInput(
        vector=result.vector,
        model_id=result.model_id,
        source=TemplateSource.ENROLMENT_PHOTO,
        quality=result.quality,
        photo=photo,
    )


def _same_photo(result: _PhotoResult, photos_dir: Path) -> bytes:
    """The photo's bytes again (to keep), opened inside the folder as before; OSError (the
    row fails, the import goes on) unless they are the bytes whose face was checked."""
    try:
        data = read_photo(photos_dir, result.name)
    except PhotoRefusedError as exc:
        raise OSError(errno.ENOENT, exc.reason, result.name) from None
    if hashlib.sha256(data).hexdigest() != result.digest:
        raise OSError(
            errno.ESTALE, "照片在检查后被改动 (changed after it was checked)", result.name
        )
    return data


def write_problem_report(report: ImportReport, path: Path) -> None:
    """The problem list as CSV (row, column, reason), UTF-8 with BOM for Excel."""
    write_problems(report.problems, path)


def write_problems(problems: Iterable[RowProblem], path: Path) -> None:
    """Row problems as CSV (row, column, reason), UTF-8 with BOM for Excel (every bulk
    import's error report: rosters, the gas registry)."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "column", "reason"])
        for p in problems:
            # Headers and photo names come from the roster: never let them run as formulas.
            writer.writerow(neutralise_row([p.row, p.column, p.reason]))
