"""The worker: real camera processes (spawn), supervised and restarted with backoff."""

from __future__ import annotations

import threading
import time

import pytest

from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.store import CameraStore, SightingStore
from cunan.pipeline.supervisor import CameraSupervisor, Worker
from cunan.registry.datadir import Registry
from tests.conftest import require_data
from tests.pipeline.lease_worker import crashing_camera


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
