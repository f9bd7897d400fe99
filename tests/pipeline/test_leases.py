"""Camera leases on SQLite and PostgreSQL: sharing, expiry, takeover after a worker is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.store import CameraStore
from cunan.storage.database import Database
from cunan.storage.errors import ConstraintViolationError
from cunan.storage.lease_repository import LeaseRepository
from cunan.storage.migrate import upgrade
from tests.storage.dbfixtures import db_url, wipe

__all__ = ["db_url"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database.open(db_url, connect_timeout_s=3)
    upgrade(db)
    try:
        yield db
    finally:
        wipe(db)
        db.dispose()


@pytest.fixture
def cameras(database: Database) -> list[int]:
    store = CameraStore(database)
    return [
        store.add(f"cam{i}", f"rtsp://127.0.0.1/{i}", public_notice_posted=True) for i in range(4)
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_two_workers_share_and_take_over(database: Database, cameras: list[int]) -> None:
    clock = FakeClock()
    a = CameraLeases(database, holder="a", period_s=10, clock=clock)
    b = CameraLeases(database, holder="b", period_s=10, clock=clock)
    assert a.claim(cameras, limit=2) == set(cameras[:2])
    assert b.claim(cameras) == set(cameras[2:])  # a's cameras are taken
    clock.advance(6)
    assert a.renew() == set(cameras[:2])
    clock.advance(6)  # b did not renew: its leases expired, a's did not
    assert b.held() == set()
    assert a.claim(cameras) == set(cameras)
    assert b.renew() == set()  # an expired lease is not renewed once taken
    holders = a.holders()
    assert {h for h, _ in holders.values()} == {"a"}


def test_a_dead_workers_cameras_move_after_one_period(
    database: Database, cameras: list[int]
) -> None:
    clock = FakeClock()
    a = CameraLeases(database, holder="a", period_s=10, clock=clock)
    b = CameraLeases(database, holder="b", period_s=10, clock=clock)
    a.claim(cameras)
    clock.advance(9.9)
    assert b.claim(cameras) == set()  # still a's
    clock.advance(0.2)
    assert b.claim(cameras) == set(cameras)


def test_release_frees_cameras_at_once(database: Database, cameras: list[int]) -> None:
    a = CameraLeases(database, holder="a", period_s=60)
    b = CameraLeases(database, holder="b", period_s=60)
    a.claim(cameras)
    a.release([cameras[0]])
    assert b.claim(cameras) == {cameras[0]}
    a.release()
    assert b.claim(cameras) == set(cameras)


def test_removed_camera_loses_its_lease(database: Database, cameras: list[int]) -> None:
    a = CameraLeases(database, holder="a", period_s=60)
    a.claim(cameras)
    CameraStore(database).remove(cameras[0])
    assert a.held() == set(cameras[1:])


def test_first_lease_of_a_camera_is_inserted_once(database: Database, cameras: list[int]) -> None:
    # Two workers that both found no lease row insert one each: the primary key lets one win,
    # and a camera removed meanwhile gets none.
    clock = FakeClock()
    until = clock.now + timedelta(seconds=10)
    with database.transaction() as session:
        LeaseRepository(session).insert(cameras[0], holder="a", now=clock.now, until=until)
    with pytest.raises(ConstraintViolationError), database.transaction() as session:
        LeaseRepository(session).insert(cameras[0], holder="b", now=clock.now, until=until)
    CameraStore(database).remove(cameras[1])
    with pytest.raises(ConstraintViolationError), database.transaction() as session:
        LeaseRepository(session).insert(cameras[1], holder="b", now=clock.now, until=until)
    assert CameraLeases(database, holder="a", period_s=10, clock=clock).holders() == {
        cameras[0]: ("a", until)
    }


def _start_worker(url: str, lease_s: float, max_cameras: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline.lease_worker", url, str(lease_s), str(max_cameras)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_killed_worker_process_loses_its_cameras(
    database: Database, cameras: list[int], db_url: str
) -> None:
    if database.is_sqlite:
        pytest.skip("district workers share PostgreSQL; SQLite is one host's database")
    leases = CameraLeases(database, holder="observer", period_s=1)
    # Long enough that a busy machine's scheduling delays do not expire a live worker's
    # leases between its renewals (every lease_s / 3).
    lease_s = 6.0
    first = _start_worker(db_url, lease_s, 2)
    second: subprocess.Popen[bytes] | None = None
    try:
        assert first.stdout is not None
        holder_a = first.stdout.readline().decode().strip()

        def held_by(holder: str) -> set[int]:
            return {c for c, (h, _) in leases.holders().items() if h == holder}

        assert _wait_for(lambda: len(held_by(holder_a)) == 2, 60)
        second = _start_worker(db_url, lease_s, 0)
        assert second.stdout is not None
        holder_b = second.stdout.readline().decode().strip()

        def shared() -> bool:
            # One combined condition, read from one snapshot of the lease table.
            holders = leases.holders()
            a = {c for c, (h, _) in holders.items() if h == holder_a}
            b = {c for c, (h, _) in holders.items() if h == holder_b}
            return len(a) == 2 and len(b) == 2 and a | b == set(cameras)

        assert _wait_for(shared, 60)
        os.killpg(first.pid, signal.SIGKILL)  # no clean release: the leases must expire
        first.wait(10)
        # The survivor renews every lease_s / 3 and takes the rest once they expire.
        assert _wait_for(lambda: held_by(holder_b) == set(cameras), 10 * lease_s)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
