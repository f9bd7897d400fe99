"""Photos of signed consent forms: kept encrypted with their consent, read back, re-encrypted
by a key rotation, checked by ``keys check`` and discarded by a key reset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from cunan.errors import NotFound
from cunan.registry.keybinding import bind_key_ring
from cunan.registry.keys import reset_keys, rotate_keys, unreadable_values
from cunan.registry.records import NewPerson, PhotoInput
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.registry.helpers import consent, template

SIGNED = PhotoInput(b"\x89PNG\r\n\x1a\nsigned form", "image/png")


def test_a_signed_form_is_kept_with_its_consent_and_survives_a_rotation(
    database: Database, tmp_path: Path
) -> None:
    key_file = tmp_path / "cunan.key"
    old = KeyRing.generate()
    old.save(key_file)
    service = RegistryService(database, FieldCipher(old))
    village = service.add_village("v")
    person = service.add_person(
        NewPerson(name="A", village_id=village),
        consent=replace(consent(), form_photo=SIGNED),
        templates=[template(1)],
    )
    first = service.consents_of(person)[0].id
    assert service.consent_form(first) == SIGNED
    with database.engine.connect() as conn:
        stored = conn.execute(text("SELECT ciphertext FROM consent_forms")).scalar_one()
    assert b"signed form" not in stored  # encrypted at rest
    # A later consent with its own form; one without a form has none to show.
    second = service.record_consent(person, replace(consent(), form_photo=SIGNED))
    bare = service.record_consent(person, consent())
    with pytest.raises(NotFound):
        service.consent_form(bare)

    report = rotate_keys(database, key_file)
    assert report.consent_forms == 2
    new = KeyRing.load(key_file)
    rotated = RegistryService(database, FieldCipher(new))
    assert rotated.consent_form(first) == SIGNED and rotated.consent_form(second) == SIGNED
    assert unreadable_values(database, FieldCipher(new)) == []
    # A form's ciphertext moved to another consent's row no longer decrypts there.
    with database.engine.begin() as conn:
        rows = conn.execute(text("SELECT id, ciphertext FROM consent_forms ORDER BY id")).all()
        conn.execute(
            text("UPDATE consent_forms SET ciphertext = :c WHERE id = :i"),
            {"c": rows[0][1], "i": rows[1][0]},
        )
    bad = unreadable_values(database, FieldCipher(new))
    assert [(b.kind, b.row_id) for b in bad] == [("consent form", rows[1][0])]


def test_a_key_reset_discards_the_forms_and_keeps_the_consents(
    database: Database, tmp_path: Path
) -> None:
    lost = KeyRing.generate()
    service = RegistryService(database, FieldCipher(lost))
    village = service.add_village("v")
    person = service.add_person(
        NewPerson(name="B", village_id=village), consent=replace(consent(), form_photo=SIGNED)
    )
    bind_key_ring(database, lost, tmp_path / "cunan.key")
    report = reset_keys(database, tmp_path / "cunan.key")
    assert report.discarded.consent_forms == 1
    new = KeyRing.load(tmp_path / "cunan.key")
    after = RegistryService(database, FieldCipher(new))
    assert len(after.consents_of(person)) == 1
    with pytest.raises(NotFound):
        after.consent_form(after.consents_of(person)[0].id)
