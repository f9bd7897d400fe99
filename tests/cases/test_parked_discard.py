"""Parked events whose sighting is gone for good are discarded: kept, hidden, never replayed."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from cunan.audit.log import AuditRecord
from cunan.cases.consumer import CONSUMER, CaseConsumer
from cunan.cases.parked import (
    ACTION_DISCARD,
    ParkedEventDiscardedError,
    ParkedEventError,
    ParkedEvents,
)
from cunan.pipeline.store import EventOutbox
from cunan.storage.database import Database
from cunan.storage.migrate import downgrade, upgrade
from cunan.storage.pipeline_tables import EventAck, Sighting
from tests.cases.conftest import T0, Env, unit

REASON = "sighting purged by the 30-day retention before it was grouped"


def _parked_gone(env: Env, count: int) -> tuple[CaseConsumer, list[int]]:
    """``count`` unknown sightings deleted before grouping: each event parked at once."""
    gone = [env.sighting(unit(n), at=T0 + timedelta(minutes=n)) for n in range(count)]
    with env.database.transaction() as session:
        for sighting_id in gone:
            session.delete(session.get(Sighting, sighting_id))
    consumer = CaseConsumer(env.cases, EventOutbox(env.database))
    assert consumer.poll() == []
    assert len(consumer.parked) == count
    return consumer, list(consumer.parked)


def _discards(env: Env) -> list[AuditRecord]:
    entries = env.audit.recent(limit=50, action=ACTION_DISCARD)
    return [e for e in reversed(entries) if e.seq > env.audit_start]


def _acked(database: Database) -> set[int]:
    with database.transaction() as session:
        rows = session.scalars(select(EventAck.event_id).where(EventAck.consumer == CONSUMER))
        return {int(i) for i in rows}


def test_a_discarded_event_stays_recorded_and_acknowledged_but_leaves_the_list(env: Env) -> None:
    consumer, [dead, other] = _parked_gone(env, 2)
    parking = ParkedEvents(env.database, audit=env.audit, clock=env.clock)
    env.clock.advance(hours=2)

    assert parking.discard([dead], reason=f"  {REASON} ", actor="cli:wang") == [dead]

    assert [p.event_id for p in parking.events()] == [other]
    listed = {p.event_id: p for p in parking.events(discarded=True)}
    assert set(listed) == {dead, other}
    record = listed[dead]
    assert (record.discarded_by, record.discard_reason) == ("cli:wang", REASON)
    assert record.discarded_at == T0 + timedelta(hours=2)
    assert record.error.startswith("SightingNotFoundError") and not record.sighting_exists
    assert listed[other].discarded_at is None
    [entry] = _discards(env)
    assert (entry.actor, entry.target_type, entry.target_id) == (
        "cli:wang",
        "outbox_event",
        str(dead),
    )
    assert entry.details == {"event_ids": [dead], "discarded": 1, "reason_chars": len(REASON)}

    # Never grouped again: still acknowledged, and "replay all" leaves it alone.
    assert parking.replay(None, actor="cli:wang") == [other]
    assert [e.id for e in consumer.outbox.pending(CONSUMER)] == [other]
    assert dead in _acked(env.database)
    consumer.poll()  # the replayed one is parked again (its sighting is gone too)
    assert [p.event_id for p in parking.events()] == [other]
    assert [p.event_id for p in parking.events(discarded=True)] == [dead, other]


def test_discard_refuses_unparked_already_discarded_and_reasonless_and_changes_nothing(
    env: Env,
) -> None:
    _, [first, second] = _parked_gone(env, 2)
    parking = ParkedEvents(env.database, audit=env.audit, clock=env.clock)
    parking.discard([first], reason=REASON, actor="cli:wang")
    before = parking.events(discarded=True)

    for ids, reason, error, message in [
        ([second, second + 100], REASON, ParkedEventError, f"{second + 100} not parked"),
        ([second, first], REASON, ParkedEventDiscardedError, f"{first} already discarded"),
        ([second], "   ", ValueError, "needs a reason"),
        ([second], "x" * 501, ValueError, "longer than 500"),
        ([], REASON, ValueError, "name the parked events"),
    ]:
        with pytest.raises(error, match=message):
            parking.discard(ids, reason=reason, actor="cli:li")

    assert parking.events(discarded=True) == before
    assert [e.details["event_ids"] for e in _discards(env)] == [[first]]


def test_a_discarded_event_named_in_a_replay_is_handed_back(env: Env) -> None:
    """Its sighting was restored after all: replaying it by id undoes the discard."""
    consumer, [dead] = _parked_gone(env, 1)
    parking = ParkedEvents(env.database, audit=env.audit, clock=env.clock)
    parking.discard([dead], reason=REASON, actor="cli:wang")

    assert parking.replay([dead], actor="cli:wang") == [dead]

    assert [e.id for e in consumer.outbox.pending(CONSUMER)] == [dead]
    assert parking.events(discarded=True) == []


def test_discarded_events_are_plain_parked_events_again_below_0007(env: Env) -> None:
    _, [dead, other] = _parked_gone(env, 2)
    ParkedEvents(env.database, audit=env.audit).discard([dead], reason=REASON, actor="cli:wang")
    try:
        downgrade(env.database, "0006")
        with env.database.transaction() as session:
            rows = session.execute(select(EventAck.event_id)).all()
        assert {int(r[0]) for r in rows} >= {dead, other}  # both stay acknowledged
    finally:
        upgrade(env.database)
    # The discard is gone with its columns; both are listed as parked again.
    assert [p.event_id for p in ParkedEvents(env.database).events()] == [dead, other]


def test_a_parked_event_left_without_its_acknowledgement_gets_one(env: Env) -> None:
    """A parked row without the consumer's ack (a crash between the old consumer's two
    acknowledgements, carried over by migration 0006) must not stay pending forever."""
    _, (event_id,) = _parked_gone(env, 1)
    with env.database.transaction() as session:
        session.delete(session.get(EventAck, (CONSUMER, event_id)))
    assert event_id not in _acked(env.database)
    consumer = CaseConsumer(env.cases, EventOutbox(env.database), max_attempts=1)
    # Before the fix poll() spun forever on the still-pending event: run it where a hang
    # shows as a failure.
    polls: list[object] = []
    thread = threading.Thread(target=lambda: polls.append(consumer.poll()), daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "poll() never returned: the parked event stayed pending"
    assert polls == [[]]
    assert event_id in _acked(env.database)
    assert consumer.poll() == []  # nothing pending any more
