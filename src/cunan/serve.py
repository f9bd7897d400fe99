"""``cunan serve``: everything a village installation runs, in one process.

- the camera worker (``cunan worker``: leases, one spawned process per camera);
- the case consumer (cases from the ``sighting.decided`` events in the outbox); known
  sightings close the person's "please confirm" tasks at once
  (``NotSeenReconciler.on_sighting``);
- the daily duties (retention purge, not-seen reconciliation, face-data counter) on the
  scheduler, at ``duties.daily_at`` in ``duties.timezone``.

SIGINT or SIGTERM stops everything cleanly: camera processes store their open tracks and
exit, leases are released, the threads are joined, and the exit code is 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Annotated

import typer

from cunan.cliutil import OPEN_ERRORS, DataDirOption, user_errors
from cunan.config import load_settings
from cunan.registry.datadir import open_registry, resolve_data_dir

logger = logging.getLogger(__name__)


def serve_command(
    data_dir: DataDirOption = None,
    lease_s: Annotated[
        float,
        typer.Option("--lease-s", help="Camera lease period (see 'cunan worker')."),
    ] = 30.0,
    max_cameras: Annotated[
        int | None, typer.Option(help="At most this many cameras on this host.")
    ] = None,
) -> None:
    """Run the village installation: cameras, case grouping and the daily duties.

    One process runs the camera worker, groups unknown sightings into cases, closes the
    "please confirm" tasks of tenants who are seen, and runs the daily purge,
    reconciliation and face-data count. Stop it with Ctrl-C or SIGTERM. The web UI is not
    part of it yet (it comes later).
    """
    from cunan.cases.consumer import CaseConsumer
    from cunan.cases.service import CaseService
    from cunan.duties.daily import Duties
    from cunan.duties.scheduler import Scheduler
    from cunan.notify.deadletters import DeadLetterStore
    from cunan.notify.dispatcher import NotificationDispatcher
    from cunan.notify.settings import build_notifiers
    from cunan.pipeline.build import limit_threads
    from cunan.pipeline.leases import CameraLeases
    from cunan.pipeline.store import CameraStore, EventOutbox
    from cunan.pipeline.supervisor import CameraSupervisor, Worker

    with user_errors(*OPEN_ERRORS):
        settings = load_settings()
        registry = open_registry(resolve_data_dir(data_dir, settings), settings)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # The handler only records the signal: it runs in the main thread between bytecodes,
    # possibly while that thread holds ``stop``'s internal lock (setting the event from the
    # handler can deadlock). The main loop below sees the flag and sets ``stop``.
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    threads: list[threading.Thread] = []
    failed = False
    scheduler: Scheduler | None = None
    consumer: CaseConsumer | None = None
    try:
        for sig in previous:
            signal.signal(sig, on_signal)
        limit_threads()
        duties = Duties.build(registry.database, registry.service, settings.duties)
        # Case alerts go to the configured channels (none by default: nothing leaves the
        # machine until a channel is set); undeliverable ones land in the dead-letter list.
        channels = build_notifiers(settings.notify)
        dispatcher = (
            NotificationDispatcher(channels, dead_letters=DeadLetterStore(registry.database))
            if channels
            else None
        )
        cases = CaseService(
            registry.database,
            registry.service.cipher,
            registry.service,
            settings.cases,
            dispatcher=dispatcher,
        )
        consumer = CaseConsumer(
            cases, EventOutbox(registry.database), on_known=duties.reconciler.on_sighting
        )
        worker = Worker(
            CameraStore(registry.database),
            CameraLeases(registry.database, period_s=lease_s),
            CameraSupervisor(registry.data_dir),
            max_cameras=max_cameras,
        )
        scheduler = Scheduler(settings.duties.zone)
        duties.register(scheduler)
        threads = [
            threading.Thread(target=worker.run, args=(stop,), name="cunan-worker"),
            threading.Thread(target=consumer.run, args=(stop,), name="cunan-cases"),
        ]
        for thread in threads:
            thread.start()
        scheduler.start()
        logger.info("serve: running (%s)", registry.data_dir)
        while not received and all(t.is_alive() for t in threads):
            time.sleep(0.5)  # interrupted by a signal: the handler runs at once
        if received:
            logger.info("serve: %s received, stopping", signal.Signals(received[0]).name)
        else:
            logger.error("serve: a component stopped unexpectedly; stopping")
            failed = True
    finally:
        stop.set()
        if consumer is not None:
            consumer.wake()
        if scheduler is not None:
            scheduler.stop()
        for thread in threads:
            thread.join()
        registry.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("serve: stopped")
    if failed:
        raise typer.Exit(1)
