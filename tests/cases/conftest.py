"""Cases fixtures: a real database, the registry and cases services on a frozen clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from cunan.audit.log import AuditLog
from cunan.cases.consumer import CaseConsumer
from cunan.cases.service import CaseService
from cunan.cases.settings import CaseSettings
from cunan.cases.views import SightingOutcome
from cunan.notify.dispatcher import NotificationDispatcher
from cunan.notify.message import Notification
from cunan.pipeline.store import EventOutbox, SightingStore
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from cunan.storage.pipeline_tables import Sighting
from tests.sightings import MODEL, new_sighting
from tests.storage.dbfixtures import database, db_url

__all__ = ["MODEL", "database", "db_url"]

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


class FrozenClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(base: np.ndarray, seed: int, scale: float = 0.015) -> np.ndarray:
    """A vector ~``scale * sqrt(128)`` away from ``base`` (same face, another shot)."""
    v = base + scale * np.random.default_rng(seed).standard_normal(base.size).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass
class Env:
    database: Database
    registry: RegistryService
    cases: CaseService
    sightings: SightingStore
    clock: FrozenClock
    channel: RecordingChannel
    audit: AuditLog
    village: int
    audit_start: int
    _n: list[int] = field(default_factory=lambda: [0])

    def sighting(
        self,
        vector: np.ndarray | None,
        *,
        camera: str = "gate",
        at: datetime | None = None,
        decision: str = "unknown",
        person_id: int | None = None,
        faces: int = 3,
    ) -> int:
        self._n[0] += 1
        when = at or self.clock.now
        stored = self.sightings.add(
            new_sighting(
                vector if decision == "unknown" else None,
                at=when,
                camera=camera,
                track_key=f"t{self._n[0]}",
                decision=decision,
                person_id=person_id,
                faces_used=faces,
                crop_jpeg=b"\xff\xd8jpeg" + bytes([self._n[0] % 256]),
            )
        )
        return stored.sighting_id


def sighting_row(database: Database, sighting_id: int) -> dict[str, Any]:
    """A stored sighting's columns: a backup to restore with ``insert(Sighting)``."""
    with database.transaction() as session:
        row = session.get(Sighting, sighting_id)
        assert row is not None
        return {c.key: getattr(row, c.key) for c in Sighting.__table__.columns}


def park_deleted(
    database: Database, cases: CaseService, *sighting_ids: int
) -> tuple[CaseConsumer, list[SightingOutcome]]:
    """Delete the sightings before they are grouped and poll a new consumer once: their
    events are parked at the first failure, the rest grouped. (The consumer, what it did.)"""
    with database.transaction() as session:
        for sighting_id in sighting_ids:
            session.delete(session.get(Sighting, sighting_id))
    consumer = CaseConsumer(cases, EventOutbox(database))
    return consumer, consumer.poll()


def wait_for_lock_waiters(
    database: Database, events: tuple[str, ...] | None = None, *, failure: str
) -> None:
    """PostgreSQL: block until another session of this database waits for a lock (of one of
    ``events``, pg_stat_activity's wait_event, when named); ``failure`` after 30 s."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    params: dict[str, Any] = {}
    if events is not None:
        query += " AND wait_event = ANY(:events)"
        params["events"] = list(events)
    deadline = time.monotonic() + 30
    with database.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(query), params).scalar_one()
            conn.rollback()  # a fresh snapshot of pg_stat_activity on every poll
            if waiting:
                return
            time.sleep(0.02)
    pytest.fail(failure)


@pytest.fixture
def env(database: Database) -> Iterator[Env]:
    clock = FrozenClock(T0)
    cipher = FieldCipher(KeyRing.generate())
    audit = AuditLog(database, clock=clock)
    # Audited like `cunan` opens it, so registry entries share the cases' transactions.
    registry = RegistryService(database, cipher, clock=clock, audit=audit)
    channel = RecordingChannel()
    dispatcher = NotificationDispatcher({"test": channel})
    service = CaseService(
        database,
        cipher,
        registry,
        CaseSettings(cooldown_minutes=30, deadline_days=3),
        audit=audit,
        dispatcher=dispatcher,
        clock=clock,
    )
    try:
        yield Env(
            database=database,
            registry=registry,
            cases=service,
            sightings=SightingStore(database, cipher),
            clock=clock,
            channel=channel,
            audit=audit,
            village=registry.add_village("桃源村"),
            audit_start=max((e.seq for e in audit.recent(limit=1)), default=0),
        )
    finally:
        dispatcher.close()
