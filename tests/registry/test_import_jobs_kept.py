"""A checked upload is kept for the real import started from the import page: used once, by
its starter only, and deleted when it expires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cunan.errors import NotFound
from cunan.registry.import_jobs import KEEP_CHECKED_S, ImportJob, ImportJobs, JobState
from cunan.registry.importer import ImportOptions
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade

HEADER = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期,非人脸核验\n"
ROSTER = (HEADER + "李一,,户籍,桃源村1号,,,,,,看身份证\n").encode("utf-8")
#: Hang guard only: no timing is asserted.
DEADLINE_S = 120.0


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[ImportJobs]:
    database = Database.open(sqlite_url(tmp_path))
    upgrade(database)
    service = RegistryService(database, FieldCipher(KeyRing.generate()))
    village = service.add_village("桃源村")
    service.add_house(village, "桃源村1号")

    def options(photos: Path, dry_run: bool, create_places: bool) -> ImportOptions:
        return ImportOptions(photos_dir=photos, dry_run=dry_run, workers=1)

    yield ImportJobs(tmp_path / "data", service, options)
    database.dispose()


def _finished(jobs: ImportJobs, job: ImportJob) -> ImportJob:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if job.finished_at is not None:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.id} did not finish")


def _uploads(jobs: ImportJobs, tmp_path: Path) -> list[str]:
    root = tmp_path / "data" / "imports"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_checked_upload_is_imported_once_by_its_starter(jobs: ImportJobs, tmp_path: Path) -> None:
    checked = _finished(
        jobs,
        jobs.start(
            ROSTER,
            "r.csv",
            None,
            dry_run=True,
            create_places=False,
            actor="user:2",
            keep_checked=True,
        ),
    )
    assert checked.state is JobState.DONE and checked.upload_kept
    assert _uploads(jobs, tmp_path) == [checked.id]
    with pytest.raises(NotFound):
        jobs.start_checked(checked.id, actor="user:3")
    real = _finished(jobs, jobs.start_checked(checked.id, actor="user:2"))
    assert not real.dry_run and real.state is JobState.DONE, real.error
    assert real.counts.get("imported") == 1 and real.roster_name == "r.csv", real.problems
    # Used once: nothing kept, nothing left on disk.
    assert not checked.upload_kept and _uploads(jobs, tmp_path) == []
    with pytest.raises(NotFound):
        jobs.start_checked(checked.id, actor="user:2")


def test_an_unused_checked_upload_expires_and_is_deleted(jobs: ImportJobs, tmp_path: Path) -> None:
    checked = _finished(
        jobs,
        jobs.start(
            ROSTER,
            "r.csv",
            None,
            dry_run=True,
            create_places=False,
            actor="user:2",
            keep_checked=True,
        ),
    )
    assert _uploads(jobs, tmp_path) == [checked.id]
    assert checked.finished_at is not None
    checked.finished_at -= timedelta(seconds=KEEP_CHECKED_S + 1)
    with pytest.raises(NotFound):
        jobs.start_checked(checked.id, actor="user:2")
    assert not checked.upload_kept and _uploads(jobs, tmp_path) == []


def test_plain_dry_runs_and_imports_keep_nothing(jobs: ImportJobs, tmp_path: Path) -> None:
    dry = _finished(
        jobs, jobs.start(ROSTER, "r.csv", None, dry_run=True, create_places=False, actor="a")
    )
    assert not dry.upload_kept and _uploads(jobs, tmp_path) == []
    with pytest.raises(NotFound):
        jobs.start_checked(dry.id, actor="a")


def _options(photos: Path, dry_run: bool, create_places: bool) -> ImportOptions:
    return ImportOptions(photos_dir=photos, dry_run=dry_run, workers=1)


def _checked(jobs: ImportJobs) -> ImportJob:
    return _finished(
        jobs,
        jobs.start(
            ROSTER + "王二,,户籍,无此地址,,,,,,看身份证\n".encode(),
            "r.csv",
            None,
            dry_run=True,
            create_places=False,
            actor="user:2",
            keep_checked=True,
        ),
    )


def test_a_checked_upload_survives_a_restart_with_its_report(
    jobs: ImportJobs, tmp_path: Path
) -> None:
    checked = _checked(jobs)
    assert checked.problems and _uploads(jobs, tmp_path) == [checked.id]
    jobs.close()
    # A new process: only the data dir is left.
    again = ImportJobs(tmp_path / "data", jobs._service, _options)
    try:
        restored = again.get(checked.id)
        assert restored.dry_run and restored.upload_kept and restored.state is JobState.DONE
        assert restored.counts == checked.counts and restored.problems == checked.problems
        assert restored.roster_name == "r.csv" and restored.created_by == "user:2"
        with pytest.raises(NotFound):
            again.start_checked(checked.id, actor="user:3")
        real = _finished(again, again.start_checked(checked.id, actor="user:2"))
        assert real.state is JobState.DONE and real.counts.get("imported") == 1, real.problems
        # Imported: the upload and its record are gone; another restart offers nothing.
        assert _uploads(again, tmp_path) == []
    finally:
        again.close()
    third = ImportJobs(tmp_path / "data", jobs._service, _options)
    with pytest.raises(NotFound):
        third.get(checked.id)
    third.close()


def test_a_kept_upload_expires_across_a_restart_and_leftovers_are_deleted(
    jobs: ImportJobs, tmp_path: Path
) -> None:
    checked = _checked(jobs)
    jobs.close()
    # A job a stop cut short left its upload (photos included) without a record.
    cut = tmp_path / "data" / "imports" / "0123abcd"
    (cut / "photos").mkdir(parents=True)
    (cut / "photos" / "face.jpg").write_bytes(b"\xff\xd8")
    assert checked.finished_at is not None
    later = checked.finished_at + timedelta(seconds=KEEP_CHECKED_S + 1)
    again = ImportJobs(tmp_path / "data", jobs._service, _options, clock=lambda: later)
    try:
        assert _uploads(again, tmp_path) == []
        assert not again.get(checked.id).upload_kept
        with pytest.raises(NotFound):
            again.start_checked(checked.id, actor="user:2")
    finally:
        again.close()


def test_a_kept_upload_is_deleted_when_its_time_is_up_without_any_request(
    jobs: ImportJobs, tmp_path: Path
) -> None:
    short = ImportJobs(tmp_path / "data", jobs._service, _options, keep_s=0.5)
    try:
        checked = _checked(short)
        assert checked.upload_kept
        # Nobody calls anything: the expiry timer alone deletes it (polled; no timing asserted).
        end = time.monotonic() + DEADLINE_S
        while _uploads(short, tmp_path) and time.monotonic() < end:
            time.sleep(0.05)
        assert _uploads(short, tmp_path) == [] and not checked.upload_kept
    finally:
        short.close()
