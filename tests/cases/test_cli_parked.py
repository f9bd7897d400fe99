"""``cunan cases parked`` and ``replay-parked`` against a real data directory (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from cunan.audit.log import AuditLog
from cunan.cases.cli import cases_app
from cunan.cases.consumer import CaseConsumer
from cunan.cases.parked import ACTION_DISCARD, ACTION_REPLAY
from cunan.cases.service import CaseService
from cunan.config import Settings
from cunan.pipeline.store import EventOutbox, NewSighting, SightingStore
from cunan.registry.datadir import Registry, initialise
from cunan.storage.pipeline_tables import Sighting
from tests.cases.conftest import MODEL, unit

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    reg = initialise(
        tmp_path / "data",
        Settings(),
        admin_username="admin",
        admin_password="Correct-horse-battery-9",
        village_name="桃源村",
    )
    try:
        yield reg
    finally:
        reg.close()


def invoke(registry: Registry, *args: str) -> tuple[int, str]:
    result = runner.invoke(cases_app, [*args, "--data-dir", str(registry.data_dir)])
    return result.exit_code, result.output


def test_list_and_replay_parked_events_from_the_command_line(registry: Registry) -> None:
    cipher = registry.service.cipher
    when = datetime.now(UTC) - timedelta(minutes=5)
    sighting_id = (
        SightingStore(registry.database, cipher)
        .add(
            NewSighting(
                camera_id=None,
                camera_name="东门",
                track_key="t1",
                started_at=when,
                ended_at=when + timedelta(seconds=3),
                decision="unknown",
                person_id=None,
                distance=None,
                score=None,
                faces_used=3,
                details={},
                model_id=MODEL,
                crop_jpeg=b"\xff\xd8jpeg",
                embedding=unit(1),
            )
        )
        .sighting_id
    )
    with registry.database.transaction() as session:
        row = session.get(Sighting, sighting_id)
        assert row is not None
        backup: dict[str, Any] = {c.key: getattr(row, c.key) for c in Sighting.__table__.columns}
        session.delete(row)
    service = CaseService(registry.database, cipher, registry.service)
    consumer = CaseConsumer(service, EventOutbox(registry.database))
    assert consumer.poll() == []
    [event_id] = consumer.parked

    code, out = invoke(registry, "parked", "--json")
    assert code == 0, out
    [line] = out.splitlines()
    listed = json.loads(line)
    assert listed["event_id"] == event_id and listed["sighting_id"] == sighting_id
    assert (listed["camera"], listed["sighting_exists"], listed["attempts"]) == ("东门", False, 1)
    assert datetime.fromisoformat(listed["seen_at"]) == when
    assert listed["error"].startswith("SightingNotFoundError: sighting")
    code, out = invoke(registry, "parked")
    assert code == 0 and f"{sighting_id} (gone)" in out and "东门" in out

    for args, message in [
        ((), "name the events to replay"),
        ((str(event_id), "--all"), "not both"),
        ((str(event_id + 1),), f"event(s) {event_id + 1} not parked"),
    ]:
        code, out = invoke(registry, "replay-parked", *args)
        assert code == 2 and message in out, (args, out)

    with registry.database.transaction() as session:  # the row restored from a backup
        session.execute(insert(Sighting).values(**backup))
    code, out = invoke(registry, "replay-parked", "--all")
    assert code == 0 and "1 parked event(s) handed back" in out, out
    [outcome] = consumer.poll()
    assert outcome.sighting_id == sighting_id and outcome.opened
    code, out = invoke(registry, "parked")
    assert code == 0 and "no parked case events" in out
    [entry] = AuditLog(registry.database).recent(limit=1, action=ACTION_REPLAY)
    assert entry.actor.startswith("cli:") and entry.details["event_ids"] == [event_id]


def test_discard_a_parked_event_whose_sighting_is_gone_from_the_command_line(
    registry: Registry,
) -> None:
    cipher = registry.service.cipher
    when = datetime.now(UTC) - timedelta(days=31)
    store = SightingStore(registry.database, cipher)
    sighting_id = store.add(
        NewSighting(
            camera_id=None,
            camera_name="东门",
            track_key="t1",
            started_at=when,
            ended_at=when + timedelta(seconds=3),
            decision="unknown",
            person_id=None,
            distance=None,
            score=None,
            faces_used=3,
            details={},
            model_id=MODEL,
            crop_jpeg=b"\xff\xd8jpeg",
            embedding=unit(1),
        )
    ).sighting_id
    with registry.database.transaction() as session:  # purged, no backup
        session.delete(session.get(Sighting, sighting_id))
    consumer = CaseConsumer(
        CaseService(registry.database, cipher, registry.service), EventOutbox(registry.database)
    )
    consumer.poll()
    [event_id] = consumer.parked

    code, out = invoke(registry, "discard-parked", str(event_id))
    assert code == 2 and "--reason" in out, out
    code, out = invoke(registry, "discard-parked", str(event_id), "--reason", " ")
    assert code == 2 and "needs a reason" in out, out
    code, out = invoke(registry, "discard-parked", str(event_id), "--reason", "purged, 30 days")
    assert code == 0 and "1 parked event(s) discarded" in out, out

    code, out = invoke(registry, "parked")
    assert code == 0 and "no parked case events" in out, out
    code, out = invoke(registry, "parked", "--all", "--json")
    assert code == 0, out
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert (listed["event_id"], listed["sighting_exists"]) == (event_id, False)
    assert listed["discarded_by"].startswith("cli:")
    assert listed["discard_reason"] == "purged, 30 days" and listed["discarded_at"]
    code, out = invoke(registry, "parked", "--all")  # the table (wrapped at 80 columns)
    assert code == 0 and "┃ event" in out and "no parked case events" not in out, out
    code, out = invoke(registry, "discard-parked", str(event_id), "--reason", "again")
    assert code == 2 and "already discarded" in out, out
    code, out = invoke(registry, "replay-parked", "--all")
    assert code == 0 and "0 parked event(s) handed back" in out, out
    assert consumer.outbox.pending("cases") == []

    [entry] = AuditLog(registry.database).recent(limit=1, action=ACTION_DISCARD)
    assert entry.actor.startswith("cli:")
    assert entry.details == {
        "event_ids": [event_id],
        "discarded": 1,
        "reason_chars": len("purged, 30 days"),
    }
