from __future__ import annotations

from collections.abc import Iterator

import pytest

from cunan.audit.log import AuditLog
from cunan.config import RegistrySettings
from cunan.registry.records import Vector
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.registry.helpers import NOW
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]


class RecordingListener:
    def __init__(self) -> None:
        self.added: list[tuple[int, int, str]] = []
        self.removed: list[int] = []

    def on_added(self, template_id: int, person_id: int, vector: Vector, model_id: str) -> None:
        self.added.append((template_id, person_id, model_id))

    def on_removed(self, template_ids: list[int]) -> None:
        self.removed.extend(template_ids)


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def audit() -> AuditLog | None:
    """The service's audit log: none here; a module overrides this to audit its service."""
    return None


@pytest.fixture
def service(
    database: Database, keyring: KeyRing, listener: RecordingListener, audit: AuditLog | None
) -> Iterator[RegistryService]:
    # Photos kept so that withdrawal, purge and rotation have photos to act on too.
    yield RegistryService(
        database,
        FieldCipher(keyring),
        listener=listener,
        clock=lambda: NOW,
        settings=RegistrySettings(keep_enrolment_photos=True),
        audit=audit,
    )


@pytest.fixture
def village(service: RegistryService) -> int:
    return service.add_village("桃源村")
