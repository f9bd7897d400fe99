from __future__ import annotations

import pytest

from cunan.audit.log import AuditLog
from cunan.duties.daily import Duties
from cunan.duties.settings import DutySettings
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.duties.helpers import FrozenClock, RecordingListener, Sightings
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def settings() -> DutySettings:
    return DutySettings()


@pytest.fixture
def service(database: Database, listener: RecordingListener, clock: FrozenClock) -> RegistryService:
    return RegistryService(
        database, FieldCipher(KeyRing.generate()), listener=listener, clock=clock
    )


@pytest.fixture
def duties(
    database: Database, service: RegistryService, settings: DutySettings, clock: FrozenClock
) -> Duties:
    return Duties.build(database, service, settings, clock=clock)


@pytest.fixture
def audit(database: Database, clock: FrozenClock) -> AuditLog:
    return AuditLog(database, clock=clock)


@pytest.fixture
def sightings(database: Database, service: RegistryService) -> Sightings:
    return Sightings(database, service)
