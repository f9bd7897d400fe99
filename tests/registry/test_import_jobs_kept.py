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
