"""The worker: real camera processes (spawn), supervised and restarted with backoff."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.store import CameraStore, SightingStore
from cunan.pipeline.supervisor import CameraSupervisor, Worker
from cunan.registry.datadir import Registry
from tests.conftest import require_data
from tests.pipeline.lease_worker import RecordingSupervisor, crashing_camera, finishing_camera


def test_crashed_camera_process_is_restarted_with_backoff(registry: Registry) -> None:
    supervisor = CameraSupervisor(
        registry.data_dir, target=crashing_camera, backoff_initial_s=0.2, backoff_max_s=0.4
    )
    try:
        end = time.monotonic() + 60
        while supervisor.restarts < 2 and time.monotonic() < end:
            supervisor.ensure({1})
            time.sleep(0.1)
        assert supervisor.restarts >= 2
    finally:
        supervisor.stop_all()
    assert supervisor.running() == set()


def test_cleanly_finished_file_camera_is_not_restarted(registry: Registry) -> None:
    supervisor = CameraSupervisor(
        registry.data_dir, target=finishing_camera, backoff_initial_s=0.01, backoff_max_s=0.01
    )
    try:
        supervisor.ensure({1})
        end = time.monotonic() + 60
        while supervisor.running() and time.monotonic() < end:
            time.sleep(0.05)
        assert supervisor.running() == set()
        for _ in range(20):  # a crashed process would be restarted on these rounds
            supervisor.ensure({1})
            time.sleep(0.02)
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


def test_watch_parent_notices_a_new_parent() -> None:
    from cunan.pipeline.supervisor import watch_parent

    stop = threading.Event()
    orphaned = threading.Event()
    # A parent pid that is not ours: as after the real parent died and we were re-parented.
    thread = threading.Thread(
        target=watch_parent,
        args=(stop, orphaned.set),
        kwargs={"parent_pid": -1, "interval_s": 0.01},
        daemon=True,
    )
    thread.start()
    assert orphaned.wait(60)
    thread.join(60)
    stop.set()
    calm = threading.Event()
    stop2 = threading.Event()
    thread2 = threading.Thread(
        target=watch_parent, args=(stop2, calm.set), kwargs={"interval_s": 0.01}, daemon=True
    )
    thread2.start()
    time.sleep(0.2)
    stop2.set()
    thread2.join(60)
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
