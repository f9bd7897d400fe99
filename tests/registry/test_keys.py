from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from cunan.audit import AuditLog, verify_chain
from cunan.cases.service import CaseService
from cunan.config import RegistrySettings
from cunan.pipeline.store import SightingStore
from cunan.registry import keys as keys_module
from cunan.registry.keys import rotate_keys
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyFileError, KeyRing
from cunan.storage.database import Database
from cunan.storage.repositories import RegistryRepository
from tests.registry.helpers import NOW, consent, template, vector
from tests.sightings import new_sighting
from tests.storage.dbfixtures import sqlite_file


def _key_file(tmp_path: Path) -> tuple[Path, KeyRing]:
    """A key file holding one new key: (its path, the ring saved in it)."""
    key_file = tmp_path / "cunan.key"
    ring = KeyRing.generate()
    ring.save(key_file)
    return key_file, ring


def test_rotation_reencrypts_everything_and_retires_the_old_key(
    database: Database, tmp_path: Path
) -> None:
    key_file, old = _key_file(tmp_path)
    keep = RegistrySettings(keep_enrolment_photos=True)
    service = RegistryService(database, FieldCipher(old), settings=keep)
    village = service.add_village("v")
    pid = service.add_person(
        NewPerson(name="A", village_id=village),
        consent=consent(),
        templates=[template(1, photo=b"photo-1"), template(2)],
    )
    report = rotate_keys(database, key_file)
    assert (report.templates, report.photos) == (2, 1)
    assert report.retired_key_ids == (old.active,)
    new = KeyRing.load(key_file)
    assert set(new.keys) == {report.new_key_id} and old.active not in new.keys
    with database.engine.connect() as conn:
        used = set(conn.execute(text("SELECT key_id FROM face_templates")).scalars())
    assert used == {report.new_key_id}
    rotated = RegistryService(database, FieldCipher(new))
    np.testing.assert_array_equal(rotated.templates_of(pid)[0].vector, vector(1))
    assert rotated.photo(rotated.photo_ids_of(pid)[0]).data == b"photo-1"
    with pytest.raises(KeyFileError, match="not in the key file"):
        # the old key alone no longer reads anything
        service.templates_of(pid)
    assert service.templates_of(pid, skip_unreadable=True) == []  # the gallery skips them


def _sighting(store: SightingStore, n: int, embedding: np.ndarray | None) -> int:
    sighting = new_sighting(
        embedding,
        at=NOW,
        camera="东门",
        track_key=f"t{n}",
        ended_at=NOW,
        decision="unknown" if embedding is not None else "known",
        crop_jpeg=b"\xff\xd8crop-%d" % n,
    )
    return store.add(sighting).sighting_id


