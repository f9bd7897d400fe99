"""The case consumer sets a failing event aside after N attempts and calls on_known."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import update

from cunan.cases.consumer import CONSUMER, PARKED, CaseConsumer
from cunan.pipeline.store import EventOutbox
from cunan.storage.pipeline_tables import Sighting
from tests.cases.conftest import Env, near, unit


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
    parked_ids = {e.id for e in outbox.pending(PARKED)}
    assert consumer.parked[0] not in parked_ids  # recorded under cases.parked
    assert consumer.poll() == []


def test_known_sightings_reach_on_known(env: Env) -> None:
    env.sighting(unit(1))
    env.sighting(None, decision="known", person_id=None)
    calls: list[tuple[int, datetime]] = []
    consumer = CaseConsumer(
        env.cases, EventOutbox(env.database), on_known=lambda p, t: calls.append((p, t))
    )
    consumer.poll()
    assert calls == []  # a known sighting without a person id is skipped
