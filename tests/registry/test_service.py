from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import text

from cunan.registry.errors import (
    ConsentRequiredError,
    DuplicateIdNumberError,
    GuardianConsentRequiredError,
    InvalidRecordError,
    RoomCapacityError,
)
from cunan.registry.identity import mask_id_number
from cunan.registry.records import NewPerson, PersonStatus
from cunan.registry.service import RegistryService
from cunan.security.cipher import DecryptionError, FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.registry.conftest import RecordingListener
from tests.registry.helpers import MODEL, NOW, consent, template, vector
from tests.storage.dbfixtures import sqlite_file

ID = "330102199001011234"


def count(database: Database, table: str) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_add_person_with_consent_and_templates(
    service: RegistryService, village: int, listener: RecordingListener
) -> None:
    pid = service.add_person(
        NewPerson(name="李四", village_id=village, id_number=ID),
        consent=consent(),
        templates=[template(1), template(2)],
    )
    person = service.get_person(pid)
    assert person.template_count == 2 and person.has_valid_consent
    assert person.id_number_masked == "3301**********1234"
    assert service.count_people_with_face_data() == 1
    stored = service.templates_of(pid)
    np.testing.assert_array_equal(stored[0].vector, vector(1))
    assert [a[1] for a in listener.added] == [pid, pid]
    assert service.last_change_seq() == 2


def test_no_consent_no_face_data(
    service: RegistryService, village: int, database: Database
) -> None:
    with pytest.raises(ConsentRequiredError, match="consent"):
        service.add_person(NewPerson(name="A", village_id=village), templates=[template(1)])
    pid = service.add_person(NewPerson(name="B", village_id=village, non_face_note="ID card"))
    with pytest.raises(ConsentRequiredError, match=f"person {pid} has no valid consent"):
        service.add_template(pid, template(1))
    assert count(database, "face_templates") == 0
    assert count(database, "people") == 1


def test_minor_needs_guardian(service: RegistryService, village: int) -> None:
    with pytest.raises(GuardianConsentRequiredError, match="guardian"):
        service.add_person(
            NewPerson(name="小明", village_id=village, is_minor=True),
            consent=consent(),
            templates=[template(1)],
        )
    # An ID number saying the person is under 14 makes them a minor even without the flag.
    with pytest.raises(GuardianConsentRequiredError):
        service.add_person(
            NewPerson(name="小红", village_id=village, id_number="330102201801051234"),
            consent=consent(),
            templates=[template(1)],
        )
    pid = service.add_person(
        NewPerson(name="小明", village_id=village, is_minor=True),
        consent=consent(guardian="父亲 李大"),
        templates=[template(1)],
    )
    assert service.get_person(pid).is_minor


def test_withdrawal_deletes_templates_and_photos(
    service: RegistryService, village: int, database: Database, listener: RecordingListener
) -> None:
    pid = service.add_person(
        NewPerson(name="C", village_id=village),
        consent=consent(),
        templates=[template(1, photo=b"jpeg-bytes-1"), template(2, photo=b"jpeg-bytes-2")],
    )
    assert count(database, "enrolment_photos") == 2
    removed = service.withdraw_consent(pid, recorded_by="王", alternative_note="checks ID card")
    assert len(removed) == 2 and sorted(listener.removed) == sorted(removed)
    assert count(database, "face_templates") == 0
    assert count(database, "enrolment_photos") == 0
    person = service.get_person(pid)
    assert person.non_face_alternative and person.non_face_note == "checks ID card"
    assert not person.has_valid_consent
    assert service.count_people_with_face_data() == 0
    with pytest.raises(ConsentRequiredError):
        service.add_template(pid, template(3))
    kinds = [c.kind.value for c in service.changes_since(0)]
    assert kinds == ["added", "added", "removed", "removed"]


def test_duplicate_id_number_per_village(service: RegistryService, village: int) -> None:
    first = service.add_person(NewPerson(name="D", village_id=village, id_number=ID))
    with pytest.raises(DuplicateIdNumberError) as err:
        service.add_person(NewPerson(name="E", village_id=village, id_number=ID.lower() + " "))
    message = str(err.value)
    assert ID not in message and mask_id_number(ID) in message and f"person {first}" in message
    other = service.add_village("杏花村")
    service.add_person(NewPerson(name="E", village_id=other, id_number=ID))


def test_listings_mask_id_numbers(service: RegistryService, village: int) -> None:
    service.add_person(NewPerson(name="F", village_id=village, id_number=ID))
    (person,) = service.list_people()
    assert person.id_number_masked == "3301**********1234"
    assert ID not in repr(person)


