"""A ``cunan worker`` without video, for the lease tests: the real Worker loop and leases, a
supervisor that only records which cameras it would run.

Run as ``python -m tests.pipeline.lease_worker DB_URL LEASE_S MAX_CAMERAS``.
"""

from __future__ import annotations

import sys
import threading

from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.store import CameraStore
from cunan.pipeline.supervisor import CameraSupervisor, StopSignal, Worker
from cunan.storage.database import Database


class RecordingSupervisor(CameraSupervisor):
    def __init__(self) -> None:
        self.wanted: set[int] = set()

    def ensure(self, camera_ids: set[int]) -> None:
        self.wanted = set(camera_ids)

    def stop_all(self) -> None:
        self.wanted = set()


def stopping_camera(data_dir: str, camera_id: int, stop: StopSignal) -> None:
    """A camera process that polls its stop flag and records that it saw it."""
    import time
    from pathlib import Path

    marker = Path(data_dir) / f"running-{camera_id}"
    marker.write_text("running\n")
    while not stop.is_set():
        time.sleep(0.02)
    marker.write_text("stopped\n")


def main() -> None:
    url, lease_s, max_cameras = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    database = Database.open(url)
    leases = CameraLeases(database, period_s=lease_s)
    worker = Worker(
        CameraStore(database), leases, RecordingSupervisor(), max_cameras=max_cameras or None
    )
    print(leases.holder, flush=True)
    worker.run(threading.Event())


if __name__ == "__main__":
    main()


def crashing_camera(data_dir: str, camera_id: int, stop: object) -> None:
    """A camera process that crashes at once (for the restart test)."""
    import os

    os._exit(3)


def finishing_camera(data_dir: str, camera_id: int, stop: object) -> None:
    """A camera process whose file ended: it records its start and exits cleanly (code 0)."""
    from pathlib import Path

    with (Path(data_dir) / f"starts-{camera_id}").open("a") as out:
        out.write("started\n")
