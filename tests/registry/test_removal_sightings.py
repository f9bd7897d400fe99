"""Removing a person, or their consent, takes their face and identity out of the sightings."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from cunan.pipeline.store import SightingStore
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import DecryptionError, FieldCipher
from cunan.storage.database import Database
from cunan.storage.pipeline_tables import Sighting
from tests.registry.helpers import NOW, consent, template, vector
from tests.sightings import new_sighting
from tests.storage.dbfixtures import sqlite_file


def _details(identity: str | None, runner_up: str | None) -> dict[str, object]:
    return {
        "verdict": "known" if identity else "unknown",
        "identity": identity,
        "votes": {identity: 3} if identity else {},
        "reasons": [f"undecided: faces decided known as different people ({runner_up} and 1000)"],
        "faces": [
            {
                "decision": "known" if identity else "unknown",
                "identity": identity,
                "runner_up_identity": runner_up,
                "distance": 0.35,
            }
        ],
    }


def _seen(store: SightingStore, person: int, n: int, *, known: bool, crop: bytes) -> int:
    ident = str(person)
    return store.add(
        new_sighting(
            None if known else vector(n),
            at=NOW,
            track_key=f"t{n}",
            decision="known" if known else "unknown",
            person_id=person if known else None,
            details=_details(ident if known else None, None if known else ident),
            crop_jpeg=crop,
        )
    ).sighting_id


def _rows(database: Database) -> dict[int, Sighting]:
    with database.transaction() as session:
        return {row.id: row for row in session.scalars(select(Sighting))}


@pytest.mark.parametrize("how", ["remove", "withdraw"])
def test_removal_deletes_their_crops_and_unlinks_them_from_sightings(
    service: RegistryService, village: int, database: Database, how: str
) -> None:
    person = service.add_person(
        NewPerson(name="A", village_id=village), consent=consent(), templates=[template(1)]
    )
    other = service.add_person(
        NewPerson(name="B", village_id=village), consent=consent(), templates=[template(2)]
    )
    store = SightingStore(database, service.cipher)
    theirs = _seen(store, person, 1, known=True, crop=b"\xff\xd8their-face")
    stranger = _seen(store, person, 2, known=False, crop=b"\xff\xd8a-stranger")
    unrelated = _seen(store, other, 3, known=True, crop=b"\xff\xd8someone-else")

    if how == "remove":
        service.remove_person(person)
    else:
        service.withdraw_consent(person, recorded_by="王", alternative_note="ID card")

    rows = _rows(database)
    assert rows[theirs].crop_ciphertext is None and rows[theirs].person_id is None
    assert f'"{person}"' not in rows[theirs].details_json
    assert json.loads(rows[theirs].details_json)["identity"] == "removed"
    # A stranger's crop stays (it may be a case), without the link to the removed person.
    assert rows[stranger].crop_ciphertext is not None
    assert json.loads(rows[stranger].details_json)["faces"][0]["runner_up_identity"] == "removed"
    assert "(removed and 1000)" in rows[stranger].details_json
    assert rows[unrelated].crop_ciphertext is not None
    assert rows[unrelated].person_id == other
    assert json.loads(rows[unrelated].details_json)["identity"] == str(other)


def test_a_crop_moved_to_another_sighting_does_not_decrypt(
    service: RegistryService, database: Database
) -> None:
    from cunan.pipeline.store import crop_context

    store = SightingStore(database, service.cipher)
    first = store.add(new_sighting(None, at=NOW, track_key="a", crop_jpeg=b"\xff\xd8a"))
    second = store.add(new_sighting(None, at=NOW, track_key="b", crop_jpeg=b"\xff\xd8b"))
    rows = _rows(database)
    one, two = rows[first.sighting_id], rows[second.sighting_id]
    assert one.crop_ciphertext is not None and two.crop_ciphertext is not None
    cipher: FieldCipher = service.cipher
    # Each decrypts in its own row...
    assert cipher.decrypt(one.crop_ciphertext, crop_context(one.id, one.camera_name)) == (
        b"\xff\xd8a"
    )
    # ...and the swapped ones do not: the context binds a crop to its sighting.
    with pytest.raises(DecryptionError):
        cipher.decrypt(two.crop_ciphertext, crop_context(one.id, one.camera_name))
    with pytest.raises(DecryptionError):
        cipher.decrypt(one.crop_ciphertext, crop_context(two.id, two.camera_name))


def _database_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.parametrize("how", ["remove", "purge"])
def test_removed_bytes_are_gone_from_the_file_and_its_wal(
    service: RegistryService, village: int, database: Database, how: str
) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL's files are the server's (VACUUM, its own WAL)")
    from cunan.registry.records import PhotoInput, TemplateInput
    from tests.registry.helpers import MODEL

    # Random markers, so a match can only be the stored value itself.
    name = "marker-" + secrets.token_hex(16)
    person = service.add_person(
        NewPerson(name=name, village_id=village),
        consent=consent(),
        templates=[
            TemplateInput(
                vector(7), MODEL, photo=PhotoInput(secrets.token_bytes(256), "image/jpeg")
            )
        ],
    )
    with database.engine.connect() as conn:
        blobs = [
            bytes(r[0])
            for table in ("face_templates", "enrolment_photos")
            for r in conn.exec_driver_sql(f"SELECT ciphertext FROM {table}")
        ]
    path = sqlite_file(database)
    assert name.encode() in _database_bytes(path) and len(blobs) == 2
    if how == "remove":
        service.remove_person(person)
    else:  # the retention purge of a departed person's face data: the person stays
        service.purge_face_data(person)
    data = _database_bytes(path)
    assert (name.encode() in data) is (how == "purge")
    for blob in blobs:
        assert blob[-32:] not in data
