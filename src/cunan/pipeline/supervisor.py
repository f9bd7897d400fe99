"""Worker processes: one spawned process per camera, restarted with backoff when it crashes,
and the worker loop that runs the cameras this host holds leases on."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Protocol

from cunan.pipeline.build import THREAD_ENV
from cunan.pipeline.cameras import CameraRecord
from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.store import CameraStore

logger = logging.getLogger(__name__)

#: A process that ran this long before dying is "healthy again": its backoff restarts.
HEALTHY_RUN_S = 60.0
#: Exit code of a camera process whose live source ended without a stop request: the
#: supervisor restarts it (exit code 0 means "done": a file that was analysed to its end).
EXIT_SOURCE_ENDED = 75
#: A worker that could not renew its leases for this fraction of a lease period stops its
#: cameras: another worker may take them over once the leases expire.
LEASE_SAFETY_FRACTION = 0.8
#: How often a camera process checks that its parent is still alive.
PARENT_CHECK_S = 1.0


class StopSignal(Protocol):
    """What a camera process polls to know it should stop (:class:`StopFlag`, or a
    ``threading.Event`` in-process)."""

    def is_set(self) -> bool: ...


class StopFlag:
    """A stop request shared with a spawned process: one byte of shared memory, no lock.

    ``multiprocessing.Event`` takes a lock in ``is_set()`` and ``set()``: a camera process
    killed (SIGKILL, OOM) while polling can die holding it, and the supervisor's ``set()``
    would then wait forever. Writing and reading one byte cannot block.
    """

    def __init__(self, ctx: BaseContext) -> None:
        self._flag = ctx.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._flag.value = True

    def is_set(self) -> bool:
        return bool(self._flag.value)


def watch_parent(
    stop: StopSignal,
    on_orphaned: Callable[[], None],
    *,
    parent_pid: int | None = None,
    interval_s: float = PARENT_CHECK_S,
) -> None:
    """Until ``stop`` is set: call ``on_orphaned`` once the parent process has died (the
    parent pid changes when the process is re-parented), then return."""
    import os

    parent = parent_pid if parent_pid is not None else os.getppid()
    # Polled: the stop flag has nothing to wait on (see StopFlag).
    while not stop.is_set():
        time.sleep(interval_s)
        if os.getppid() != parent:
            logger.warning("parent process %d is gone: stopping", parent)
            on_orphaned()
            return


def camera_process_main(data_dir: str, camera_id: int, stop: StopSignal) -> None:
    """Entry point of a camera process: open the registry, run the camera until ``stop``."""
    import os
    import signal

    for name in THREAD_ENV:
        os.environ.setdefault(name, "1")
    # The supervisor stops us through ``stop``; Ctrl-C on the terminal reaches the whole
    # process group, and the parent handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from cunan.app import CunanApp
    from cunan.audit.log import system_actor
    from cunan.config import load_settings
    from cunan.lifetime import die_with_parent
    from cunan.pipeline.build import build_runner, target_for_camera

    parent = os.getppid()
    # Polling the parent (below) stops a camera within a second; this also covers a parent
    # killed while this process is still starting up.
    die_with_parent(parent)
    # The installation as the server opens it: the settings an administrator changed from
    # the web (thresholds) apply to the cameras too; the pipeline acts as "system".
    app = CunanApp.open(load_settings(), Path(data_dir), actor=system_actor())
    try:
        camera = app.cameras.get(camera_id)
        camera.require_notice()
        runner = build_runner(app.registry, app.settings, target_for_camera(camera), camera=camera)

        def watch_stop() -> None:
            # Polled: the stop flag has nothing to wait on (see StopFlag).
            while not stop.is_set():
                time.sleep(0.2)
            runner.stop()

        stopper = threading.Thread(target=watch_stop, daemon=True, name="stop-watch")
        stopper.start()
        # A camera must not outlive its worker (killed -9, crashed): its lease expires and
        # another worker would run the same camera twice.
        orphan = threading.Thread(
            target=watch_parent,
            args=(stop, runner.stop),
            kwargs={"parent_pid": parent},
            daemon=True,
            name="parent-watch",
        )
        orphan.start()
        runner.run()
    finally:
        app.close()
    if not stop.is_set() and runner.reader.spec.kind.live:
        # A live source never ends on its own: restart it (exit code 0 is "done").
        raise SystemExit(EXIT_SOURCE_ENDED)


@dataclass(slots=True)
class _Child:
    process: BaseProcess | None
    stop: StopFlag | None
    started: float
    failures: int
    next_start: float
    #: The process exited cleanly (a file analysed to its end): not restarted while wanted.
    done: bool = False


class CameraSupervisor:
    """Keeps one process per wanted camera alive, restarting crashed ones with backoff."""

    def __init__(
        self,
        data_dir: Path,
        *,
        target: Callable[..., None] = camera_process_main,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        stop_timeout_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        #: Monotonic seconds for the backoff schedule (tests pass a clock they move).
        self.clock = clock
        self.target = target
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._children: dict[int, _Child] = {}
        self.restarts = 0

    def running(self) -> set[int]:
        return {
            cid
            for cid, c in self._children.items()
            if c.process is not None and c.process.is_alive()
        }

    def ensure(self, camera_ids: set[int]) -> None:
        """Run exactly ``camera_ids``: start the missing, stop the others, restart the dead."""
        for camera_id in set(self._children) - camera_ids:
            self._stop_child(camera_id)
        now = self.clock()
        for camera_id in camera_ids:
            child = self._children.get(camera_id)
            if child is None:
                child = self._children[camera_id] = _Child(None, None, now, 0, now)
            process = child.process
            if child.done or (process is not None and process.is_alive()):
                continue
            if process is not None and process.exitcode == 0:
                # A clean exit: the source ended (a file camera analysed to its end).
                # Restarting would analyse the file again under a new run key, storing every
                # sighting twice; it runs again only after it is stopped and wanted anew.
                logger.info("camera %d: process finished (source ended); not restarted", camera_id)
                child.done = True
                continue
            if process is not None:
                # It died without being asked to: back off, then restart.
                ran = now - child.started
                child.failures = 1 if ran >= HEALTHY_RUN_S else child.failures + 1
                delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (child.failures - 1))
                child.next_start = now + delay
                logger.warning(
                    "camera %d: process exited (code %s) after %.0f s; restarting in %.1f s",
                    camera_id,
                    process.exitcode,
                    ran,
                    delay,
                )
                child.process = None
            if now >= child.next_start:
                self._start(camera_id, child)

    def _start(self, camera_id: int, child: _Child) -> None:
        stop = StopFlag(self._ctx)
        process = self._ctx.Process(
            target=self.target,
            args=(str(self.data_dir), camera_id, stop),
            name=f"cunan-camera-{camera_id}",
            daemon=True,
        )
        process.start()
        if child.process is None and child.failures:
            self.restarts += 1
        child.process, child.stop, child.started = process, stop, self.clock()
        logger.info("camera %d: process %s started", camera_id, process.pid)

    def _stop_child(self, camera_id: int) -> None:
        child = self._children.pop(camera_id)
        if child.process is None:
            return
        if child.stop is not None and child.process.is_alive():
            child.stop.set()
        child.process.join(self.stop_timeout_s)
        if child.process.is_alive():
            logger.warning("camera %d: process did not stop in time; terminating", camera_id)
            child.process.terminate()
            child.process.join(5.0)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(5.0)

    def stop_all(self) -> None:
        for camera_id in list(self._children):
            self._stop_child(camera_id)


class Worker:
    """``cunan worker``: claims cameras through leases and keeps their processes running."""

    def __init__(
        self,
        cameras: CameraStore,
        leases: CameraLeases,
        supervisor: CameraSupervisor,
        *,
        max_cameras: int | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.cameras = cameras
        self.leases = leases
        self.supervisor = supervisor
        self.max_cameras = max_cameras
        # Renew three times per lease period: one missed renewal does not lose a camera.
        self.interval_s = interval_s or leases.period.total_seconds() / 3
        self._warned: set[int] = set()
        self._renewed_at = time.monotonic()
        self._cameras_stopped = False

    def eligible(self) -> list[CameraRecord]:
        ready = []
        for camera in self.cameras.list(enabled_only=True):
            if not camera.public_notice_posted:
                if camera.id not in self._warned:
                    self._warned.add(camera.id)
                    logger.warning(
                        "camera %s: not started, public notice not recorded as posted",
                        camera.name,
                    )
                continue
            ready.append(camera)
        return ready

    def step(self) -> set[int]:
        """Renew, claim, start/stop processes; returns the cameras this worker runs."""
        self.leases.renew()
        self._renewed_at = time.monotonic()
        self._cameras_stopped = False
        eligible = {c.id for c in self.eligible()}
        held = self.leases.claim(sorted(eligible), limit=self.max_cameras)
        unwanted = held - eligible
        if unwanted:
            self.leases.release(unwanted)
        wanted = held & eligible
        self.supervisor.ensure(wanted)
        return wanted

    def _check_lease_safety(self) -> None:
        """...unless the leases could not be renewed for most of a period: then stop the
        cameras, before the leases expire and another worker starts the same cameras."""
        unrenewed = time.monotonic() - self._renewed_at
        limit = LEASE_SAFETY_FRACTION * self.leases.period.total_seconds()
        if unrenewed < limit or self._cameras_stopped:
            return
        logger.error(
            "worker: leases not renewed for %.0f s (lease period %.0f s); stopping the "
            "cameras until the database answers again",
            unrenewed,
            self.leases.period.total_seconds(),
        )
        self.supervisor.ensure(set())
        self._cameras_stopped = True

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:
                    # A database hiccup must not kill the worker: the children keep running
                    # and the leases are retried next round (they last a whole period)...
                    logger.exception("worker: lease round failed; retrying")
                    self._check_lease_safety()
                stop.wait(self.interval_s)
        finally:
            self.supervisor.stop_all()
            try:
                self.leases.release()
            except Exception:  # noqa: BLE001 - shutting down: expiry frees them anyway
                logger.warning("worker: could not release leases (they will expire)")
