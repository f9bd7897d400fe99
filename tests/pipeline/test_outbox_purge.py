"""The outbox purge deletes only events every consumer is done with: parked ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cunan.cases.consumer import CONSUMER
from cunan.cases.parked import ParkedEvents
from cunan.pipeline.store import EventOutbox
from cunan.storage.case_tables import CaseParkedEvent
from cunan.storage.database import Database
from cunan.storage.pipeline_tables import EventAck
from tests.cases.conftest import T0, Env, env, park_deleted, unit
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url", "env"]

#: A consumer that never acknowledges: what it sees pending is every event still stored.
PROBE = "test-probe"


def _later() -> datetime:
    # Outbox rows are stamped with the real clock, not the services' frozen one.
    return datetime.now(UTC) + timedelta(minutes=1)


def _stored(outbox: EventOutbox) -> list[int]:
    return [e.id for e in outbox.pending(PROBE, limit=10_000)]


def _acks(database: Database) -> set[tuple[str, int]]:
    with database.transaction() as session:
        rows = session.execute(select(EventAck.consumer, EventAck.event_id)).all()
    return {(str(c), int(i)) for c, i in rows}


def _parked_rows(database: Database) -> set[int]:
    with database.transaction() as session:
        return {int(i) for i in session.scalars(select(CaseParkedEvent.event_id))}


def _append(database: Database, count: int) -> list[int]:
    with database.transaction() as session:
        return [EventOutbox.append(session, "test.event", {"n": n}) for n in range(count)]


def test_purge_keeps_parked_events_with_their_ack_and_record_and_they_still_replay(
    env: Env,
) -> None:
    grouped_first = env.sighting(unit(1))
    dead = env.sighting(unit(2), at=T0 + timedelta(minutes=1))
    parked = env.sighting(unit(3), at=T0 + timedelta(minutes=2))
    grouped_last = env.sighting(unit(4), at=T0 + timedelta(minutes=3))
    # Purged before they were grouped.
    consumer, outcomes = park_deleted(env.database, env.cases, dead, parked)
    outbox = consumer.outbox
    _, dead_event, parked_event, last_event = _stored(outbox)
    assert [o.sighting_id for o in outcomes] == [grouped_first, grouped_last]
    assert consumer.parked == [dead_event, parked_event]
    parking = ParkedEvents(env.database, audit=env.audit, clock=env.clock)
    parking.discard([dead_event], reason="sighting purged, no backup", actor="cli:wang")
    assert outbox.pending(CONSUMER) == []

    # Every event is older than the cutoff and acknowledged by the only consumer; the newest
    # acknowledged one stays so the consumer stays on record. The two cases opened were
    # announced to live views (live.case.opened), which age alone retires.
    live = outbox.live_after(0)
    assert [e.kind for e in live] == ["live.case.opened", "live.case.opened"]
    assert outbox.purge_before(_later()) == 1 + len(live)
    assert outbox.live_after(0) == []

    assert _stored(outbox) == [dead_event, parked_event, last_event]
    assert _acks(env.database) == {
        (CONSUMER, dead_event),
        (CONSUMER, parked_event),
        (CONSUMER, last_event),
    }
    assert _parked_rows(env.database) == {dead_event, parked_event}
    [listed] = parking.events()
    assert (listed.event_id, listed.sighting_id) == (parked_event, parked)
    assert [p.event_id for p in parking.events(discarded=True)] == [dead_event, parked_event]
    assert parking.replay([parked_event], actor="cli:wang") == [parked_event]
    assert [e.id for e in outbox.pending(CONSUMER)] == [parked_event]


def test_purge_keeps_what_a_consumer_has_not_acknowledged(database: Database) -> None:
    outbox = EventOutbox(database)
    events = _append(database, 5)
    assert outbox.purge_before(_later()) == 0  # no consumer has acknowledged anything yet

    outbox.ack("cases", events)
    outbox.ack("alerts", [events[0], events[2]])
    oldest = outbox.pending(PROBE)[0].created_at
    assert outbox.purge_before(oldest) == 0  # the cutoff is exclusive
    # events[1] and [3] are pending for alerts, [2] is alerts' newest, [4] cases' newest.
    assert outbox.purge_before(_later()) == 1
    assert _stored(outbox) == events[1:]
    assert [e.id for e in outbox.pending("alerts")] == [events[1], events[3], events[4]]

    outbox.ack("alerts", [events[1], events[3]])
    assert outbox.purge_before(_later()) == 2
    assert _stored(outbox) == [events[3], events[4]]
    assert _acks(database) == {
        ("cases", events[3]),
        ("alerts", events[3]),
        ("cases", events[4]),
    }


def test_purge_works_through_batches(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cunan.pipeline.store.PURGE_BATCH", 2)
    outbox = EventOutbox(database)
    events = _append(database, 7)
    outbox.ack("cases", events)
    assert outbox.purge_before(_later()) == 6
    assert _stored(outbox) == [events[-1]]
