"""Roster imports uploaded over the API: a background job per upload, with progress and report."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import threading
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath

from cunan.errors import InvalidInput, NotFound
from cunan.registry.importer import ImportOptions, RowStatus, import_roster
from cunan.registry.roster import RosterFileError, RowProblem
from cunan.registry.service import RegistryService

logger = logging.getLogger(__name__)

#: A photo archive may hold at most this many files and this many bytes once unpacked
#: (a ZIP bomb is refused before anything is written).
MAX_ZIP_ENTRIES = 20_000
MAX_ZIP_BYTES = 4 * 2**30
#: Jobs kept in memory for their report (the oldest finished ones are forgotten first).
MAX_JOBS = 50
#: A checked upload is kept this long for the real import to start from (seconds); then it
#: is deleted like any other upload.
KEEP_CHECKED_S = 3600.0
#: The record of a kept checked upload, beside it under ``DATA_DIR/imports/<job>/``: with it
#: the offer survives a restart of the server.
KEPT_RECORD = "checked.json"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(slots=True)
class ImportJob:
    """One upload's import: where it stands, and its row report once done."""

    id: str
    dry_run: bool
    create_places: bool
    created_by: str
    created_at: datetime
    state: JobState = JobState.QUEUED
    total: int | None = None
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)
    error: str | None = None
    finished_at: datetime | None = None
    #: A dry run whose upload is kept so the real import can start from it (without the
    #: user choosing the files again); False once it was used or has expired.
    upload_kept: bool = False
    #: The roster's file name as uploaded (for the pages).
    roster_name: str = ""


def _roster_suffix(data: bytes, filename: str) -> str:
    """``.xlsx`` or ``.csv`` judged by the content (an XLSX is a ZIP), never the name alone."""
    if data[:4] == b"PK\x03\x04":
        return ".xlsx"
    if b"\x00" in data[:4096]:
        raise InvalidInput(f"{filename}: not a CSV or XLSX roster (binary content)")
    return ".csv"


def unpack_photos(archive: Path, target: Path) -> int:
    """Unpack a ZIP of photos into ``target`` safely; returns the number of files.

    Refused before writing anything: absolute paths or ``..`` (zip-slip), symbolic links,
    more than :data:`MAX_ZIP_ENTRIES` files or :data:`MAX_ZIP_BYTES` unpacked.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_ZIP_ENTRIES:
                raise InvalidInput(
                    f"photo archive has {len(members)} files (limit {MAX_ZIP_ENTRIES})"
                )
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise InvalidInput("photo archive unpacks to more than 4 GB; split it")
            for member in members:
                name = PurePosixPath(member.filename.replace("\\", "/"))
                if name.is_absolute() or ".." in name.parts or not name.parts:
                    raise InvalidInput(f"photo archive entry {member.filename!r}: unsafe path")
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise InvalidInput(f"photo archive entry {member.filename!r}: a link")
            for member in members:
                name = PurePosixPath(member.filename.replace("\\", "/"))
                out = target.joinpath(*name.parts)
                out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with zf.open(member) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                out.chmod(0o600)
            return len(members)
    except zipfile.BadZipFile:
        raise InvalidInput("the photo archive is not a ZIP file (or it is damaged)") from None


def _write_record(folder: Path, job: ImportJob, roster: Path, finished: datetime) -> None:
    """Keep a checked dry run's job beside its upload (0600, written whole or not at all)."""
    record = {
        "id": job.id,
        "roster": roster.name,
        "roster_name": job.roster_name,
        "create_places": job.create_places,
        "created_by": job.created_by,
        "created_at": job.created_at.isoformat(),
        "finished_at": finished.isoformat(),
        "total": job.total,
        "done": job.done,
        "counts": job.counts,
        "problems": [[p.row, p.column, p.reason] for p in job.problems],
    }
    partial = folder / (KEPT_RECORD + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record, out, ensure_ascii=False)
    partial.replace(folder / KEPT_RECORD)


