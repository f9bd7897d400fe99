"""Migration 0006 keeps events parked before it (acknowledged under ``cases.parked``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from cunan.cases.consumer import CONSUMER
from cunan.cases.parked import ParkedEvents
from cunan.pipeline.store import EventOutbox
from cunan.storage.database import Database
from cunan.storage.migrate import downgrade, upgrade
from cunan.storage.pipeline_tables import EventAck, OutboxEvent

PARKED_AT = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def _acks(database: Database) -> set[tuple[str, int]]:
    with database.transaction() as session:
        rows = session.execute(select(EventAck.consumer, EventAck.event_id)).all()
    return {(str(c), int(e)) for c, e in rows}


def test_events_parked_before_0006_stay_listed_and_replayable(db_url: str) -> None:
    database = Database.open(db_url, connect_timeout_s=3)
    try:
        upgrade(database, "0005")
        with database.transaction() as session:
            for n in (1, 2):
                session.add(
                    OutboxEvent(
                        kind="sighting.decided",
                        payload_json=f'{{"sighting_id": {n}, "camera_name": "gate"}}',
                        created_at=PARKED_AT,
                    )
                )
            session.flush()
            # Event 1 was parked the 0005 way; event 2 was grouped normally.
            session.add(EventAck(consumer="cases.parked", event_id=1, acked_at=PARKED_AT))
            session.add(EventAck(consumer=CONSUMER, event_id=1, acked_at=PARKED_AT))
            session.add(EventAck(consumer=CONSUMER, event_id=2, acked_at=PARKED_AT))

        upgrade(database)
        [parked] = ParkedEvents(database).events()
        assert (parked.event_id, parked.sighting_id, parked.camera_name) == (1, 1, "gate")
        assert parked.attempts is None and "not recorded" in parked.error
        assert parked.parked_at == PARKED_AT and not parked.sighting_exists
        assert _acks(database) == {(CONSUMER, 1), (CONSUMER, 2)}

        downgrade(database, "0005")
        assert _acks(database) == {("cases.parked", 1), (CONSUMER, 1), (CONSUMER, 2)}

        upgrade(database)
        assert [p.event_id for p in ParkedEvents(database).events()] == [1]
        assert ParkedEvents(database).replay(None, actor="cli:wang") == [1]
        assert [e.id for e in EventOutbox(database).pending(CONSUMER)] == [1]
    finally:
        database.dispose()