def test_room_capacity(service: RegistryService, village: int) -> None:
    house = service.add_house(village, "桃源村 12 号")
    room = service.add_room(house, "101", capacity=2)
    a, b, c = (service.add_person(NewPerson(name=n, village_id=village)) for n in "abc")
    ta = service.add_tenancy(a, room, move_in=date(2025, 1, 1), reported_by="房东")
    service.add_tenancy(b, room, move_in=date(2025, 2, 1), reported_by="房东")
    with pytest.raises(RoomCapacityError, match=f"room {room}"):
        service.add_tenancy(c, room, move_in=date(2025, 3, 1), reported_by="房东")
    # After a reported move-out there is space from that day on, not before.
    service.record_move_out(ta, move_out=date(2025, 4, 1), reported_by="房东")
    with pytest.raises(RoomCapacityError):
        service.add_tenancy(c, room, move_in=date(2025, 3, 15), reported_by="房东")
    service.add_tenancy(c, room, move_in=date(2025, 4, 1), reported_by="房东")
    with pytest.raises(InvalidRecordError, match="before move-in"):
        service.add_tenancy(
            a, room, move_in=date(2025, 5, 1), move_out=date(2025, 4, 1), reported_by="x"
        )


def test_failure_midway_stores_nothing(
    service: RegistryService,
    village: int,
    database: Database,
    listener: RecordingListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real = FieldCipher.encrypt

    def flaky(self: FieldCipher, plaintext: bytes, context: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk full")
        return real(self, plaintext, context)

    monkeypatch.setattr(FieldCipher, "encrypt", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        service.add_person(
            NewPerson(name="G", village_id=village),
            consent=consent(),
            templates=[template(1), template(2), template(3)],
        )
    for table in ("people", "consents", "face_templates", "template_changes"):
        assert count(database, table) == 0, table
    assert listener.added == []


def test_templates_encrypted_at_rest(
    service: RegistryService, village: int, database: Database
) -> None:
    pid = service.add_person(
        NewPerson(name="H", village_id=village), consent=consent(), templates=[template(7)]
    )
    raw = vector(7).astype("<f4").tobytes()
    with database.engine.connect() as conn:
        blob = conn.execute(text("SELECT ciphertext FROM face_templates")).scalar_one()
    assert bytes(blob) != raw and raw[:16] not in bytes(blob)
    if database.is_sqlite:
        # The committed pages are in the database file or its write-ahead log.
        path = sqlite_file(database)
        wal = path.with_name(path.name + "-wal")
        on_disk = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert len(on_disk) > 0 and raw[:16] not in on_disk
    assert service.get_person(pid).template_count == 1


def test_swapped_ciphertext_fails_to_decrypt(
    service: RegistryService, village: int, database: Database
) -> None:
    pid = service.add_person(
        NewPerson(name="I", village_id=village),
        consent=consent(),
        templates=[template(1), template(2)],
    )
    with database.engine.begin() as conn:
        rows = conn.execute(text("SELECT id, ciphertext FROM face_templates ORDER BY id")).all()
        (id1, _), (_, b2) = rows
        conn.execute(
            text("UPDATE face_templates SET ciphertext=:b WHERE id=:i"), {"b": b2, "i": id1}
        )
    with pytest.raises(DecryptionError, match=f"template {id1}"):
        service.templates_of(pid)


def test_iter_templates_in_batches_and_delete(
    service: RegistryService, village: int, listener: RecordingListener
) -> None:
    ids = []
    for i in range(5):
        pid = service.add_person(
            NewPerson(name=f"p{i}", village_id=village), consent=consent(), templates=[template(i)]
        )
        ids.append(pid)
    batches = list(service.iter_templates(batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    flat = [t for b in batches for t in b]
    assert [t.person_id for t in flat] == ids and all(t.model_id == MODEL for t in flat)
    removed = service.delete_templates([flat[0].template_id])
    assert listener.removed == removed
    assert service.count_templates() == 4
    changes = service.changes_since(0)
    assert [c.kind.value for c in changes] == ["added"] * 5 + ["removed"]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(set(seqs)) and service.last_change_seq() == seqs[-1]
    assert [c.seq for c in service.changes_since(seqs[4])] == [seqs[5]]
    service.remove_person(ids[1])
    assert service.count_people_with_face_data() == 3


def test_status_change(service: RegistryService, village: int) -> None:
    pid = service.add_person(NewPerson(name="J", village_id=village))
    service.set_status(pid, PersonStatus.DEPARTED)
    assert service.list_people(status=PersonStatus.DEPARTED)[0].id == pid


def test_photos_are_not_kept_by_default(database: Database, keyring: KeyRing, village: int) -> None:
    plain = RegistryService(database, FieldCipher(keyring), clock=lambda: NOW)
    pid = plain.add_person(
        NewPerson(name="F", village_id=village),
        consent=consent(),
        templates=[template(1, photo=b"jpeg-bytes")],
    )
    assert count(database, "face_templates") == 1
    assert count(database, "enrolment_photos") == 0
    assert plain.get_person(pid).has_valid_consent
