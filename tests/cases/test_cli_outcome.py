"""``cunan cases outcome``: the command records the same 补录 as the API, acting as a named
account, with dates in the village's time zone (not the host's)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import typer

from cunan.audit.log import AuditLog
from cunan.cases.cli import cases_app
from cunan.cases.service import CaseService
from cunan.pipeline.store import SightingStore
from cunan.registry.datadir import Registry
from tests.cli_helpers import invoke_on, registry
from tests.sightings import new_sighting

__all__ = ["registry"]


def _zone_on_another_day() -> str:
    """A real time zone whose calendar date differs from UTC's right now."""
    hour = datetime.now(UTC).hour
    return "Pacific/Kiritimati" if hour >= 10 else "Pacific/Pago_Pago"


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(cases_app, name="cases")
    return root


def test_enrol_outcome_uses_the_village_day_and_names_the_account(
    app: typer.Typer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    village_tz = _zone_on_another_day()
    monkeypatch.setenv("CUNAN_DUTIES__TIMEZONE", village_tz)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        service = registry.service
        village = service.default_village_id()
        house = service.add_house(village, "桃源路1号")
        room = service.add_room(house, "101")
        cases = CaseService(registry.database, service.cipher, service)
        vector = np.random.default_rng(3).standard_normal(128).astype(np.float32)
        vector /= np.linalg.norm(vector)
        stored = SightingStore(registry.database, service.cipher).add(
            new_sighting(vector, at=datetime.now(UTC), track_key="cli1")
        )
        outcome = cases.handle_sighting(stored.sighting_id)
        assert outcome is not None and outcome.opened
        code, out = invoke_on(
            app,
            registry,
            "cases",
            "outcome",
            str(outcome.case_id),
            "enrol",
            "--name",
            "孙七",
            "--room",
            str(room),
            "--consent-by",
            "网格员王",
        )
        assert code == 0, out
        person_id = int(out.split("person ")[1].split()[0])
        [tenancy] = service.tenancies_of(person_id)
        village_today = datetime.now(ZoneInfo(village_tz)).date()
        assert village_today != date.today()  # the host's day is another one
        assert tenancy.move_in == village_today
        [latest, *_] = AuditLog(registry.database).recent(action="case.transition")
        # The command acts as the installation's only account, named in the audit log.
        assert latest.actor == "cli:admin"
        assert service.get_person(person_id).template_count >= 1
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