def _read_record(folder: Path) -> tuple[ImportJob, Path] | None:
    """The kept dry run recorded in ``folder``, or None (no record, or not a sound one)."""
    try:
        record = json.loads((folder / KEPT_RECORD).read_text(encoding="utf-8"))
        roster = folder / str(record["roster"])
        if record["id"] != folder.name or roster.parent != folder or not roster.is_file():
            return None
        job = ImportJob(
            id=str(record["id"]),
            dry_run=True,
            create_places=bool(record["create_places"]),
            created_by=str(record["created_by"]),
            created_at=datetime.fromisoformat(record["created_at"]),
            state=JobState.DONE,
            total=record["total"],
            done=int(record["done"]),
            counts={str(k): int(v) for k, v in record["counts"].items()},
            problems=[RowProblem(int(r), str(c), str(w)) for r, c, w in record["problems"]],
            finished_at=datetime.fromisoformat(record["finished_at"]),
            upload_kept=True,
            roster_name=str(record["roster_name"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return job, roster


class ImportJobs:
    """Runs uploaded roster imports one at a time in a background thread.

    The uploaded roster and photos are written under ``DATA_DIR/imports/<job>/`` (0700)
    and deleted when the job ends: face photos are kept only as the registry keeps them.
    A dry run's upload kept for "now import" stays there with its job's record
    (:data:`KEPT_RECORD`), so the offer survives a restart; it is deleted when it is
    imported or ``keep_s`` after the check, by a timer (also after a restart). Anything else
    found there at start (a job cut short by a stop) is deleted.
    """

    def __init__(
        self,
        data_dir: Path,
        service: RegistryService,
        options: Callable[[Path, bool, bool], ImportOptions],
        *,
        announce: Callable[[ImportJob], None] | None = None,
        keep_s: float = KEEP_CHECKED_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._root = data_dir / "imports"
        self._service = service
        self._options = options
        self._announce = announce
        self._keep_s = keep_s
        self._clock = clock
        self._jobs: dict[str, ImportJob] = {}
        #: Checked uploads kept for their real import: job id -> (folder, roster path).
        self._kept: dict[str, tuple[Path, Path]] = {}
        self._lock = threading.Lock()
        # One import at a time: two concurrent imports of one roster could both find a
        # person missing and add them twice.
        self._running = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._restore()

    def _restore(self) -> None:
        """Take back the kept checked uploads of before a restart; delete everything else
        under the imports folder (uploads of jobs a stop cut short hold face photos)."""
        if not self._root.is_dir():
            return
        for folder in sorted(self._root.iterdir()):
            found = _read_record(folder) if folder.is_dir() else None
            if found is None:
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    folder.unlink(missing_ok=True)
                continue
            job, roster = found
            with self._lock:
                self._jobs[job.id] = job
                self._kept[job.id] = (folder, roster)
            logger.info("import job %s: checked upload kept from before the restart", job.id)
        self._expire_kept()
        for job_id in list(self._kept):
            self._arm(self._jobs[job_id])

    def _arm(self, job: ImportJob) -> None:
        """Delete the kept upload when its time is up, even if nobody starts an import."""
        done = job.finished_at or self._clock()
        left = self._keep_s - (self._clock() - done).total_seconds()
        timer = threading.Timer(max(0.0, left) + 0.01, self._expire_kept)
        timer.daemon = True
        timer.name = f"import-expiry-{job.id[:8]}"
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def close(self) -> None:
        """Stop the expiry timers (the kept uploads stay on disk for the next start)."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def start(
        self,
        roster: bytes,
        roster_name: str,
        photos_zip: bytes | None,
        *,
        dry_run: bool,
        create_places: bool,
        actor: str,
        keep_checked: bool = False,
    ) -> ImportJob:
        """Start an import of an uploaded roster. ``keep_checked`` (dry runs only): keep the
        upload after the check for :meth:`start_checked`, at most :data:`KEEP_CHECKED_S`."""
        self._expire_kept()
        job = ImportJob(
            id=uuid.uuid4().hex,
            dry_run=dry_run,
            create_places=create_places,
            created_by=actor,
            created_at=datetime.now(UTC),
            upload_kept=dry_run and keep_checked,
            roster_name=roster_name,
        )
        folder = self._root / job.id
        folder.mkdir(parents=True, mode=0o700)
        try:
            roster_path = folder / ("roster" + _roster_suffix(roster, roster_name))
            roster_path.write_bytes(roster)
            photos = folder / "photos"
            photos.mkdir(mode=0o700)
            if photos_zip:
                archive = folder / "photos.zip"
                archive.write_bytes(photos_zip)
                unpack_photos(archive, photos)
                archive.unlink()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(
            target=self._run, args=(job, roster_path, photos, folder), name=f"import-{job.id[:8]}"
        )
        thread.daemon = True
        thread.start()
        return job

    def start_checked(self, job_id: str, *, actor: str) -> ImportJob:
        """The real import of a finished dry run's kept upload (its starter only): the rows
        that were checked are the rows imported, without uploading the files again."""
        self._expire_kept()
        checked = self.get(job_id)
        with self._lock:
            kept = self._kept.pop(job_id, None) if checked.created_by == actor else None
            checked.upload_kept = False
        if kept is None:
            raise NotFound(f"import job {job_id}: no checked upload kept (upload it again)")
        folder, roster_path = kept
        # The record goes first: a restart during the import must not offer it again.
        (folder / KEPT_RECORD).unlink(missing_ok=True)
        job = ImportJob(
            id=uuid.uuid4().hex,
            dry_run=False,
            create_places=checked.create_places,
            created_by=actor,
            created_at=datetime.now(UTC),
            roster_name=checked.roster_name,
        )
        moved = self._root / job.id
        folder.rename(moved)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(
            target=self._run,
            args=(job, moved / roster_path.name, moved / "photos", moved),
            name=f"import-{job.id[:8]}",
        )
        thread.daemon = True
        thread.start()
        return job

    def _expire_kept(self) -> None:
        """Delete checked uploads nobody imported in time (and their jobs' offer)."""
        now = self._clock()
        with self._lock:
            for job_id in list(self._kept):
                job = self._jobs.get(job_id)
                done = job.finished_at if job is not None else None
                if job is None or (
                    done is not None and (now - done).total_seconds() > self._keep_s
                ):
                    folder, _ = self._kept.pop(job_id)
                    shutil.rmtree(folder, ignore_errors=True)
                    if job is not None:
                        job.upload_kept = False

    def get(self, job_id: str) -> ImportJob:
        self._expire_kept()
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"import job {job_id} not found")
        return job

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished_at is not None]
        for job in sorted(finished, key=lambda j: j.created_at)[
            : max(0, len(self._jobs) - MAX_JOBS)
        ]:
            del self._jobs[job.id]
            kept = self._kept.pop(job.id, None)
            if kept is not None:
                shutil.rmtree(kept[0], ignore_errors=True)

    def _progress(self, job: ImportJob, n: int) -> None:
        job.done += n
        if self._announce is not None:
            self._announce(job)

    def _run(self, job: ImportJob, roster: Path, photos: Path, folder: Path) -> None:
        try:
            with self._running:
                job.state = JobState.RUNNING
                report = import_roster(
                    roster,
                    self._service,
                    self._options(photos, job.dry_run, job.create_places),
                    progress=lambda n: self._progress(job, n),
                    on_total=lambda n: setattr(job, "total", n),
                )
            job.counts = {s.value: report.count(s) for s in RowStatus}
            job.problems = list(report.problems)
            job.state = JobState.DONE
        except (RosterFileError, InvalidInput, ValueError) as exc:
            job.error = str(exc).replace(str(folder), "upload")
            job.state = JobState.FAILED
        except Exception as exc:
            logger.error("import job %s failed (%s)", job.id, type(exc).__name__)
            logger.debug("import job failure", exc_info=exc)
            job.error = f"internal error ({type(exc).__name__}); nothing more was imported"
            job.state = JobState.FAILED
        finally:
            finished = self._clock()
            kept = job.upload_kept and job.state is JobState.DONE
            if kept:
                try:
                    _write_record(folder, job, roster, finished)
                except OSError as exc:
                    logger.error("import job %s: checked upload not kept (%s)", job.id, exc)
                    kept = False
            if kept:
                with self._lock:
                    self._kept[job.id] = (folder, roster)
            else:
                job.upload_kept = False
                shutil.rmtree(folder, ignore_errors=True)
            # Set last: a caller waiting for the end sees the upload kept or gone.
            job.finished_at = finished
            if kept:
                self._arm(job)
            if self._announce is not None:
                self._announce(job)
