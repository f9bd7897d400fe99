"""Ids of removed rows never come back: audit entries and sightings keep naming them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from cunan.pipeline.store import CameraStore
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade
from tests.registry.helpers import consent, template
from tests.storage.dbfixtures import sqlite_file


def test_removed_highest_ids_are_not_reused(database: Database) -> None:
    service = RegistryService(database, FieldCipher(KeyRing.generate()))
    village = service.add_village("v")
    ids = [
        service.add_person(
            NewPerson(name=n, village_id=village), consent=consent(), templates=[template(i)]
        )
        for i, n in enumerate("AB", 1)
    ]
    service.remove_person(ids[-1])
    again = service.add_person(NewPerson(name="C", village_id=village), consent=consent())
    assert again > ids[-1]

    cameras = CameraStore(database)
    gate = cameras.add("gate", "rtsp://cam/1")
    cameras.remove(gate)
    assert cameras.add("gate", "rtsp://cam/1") > gate


def test_migration_adds_autoincrement_and_keeps_every_row(tmp_path: Path) -> None:
    database = Database.open(sqlite_url(tmp_path))
    try:
        upgrade(database, "0007")
        service = RegistryService(database, FieldCipher(KeyRing.generate()))
        village = service.add_village("v")
        kept = service.add_person(
            NewPerson(name="A", village_id=village), consent=consent(), templates=[template(1)]
        )
        removed = service.add_person(NewPerson(name="B", village_id=village), consent=consent())
        service.add_templates(removed, [template(2)])
        service.remove_person(removed)  # before the migration: its id is free for reuse

        upgrade(database)

        path = sqlite_file(database)
        with sqlite3.connect(path) as conn:
            people_sql = conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'people'"
            ).fetchone()[0]
            assert "AUTOINCREMENT" in people_sql
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "ix_people_household_id" in indexes and "ix_sightings_person_id" in indexes
        # Nothing cascaded away while the tables were rebuilt.
        assert len(service.consents_of(kept)) == 1 and len(service.templates_of(kept)) == 1
        # The change feed remembered the removed person: the next id is above it.
        assert service.add_person(NewPerson(name="C", village_id=village)) > removed
    finally:
        database.dispose()


def test_postgresql_ids_come_from_sequences(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite is covered by AUTOINCREMENT")
    with database.engine.connect() as conn:
        default = conn.execute(
            text(
                "SELECT column_default FROM information_schema.columns "
                "WHERE table_name = 'people' AND column_name = 'id'"
            )
        ).scalar()
    assert default is not None and "nextval" in default
