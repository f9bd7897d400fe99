"""Cases fixtures: a real database, the registry and cases services on a frozen clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cunan.audit.log import AuditLog
from cunan.cases.service import CaseService
from cunan.cases.settings import CaseSettings
from cunan.notify.dispatcher import NotificationDispatcher
from cunan.notify.message import Notification
from cunan.pipeline.store import NewSighting, SightingStore
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

MODEL = "dlib_resnet_v1"
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
            NewSighting(
                camera_id=None,
                camera_name=camera,
                track_key=f"t{self._n[0]}",
                started_at=when,
                ended_at=when + timedelta(seconds=3),
                decision=decision,
                person_id=person_id,
                distance=None,
                score=None,
                faces_used=faces,
                details={},
                model_id=MODEL,
                crop_jpeg=b"\xff\xd8jpeg" + bytes([self._n[0] % 256]),
                embedding=vector if decision == "unknown" else None,
            )
        )
        return stored.sighting_id


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
