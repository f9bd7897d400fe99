"""The worker: real camera processes (spawn), supervised and restarted with backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.store import CameraStore, SightingStore
from cunan.pipeline.supervisor import CameraSupervisor, Worker
from cunan.registry.datadir import Registry
from tests.conftest import require_data
from tests.pipeline.lease_worker import RecordingSupervisor, crashing_camera, finishing_camera


class FakeClock:
    """Monotonic seconds that move only when the test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for an event in another process (bounded; no assertion about how long)."""
    end = time.monotonic() + 60
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"waited 60 s for {what}")
        time.sleep(0.01)


def test_crashed_camera_process_is_restarted_with_backoff(registry: Registry) -> None:
    clock = FakeClock()
    supervisor = CameraSupervisor(
        registry.data_dir,
        target=crashing_camera,
        backoff_initial_s=0.2,
        backoff_max_s=0.4,
        clock=clock,
    )

    def crashed() -> None:
        _until(lambda: not supervisor.running(), "the camera process to crash")
        supervisor.ensure({1})  # notices the crash and schedules the restart

    def restarted_after(delay: float, count: int) -> None:
        clock.now += delay - 0.01
        supervisor.ensure({1})
        assert supervisor.restarts == count - 1  # not a moment early
        clock.now += 0.02
        supervisor.ensure({1})
        assert supervisor.restarts == count

    try:
        supervisor.ensure({1})
        crashed()
        restarted_after(0.2, 1)  # backoff_initial_s
        crashed()
        restarted_after(0.4, 2)  # doubled
        crashed()
        restarted_after(0.4, 3)  # capped at backoff_max_s
    finally:
        supervisor.stop_all()
    assert supervisor.running() == set()


def test_cleanly_finished_file_camera_is_not_restarted(registry: Registry) -> None:
    clock = FakeClock()
    supervisor = CameraSupervisor(
        registry.data_dir,
        target=finishing_camera,
        backoff_initial_s=0.01,
        backoff_max_s=0.01,
        clock=clock,
    )
    try:
        supervisor.ensure({1})
        _until(lambda: not supervisor.running(), "the file camera to finish")
        for _ in range(5):  # a crashed process would be restarted on these rounds
            clock.now += 100
            supervisor.ensure({1})
        assert supervisor.restarts == 0
        assert supervisor.running() == set()
    finally:
        supervisor.stop_all()
    assert (registry.data_dir / "starts-1").read_text().splitlines() == ["started"]


def test_worker_stops_its_cameras_when_leases_cannot_be_renewed(registry: Registry) -> None:
    import sqlite3

    from sqlalchemy import make_url

    from cunan.storage.database import Database

    url = registry.database.url
    store = CameraStore(registry.database)
    camera = store.add("gate", "rtsp://127.0.0.1/1", public_notice_posted=True)
    impatient = Database.open(url, busy_timeout_s=0.1)
    supervisor = RecordingSupervisor()
    worker = Worker(
        CameraStore(impatient),
        CameraLeases(impatient, period_s=2.0),
        supervisor,
        interval_s=0.1,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()

    def wait(condition: object, what: str) -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if callable(condition) and condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"waited 60 s for {what}")

    path = make_url(url).database
    assert path
    locker = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        wait(lambda: supervisor.wanted == {camera}, "the camera to start")
        locker.execute("BEGIN EXCLUSIVE")  # the database is "down": renewals fail
        wait(lambda: supervisor.wanted == set(), "the cameras to stop")
        locker.execute("COMMIT")
        wait(lambda: supervisor.wanted == {camera}, "the camera to start again")
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        stop.set()
        thread.join(60)
        impatient.dispose()
    assert not thread.is_alive()


class StopAfter:
    """A stop flag that is set after ``rounds`` checks: a loop runs exactly that often."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def is_set(self) -> bool:
        self.rounds -= 1
        return self.rounds < 0


def test_watch_parent_notices_a_new_parent() -> None:
    from cunan.pipeline.supervisor import watch_parent

    # A parent pid that is not ours: as after the real parent died and we were re-parented.
    orphaned = threading.Event()
    watch_parent(StopAfter(100), orphaned.set, parent_pid=-1, interval_s=0)
    assert orphaned.is_set()
    # With the parent alive, 100 rounds of checking never call it orphaned.
    calm = threading.Event()
    watch_parent(StopAfter(100), calm.set, interval_s=0)
    assert not calm.is_set()


@pytest.mark.slow
def test_worker_runs_enabled_cameras_in_processes(registry: Registry) -> None:
    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    store = CameraStore(registry.database)
    running = store.add("stage", str(clip), public_notice_posted=True)
    store.add("no-notice", str(clip), public_notice_posted=False)
    store.add("off", str(clip), public_notice_posted=True, enabled=False)
    worker = Worker(
        store,
        CameraLeases(registry.database, period_s=6),
        CameraSupervisor(registry.data_dir),
        interval_s=0.5,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    sightings = SightingStore(registry.database, registry.service.cipher)
    try:
        end = time.monotonic() + 90
        while not sightings.list() and time.monotonic() < end:
            assert worker.supervisor.running() <= {running}
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    rows = sightings.list()
    assert rows and {r.camera_id for r in rows} == {running}
    assert CameraLeases(registry.database).holders() == {}  # released on a clean stop


def test_a_camera_process_sees_its_stop_flag_and_exits_cleanly(tmp_path: Path) -> None:
    from tests.pipeline.lease_worker import stopping_camera

    supervisor = CameraSupervisor(tmp_path, target=stopping_camera, stop_timeout_s=30.0)
    supervisor.ensure({7})
    marker = tmp_path / "running-7"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "running\n"
    supervisor.stop_all()
    # Stopped through the shared flag (not terminated after the timeout): the process ran
    # its own exit path.
    assert marker.read_text() == "stopped\n"
