"""A finished track survives a database outage: pending queue, retries, stored exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cunan.capture.sources import SourceConfig
from cunan.config import Settings
from cunan.pipeline.build import build_runner
from cunan.pipeline.runner import CameraRunner, CameraTarget, RunnerHealth
from cunan.pipeline.store import NewSighting, SightingStore, StoredSighting
from cunan.registry.datadir import Registry
from cunan.storage.errors import DatabaseUnavailableError
from tests.conftest import require_data

pytestmark = pytest.mark.slow

#: Hang guards only: no timing is asserted.
LIMIT_S = 180.0


def clip() -> Path:
    return require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")


def target(*, loop: bool) -> CameraTarget:
    return CameraTarget(
        name="stage", source=SourceConfig(str(clip()), realtime=False, loop=loop), fps_cap=10
    )


def wait_for(runner: CameraRunner, condition: Callable[[RunnerHealth], bool], what: str) -> None:
    end = time.monotonic() + LIMIT_S
    while time.monotonic() < end:
        if condition(runner.health()):
            return
        time.sleep(0.05)
    raise AssertionError(f"waited {LIMIT_S} s for {what}; last health {runner.health()}")


def run_in_thread(runner: CameraRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return thread


class OutageStore:
    """The real store behind a switchable outage: while ``down`` is set every call raises
    the project's :class:`DatabaseUnavailableError` (an SQLite lock cannot stand in here:
    the registry's reads take the write lock too, so it would stop the matcher as well)."""

    def __init__(self, inner: SightingStore) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.refused = 0

    def add(self, sighting: NewSighting) -> StoredSighting:
        if self.down.is_set():
            self.refused += 1
            raise DatabaseUnavailableError("database sqlite:///... unavailable")
        return self.inner.add(sighting)


def test_sighting_waits_for_the_database_and_is_stored_once(
    registry: Registry, miranda: tuple[int, np.ndarray]
) -> None:
    runner = build_runner(registry, Settings(), target(loop=True))
    real = SightingStore(registry.database, registry.service.cipher)
    outage = OutageStore(real)
    outage.down.set()
    runner.store = outage  # type: ignore[assignment]
    thread = run_in_thread(runner)
    try:
        wait_for(runner, lambda h: h.sightings_pending >= 1, "a sighting to wait")
        health = runner.health()
        assert health.last_store_error and "unavailable" in health.last_store_error
        assert health.sightings_stored == 0 and health.sightings_lost == 0
        assert real.list() == []
        outage.down.clear()  # the database is back
        wait_for(
            runner,
            lambda h: h.sightings_pending == 0 and h.sightings_stored >= 1,
            "the retry to store the waiting sightings",
        )
        assert runner.health().last_store_error is None
    finally:
        outage.down.clear()
        runner.stop()
        thread.join(LIMIT_S)
    assert not thread.is_alive()
    final = runner.health()
    rows = real.list()
    keys = [r.track_key for r in rows]
    assert len(keys) == len(set(keys))  # each track stored exactly once
    assert final.sightings_lost == 0 and final.sightings_pending == 0
    assert final.tracks_finished == len(rows) == final.sightings_stored
    assert sorted(s.sighting_id for s in runner.sightings) == [r.id for r in rows]


class LostAnswerStore:
    """Commits, then fails the first ``n`` calls as if the connection dropped before the
    answer came back (the retry must find the committed row, not store a second one)."""

    def __init__(self, inner: SightingStore, n: int) -> None:
        self.inner = inner
        self.failures_left = n
        self.calls = 0

    def add(self, sighting: NewSighting) -> StoredSighting:
        self.calls += 1
        stored = self.inner.add(sighting)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise DatabaseUnavailableError("connection lost after commit")
        return stored


def test_retry_after_a_lost_commit_answer_stores_nothing_twice(
    registry: Registry, miranda: tuple[int, np.ndarray]
) -> None:
    runner = build_runner(registry, Settings(), target(loop=False))
    real = SightingStore(registry.database, registry.service.cipher)
    flaky = LostAnswerStore(real, n=2)
    runner.store = flaky  # type: ignore[assignment]
    thread = run_in_thread(runner)
    thread.join(LIMIT_S)
    assert not thread.is_alive()
    final = runner.health()
    rows = real.list()
    assert final.tracks_finished >= 1
    assert flaky.calls > final.tracks_finished  # it did retry
    assert final.sightings_lost == 0 and final.sightings_pending == 0
    assert len(rows) == final.tracks_finished
    assert len({r.track_key for r in rows}) == len(rows)


class DownStore:
    def add(self, sighting: NewSighting) -> StoredSighting:
        raise DatabaseUnavailableError("database unavailable")


def test_overflow_and_stop_with_the_database_down_count_the_loss(registry: Registry) -> None:
    runner = build_runner(registry, Settings(), target(loop=False))
    runner.store = DownStore()  # type: ignore[assignment]
    runner._max_pending = 1
    thread = run_in_thread(runner)
    thread.join(LIMIT_S)
    assert not thread.is_alive()
    final = runner.health()
    assert final.tracks_finished >= 1
    assert final.sightings_lost == final.tracks_finished
    assert final.sightings_pending == 0 and final.sightings_stored == 0
    assert final.last_store_error and "unavailable" in final.last_store_error


def test_runner_keeps_only_its_recent_sightings(registry: Registry) -> None:
    # A camera runs for months: the runner's in-memory history must stop growing at its
    # bound while every sighting is still stored (the rows are the record).
    base = build_runner(registry, Settings(), target(loop=False))
    runner = CameraRunner(
        base.target,
        detector=base.stage.detector,
        analyser=base.analyser,
        store=base.store,
        history=2,
    )
    returned = runner.run()
    rows = SightingStore(registry.database, registry.service.cipher).list()
    assert runner.health().sightings_stored == len(rows) > 2
    assert [s.sighting_id for s in runner.sightings] == [r.id for r in rows[-2:]]
    assert [s.sighting_id for s in returned] == [r.id for r in rows[-2:]]
    assert len(runner.latencies_s) == 2
