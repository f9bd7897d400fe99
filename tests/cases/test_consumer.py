"""The case consumer sets failing events aside with their error; staff list and replay them."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from cunan.audit.log import AuditRecord
from cunan.cases.consumer import CONSUMER, CaseConsumer
from cunan.cases.parked import ACTION_REPLAY, ParkedEventError, ParkedEvents
from cunan.cases.service import CaseService
from cunan.cases.settings import CaseSettings
from cunan.pipeline.store import EventOutbox, SightingStore
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyFileError, KeyRing
from cunan.storage.case_tables import CaseSighting
from cunan.storage.pipeline_tables import Sighting
from tests.cases.conftest import T0, Env, near, park_deleted, sighting_row, unit
from tests.sightings import new_sighting


def grouped(env: Env) -> dict[int, int]:
    """Sighting id -> case id of every grouped sighting."""
    with env.database.transaction() as session:
        rows = session.execute(select(CaseSighting.sighting_id, CaseSighting.case_id)).all()
    return {int(s): int(c) for s, c in rows}


def replay_entries(env: Env) -> list[AuditRecord]:
    """This test's replay audit entries, oldest first (the log outlives each test)."""
    entries = env.audit.recent(limit=50, action=ACTION_REPLAY)
    return [e for e in reversed(entries) if e.seq > env.audit_start]


def test_a_failing_event_is_parked_after_n_attempts_and_the_rest_grouped(env: Env) -> None:
    bad = env.sighting(unit(1))
    good = [env.sighting(unit(2)), env.sighting(near(unit(2), 3))]
    # A real failure: the stored embedding no longer decrypts.
    with env.database.transaction() as session:
        session.execute(
            update(Sighting).where(Sighting.id == bad).values(embedding_ciphertext=b"garbage")
        )
    outbox = EventOutbox(env.database)
    consumer = CaseConsumer(env.cases, outbox, max_attempts=3)
    for _ in range(2):
        with pytest.raises(Exception):  # noqa: B017 - whatever the decryption raises
            consumer.poll()
        assert consumer.parked == []
    outcomes = consumer.poll()  # third attempt: set aside, the others grouped
    assert [o.sighting_id for o in outcomes] == good
    assert len(consumer.parked) == 1
    assert outbox.pending(CONSUMER) == []
    [parked] = ParkedEvents(env.database).events()
    assert (parked.event_id, parked.sighting_id, parked.attempts) == (consumer.parked[0], bad, 3)
    assert parked.error.startswith("DecryptionError: ") and "not an encrypted" in parked.error
    assert parked.parked_at == T0  # the service's clock
    assert consumer.poll() == []


def _store(store: SightingStore, n: int, vector: np.ndarray, *, camera: str, at: datetime) -> int:
    return store.add(new_sighting(vector, at=at, camera=camera, track_key=f"k{n}")).sighting_id


