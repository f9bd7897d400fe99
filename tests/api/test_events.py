"""Server-sent events: a new case reaches an open stream over a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from cunan.app import CunanApp
from cunan.pipeline.store import SightingStore
from tests.api.conftest import PASSWORD
from tests.served import serving
from tests.sightings import new_sighting

#: Hang guards only: no timing is asserted.
DEADLINE_S = 60.0


@pytest.fixture
def served(api: FastAPI) -> Iterator[str]:
    with serving(api) as url:
        yield url


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_a_new_case_is_pushed_to_an_open_event_stream(served: str, core: CunanApp) -> None:
    with httpx.Client(base_url=served, timeout=DEADLINE_S) as client:
        login = client.post("/api/v1/auth/login", json={"username": "staff", "password": PASSWORD})
        assert login.status_code == 200
        store = SightingStore(core.registry.database, core.registry.service.cipher)
        frames: list[str] = []
        with client.stream("GET", "/api/v1/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            stored = store.add(
                new_sighting(_unit(7), at=datetime.now(UTC), camera="east-gate", track_key="sse1")
            )
            outcome = core.cases.handle_sighting(stored.sighting_id)
            assert outcome is not None and outcome.opened
            for line in lines:
                if line:
                    frames.append(line)
                if line.startswith("data:"):
                    break
        assert "event: case.opened" in frames
        data = next(f for f in frames if f.startswith("data:"))
        assert f'"case_id": {outcome.case_id}' in data
        assert '"camera": "east-gate"' in data
        # A landlord has no cases to hear of.
        landlord = httpx.Client(base_url=served, timeout=DEADLINE_S)
        landlord.post("/api/v1/auth/login", json={"username": "landlord_a", "password": PASSWORD})
        assert landlord.get("/api/v1/events").status_code == 403
        landlord.close()


def test_live_events_are_retired_by_age_alone(core: CunanApp) -> None:
    with core.registry.database.transaction() as session:
        from cunan.storage.cases_repository import CaseRepository

        event_id = CaseRepository(session).announce("live.case.opened", {"case_id": 0})
    assert any(e.id == event_id for e in core.outbox.live_after(event_id - 1))
    core.outbox.purge_before(datetime.now(UTC) + timedelta(days=1))
    assert not any(e.id == event_id for e in core.outbox.live_after(event_id - 1))
