"""The face-data counter warns as the filing threshold comes near."""

from __future__ import annotations

import logging

import pytest

from cunan.duties.counter import FaceDataCounter
from cunan.duties.settings import DutySettings
from cunan.registry.service import RegistryService
from cunan.stats.service import StatsService
from cunan.storage.database import Database
from tests.duties.helpers import FrozenClock, add_tenant, seed_village


def test_counter_warns_at_the_configured_fraction(
    database: Database,
    service: RegistryService,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = DutySettings(filing_threshold=10, filing_warn_fraction=0.9)
    counter = FaceDataCounter(database, settings)
    village = seed_village(service, houses=6, rooms_per_house=2)
    for i in range(8):
        add_tenant(service, village, village.rooms[i], templates=2, seed=10 * i)
    add_tenant(service, village, village.rooms[8], templates=0, seed=99)  # no face data

    with caplog.at_level(logging.INFO, logger="cunan.duties.counter"):
        count = counter.check()
    assert (count.people, count.warn_at, count.warning) == (8, 9, False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    add_tenant(service, village, village.rooms[9], seed=500)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cunan.duties.counter"):
        count = counter.check()
    assert (count.people, count.warning, count.filing_required) == (9, True, False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "9 people" in warnings[0].getMessage()

    stats = StatsService(database, settings, clock=clock).compute()
    assert stats.face_data.warning
    assert stats.as_dict()["filing_warning"] is True
    assert stats.warnings() and "90%" in stats.warnings()[0]

    add_tenant(service, village, village.rooms[10], seed=600)
    assert counter.count().filing_required


def test_settings_defaults_and_validation() -> None:
    settings = DutySettings()
    assert settings.departure_deadline_days == 7 and settings.not_seen_days == 30
    assert (settings.unknown_sightings_days, settings.crops_days) == (30, 30)
    assert (settings.known_sightings_days, settings.departed_templates_days) == (90, 0)
    assert settings.filing_warn_at == 90_000
    with pytest.raises(ValueError, match="known_sightings_days"):
        DutySettings(known_sightings_days=7)
    with pytest.raises(ValueError, match="time zone"):
        DutySettings(timezone="Mars/Olympus")
