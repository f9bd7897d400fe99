"""``cunan cases parked`` and ``replay-parked`` against a real data directory (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from cunan.audit.log import AuditLog
from cunan.cases.cli import cases_app
from cunan.cases.parked import ACTION_DISCARD, ACTION_REPLAY
from cunan.cases.service import CaseService
from cunan.pipeline.store import SightingStore
from cunan.registry.datadir import Registry
from cunan.storage.pipeline_tables import Sighting
from tests.cases.conftest import park_deleted, sighting_row, unit
from tests.cli_helpers import invoke_on, registry
from tests.sightings import new_sighting

__all__ = ["registry"]


def invoke(registry: Registry, *args: str) -> tuple[int, str]:
    return invoke_on(cases_app, registry, *args)


def store_sighting(registry: Registry, when: datetime) -> int:
    """A stranger seen at 东门 at ``when``."""
    store = SightingStore(registry.database, registry.service.cipher)
    return store.add(new_sighting(unit(1), at=when, camera="东门")).sighting_id


def test_list_and_replay_parked_events_from_the_command_line(registry: Registry) -> None:
    when = datetime.now(UTC) - timedelta(minutes=5)
    sighting_id = store_sighting(registry, when)
    backup = sighting_row(registry.database, sighting_id)
    service = CaseService(registry.database, registry.service.cipher, registry.service)
    consumer, outcomes = park_deleted(registry.database, service, sighting_id)
    assert outcomes == []
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

    # Exit codes by kind (docs/cli.md): 2 a usage error, 3 an event that is not parked.
    for args, message, exit_code in [
        ((), "name the events to replay", 2),
        ((str(event_id), "--all"), "not both", 2),
        ((str(event_id + 1),), f"event(s) {event_id + 1} not parked", 3),
    ]:
        code, out = invoke(registry, "replay-parked", *args)
        assert code == exit_code and message in out, (args, out)

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
    sighting_id = store_sighting(registry, datetime.now(UTC) - timedelta(days=31))
    service = CaseService(registry.database, registry.service.cipher, registry.service)
    consumer, _ = park_deleted(registry.database, service, sighting_id)  # purged, no backup
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
    assert code == 4 and "already discarded" in out, out  # a conflict with its state
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


def test_case_crops_are_written_private_and_only_into_an_existing_parent(
    registry: Registry, tmp_path: Path
) -> None:
    from cunan.cases.consumer import CaseConsumer
    from cunan.pipeline.store import EventOutbox

    store_sighting(registry, datetime.now(UTC) - timedelta(minutes=5))
    service = CaseService(registry.database, registry.service.cipher, registry.service)
    [outcome] = CaseConsumer(service, EventOutbox(registry.database)).poll()
    assert outcome.opened and outcome.case_id is not None
    case = str(outcome.case_id)

    missing = tmp_path / "no" / "such" / "crops"
    code, out = invoke(registry, "show", case, "--crops-to", str(missing))
    assert code == 2 and "directory does not exist" in out and not missing.parent.exists()
    crops = tmp_path / "crops"
    code, out = invoke(registry, "show", case, "--crops-to", str(crops))
    assert code == 0, out
    files = list(crops.iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert crops.stat().st_mode & 0o777 == 0o700