def test_a_sighting_sealed_with_a_key_the_consumer_lacks_is_parked_listed_replayed_grouped(
    env: Env,
) -> None:
    """The camera worker's key file was rotated, the grouping process still runs with the
    old one: the new sightings cannot be read. Set aside with the reason, listed, replayed
    (first too early: parked again), and grouped once the process has the current key."""
    old = KeyRing.generate()
    current = old.with_new_active_key()

    def service(ring: KeyRing) -> CaseService:
        return CaseService(
            env.database,
            FieldCipher(ring),
            env.registry,
            CaseSettings(),
            audit=env.audit,
            clock=env.clock,
        )

    face = unit(1)
    readable = SightingStore(env.database, FieldCipher(old))
    sealed_store = SightingStore(env.database, FieldCipher(current))
    first = _store(readable, 1, face, camera="gate", at=T0)
    sealed = _store(sealed_store, 2, near(face, 2), camera="market", at=T0 + timedelta(hours=1))
    other = _store(readable, 3, unit(5), camera="gate", at=T0 + timedelta(hours=2))
    outbox = EventOutbox(env.database)
    stale = CaseConsumer(service(old), outbox, max_attempts=2)

    with pytest.raises(KeyFileError):
        stale.poll()
    assert set(grouped(env)) == {first}  # handled before the failing event
    env.clock.advance(minutes=1)
    assert [o.sighting_id for o in stale.poll()] == [other]  # second failure: set aside
    assert outbox.pending(CONSUMER) == []

    parking = ParkedEvents(env.database, audit=env.audit)
    [parked] = parking.events()
    assert parked.event_id == stale.parked[0]
    assert (parked.sighting_id, parked.camera_name, parked.seen_at, parked.decision) == (
        sealed,
        "market",
        T0 + timedelta(hours=1),
        "unknown",
    )
    assert parked.attempts == 2 and parked.sighting_exists
    assert parked.error.startswith("KeyFileError: ") and "is not in the key file" in parked.error
    assert parked.parked_at == T0 + timedelta(minutes=1)

    # Replayed before the cause is fixed: it fails again and is parked again, not lost.
    assert parking.replay([parked.event_id], actor="cli:wang") == [parked.event_id]
    assert [e.id for e in outbox.pending(CONSUMER)] == [parked.event_id]
    with pytest.raises(KeyFileError):
        stale.poll()
    assert stale.poll() == []
    assert [p.event_id for p in parking.events()] == [parked.event_id]

    # The grouping process restarted with the current key file: replay, and it is grouped.
    assert parking.replay(None, actor="cli:wang") == [parked.event_id]
    [outcome] = CaseConsumer(service(current), outbox).poll()
    assert outcome.sighting_id == sealed
    cases = grouped(env)
    assert set(cases) == {first, sealed, other}  # every unknown sighting is in a case
    assert cases[sealed] == cases[first] != cases[other]  # and in the right one
    assert parking.events() == [] and outbox.pending(CONSUMER) == []
    replays = replay_entries(env)
    assert [(e.actor, e.details["event_ids"], e.details["all"]) for e in replays] == [
        ("cli:wang", [parked.event_id], False),
        ("cli:wang", [parked.event_id], True),
    ]


def test_a_sighting_deleted_under_its_event_is_parked_at_once_and_grouped_once_restored(
    env: Env,
) -> None:
    face = unit(1)
    opened = env.sighting(face)
    gone = env.sighting(near(face, 2), at=T0 + timedelta(hours=1))
    backup = sighting_row(env.database, gone)
    # Five attempts for other failures, but retrying cannot bring a row back: parked on the
    # first failure, the rest grouped.
    consumer, outcomes = park_deleted(env.database, env.cases, gone)
    assert [o.sighting_id for o in outcomes] == [opened]
    parking = ParkedEvents(env.database, audit=env.audit)
    [parked] = parking.events()
    assert (parked.sighting_id, parked.attempts, parked.sighting_exists) == (gone, 1, False)
    assert parked.error == (
        f"SightingNotFoundError: sighting {gone} no longer exists (deleted or purged before "
        "it was grouped)"
    )

    with env.database.transaction() as session:  # restored from a backup
        session.execute(insert(Sighting).values(**backup))
    assert parking.events()[0].sighting_exists
    parking.replay([parked.event_id], actor="cli:wang")
    [outcome] = consumer.poll()
    assert (outcome.sighting_id, outcome.opened) == (gone, False)
    assert grouped(env) == {opened: outcome.case_id, gone: outcome.case_id}
    assert parking.events() == []


def test_replay_refuses_events_that_are_not_parked_and_changes_nothing(env: Env) -> None:
    env.sighting(unit(1))
    gone = env.sighting(unit(2))
    outbox = park_deleted(env.database, env.cases, gone)[0].outbox
    parking = ParkedEvents(env.database, audit=env.audit)
    [parked] = parking.events()
    grouped_event = parked.event_id - 1
    with pytest.raises(ParkedEventError, match=f"event\\(s\\) {grouped_event} not parked"):
        parking.replay([parked.event_id, grouped_event], actor="cli:wang")
    with pytest.raises(ValueError, match="name the parked events"):
        parking.replay([], actor="cli:wang")
    assert parking.events() == [parked] and outbox.pending(CONSUMER) == []
    assert replay_entries(env) == []


def test_known_sightings_reach_on_known(env: Env) -> None:
    env.sighting(unit(1))
    env.sighting(None, decision="known", person_id=None)
    calls: list[tuple[int, datetime]] = []
    consumer = CaseConsumer(
        env.cases, EventOutbox(env.database), on_known=lambda p, t: calls.append((p, t))
    )
    consumer.poll()
    assert calls == []  # a known sighting without a person id is skipped