def test_rotation_reencrypts_sightings_and_quiet_faces_and_audits(
    database: Database, tmp_path: Path
) -> None:
    key_file, old = _key_file(tmp_path)
    cipher = FieldCipher(old)
    registry = RegistryService(database, cipher, clock=lambda: NOW)
    store = SightingStore(database, cipher)
    cases = CaseService(database, cipher, registry, clock=lambda: NOW)
    face = vector(7)
    unknown = _sighting(store, 1, face)
    known = _sighting(store, 2, None)  # a crop without embedding
    outcome = cases.handle_sighting(unknown)
    assert outcome is not None and outcome.opened
    cases.false_alarm(outcome.case_id, actor="user:1")  # the face becomes a quiet face
    with database.engine.connect() as conn:
        quiet_rows = conn.execute(text("SELECT id, key_id FROM case_quiet_faces")).all()
    assert len(quiet_rows) == 1 and quiet_rows[0][1] == old.active
    with database.transaction() as session:
        assert RegistryRepository(session).key_ids_in_use() == {old.active}

    audit = AuditLog(database, clock=lambda: NOW)
    report = rotate_keys(database, key_file, audit=audit, actor="cli:tester")
    assert (report.sighting_crops, report.sighting_embeddings, report.quiet_faces) == (2, 1, 1)
    new = KeyRing.load(key_file)
    assert set(new.keys) == {report.new_key_id}
    with database.engine.connect() as conn:
        used = {
            row[0]
            for table in ("sightings", "case_quiet_faces")
            for row in conn.execute(text(f"SELECT key_id FROM {table}"))
        }
    assert used == {report.new_key_id}

    # Everything decrypts with the new key alone, with the writers' own code paths ...
    fresh = FieldCipher(new)
    fresh_store = SightingStore(database, fresh)
    assert fresh_store.crop(unknown) == b"\xff\xd8crop-1"
    assert fresh_store.crop(known) == b"\xff\xd8crop-2"
    embedding = fresh_store.embedding(unknown)
    assert embedding is not None
    np.testing.assert_array_equal(embedding, face)
    fresh_cases = CaseService(database, fresh, RegistryService(database, fresh), clock=lambda: NOW)
    again = fresh_cases.handle_sighting(_sighting(SightingStore(database, fresh), 3, face))
    assert again is not None and again.suppressed_by == "negative"  # quiet face read back
    # ... and the old key alone reads none of it.
    with pytest.raises(KeyFileError, match="not in the key file"):
        store.crop(unknown)

    entry = audit.recent(limit=1, action="key.rotate")[0]
    assert entry.actor == "cli:tester"
    assert entry.details["sighting_crops"] == 2 and entry.details["quiet_faces"] == 1
    assert entry.details["retired_key_ids"] == [old.active]
    assert verify_chain(database).ok


def test_rotation_refuses_rows_under_a_key_missing_from_the_key_file(
    database: Database, tmp_path: Path
) -> None:
    key_file = tmp_path / "cunan.key"
    stranger = KeyRing.generate()
    _sighting(SightingStore(database, FieldCipher(stranger)), 1, vector(1))
    ours = KeyRing.generate()
    ours.save(key_file)
    with pytest.raises(KeyFileError, match=f"refusing to rotate.*{stranger.active}"):
        rotate_keys(database, key_file)
    assert KeyRing.load(key_file) == ours  # the key file was not touched
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT key_id FROM sightings")).scalar_one() == stranger.active


def test_old_key_is_kept_when_the_commit_cannot_be_made_durable(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file, old = _key_file(tmp_path)
    service = RegistryService(database, FieldCipher(old))
    village = service.add_village("v")
    pid = service.add_person(
        NewPerson(name="A", village_id=village), consent=consent(), templates=[template(1)]
    )

    def busy(_database: Database) -> None:
        raise keys_module.RotationNotDurableError("checkpoint busy")

    monkeypatch.setattr(keys_module, "make_durable", busy)
    with pytest.raises(KeyFileError, match="checkpoint busy"):
        rotate_keys(database, key_file)
    ring = KeyRing.load(key_file)
    assert old.active in ring.keys and ring.active != old.active  # both keys kept
    np.testing.assert_array_equal(
        RegistryService(database, FieldCipher(ring)).templates_of(pid)[0].vector, vector(1)
    )


def test_make_durable_checkpoints_the_sqlite_wal(database: Database, tmp_path: Path) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL commits are durable")

    def in_main_file() -> list[str]:
        # A copy of the database file without its WAL: what survives if the WAL is lost.
        copy = tmp_path / "main-file-only.db"
        shutil.copyfile(sqlite_file(database), copy)
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM villages")]
        copy.unlink()
        return names

    # Another open connection (as a running worker would hold) keeps the WAL from being
    # checkpointed when the writer's connection closes.
    with contextlib.closing(sqlite3.connect(sqlite_file(database))) as other:
        other.execute("SELECT count(*) FROM villages").fetchall()
        RegistryService(database, FieldCipher(KeyRing.generate())).add_village("durable")
        assert in_main_file() == []  # committed, but only in the WAL so far
        keys_module.make_durable(database)
        assert in_main_file() == ["durable"]
