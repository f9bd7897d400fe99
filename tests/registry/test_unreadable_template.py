"""One damaged template is skipped and reported; the gallery and everyone else keep working."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from cunan.matching.live import LiveGallery
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.storage.database import Database
from tests.registry.helpers import MODEL, consent, template, vector


def _flip_a_byte(database: Database, template_id: int) -> None:
    with database.engine.begin() as conn:
        blob = bytearray(
            conn.execute(
                text("SELECT ciphertext FROM face_templates WHERE id = :id"), {"id": template_id}
            ).scalar_one()
        )
        blob[-5] ^= 0x01
        conn.execute(
            text("UPDATE face_templates SET ciphertext = :c WHERE id = :id"),
            {"c": bytes(blob), "id": template_id},
        )


def test_a_damaged_template_is_skipped_reported_once_and_listed(
    service: RegistryService,
    village: int,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    people = [
        service.add_person(
            NewPerson(name=n, village_id=village), consent=consent(), templates=[template(i)]
        )
        for i, n in enumerate("ABC", 1)
    ]
    [damaged] = [t.template_id for t in service.templates_of(people[1])]
    _flip_a_byte(database, damaged)

    with caplog.at_level(logging.ERROR, logger="cunan.registry.service"):
        gallery = LiveGallery.load(service, model_id=MODEL, dim=128)
        gallery.verify(service)  # a periodic re-check does not report it again
    assert len(gallery) == 2
    reports = [r for r in caplog.records if f"template {damaged}" in r.getMessage()]
    assert len(reports) == 1 and "keys check" in reports[0].getMessage()

    [result] = gallery.identify(np.vstack([vector(3)]), qualities=[None], top=1)
    assert result.person_id == people[2]
    assert service.templates_of(people[1], skip_unreadable=True) == []
    [bad] = service.unreadable_templates()
    assert (bad.template_id, bad.person_id) == (damaged, people[1])
    assert "does not decrypt" in bad.reason

    # A damaged template arriving through the change feed is skipped the same way.
    late = service.add_person(
        NewPerson(name="D", village_id=village), consent=consent(), templates=[template(4)]
    )
    _flip_a_byte(database, service.templates_of(late)[0].template_id)
    assert gallery.catch_up(service) == 1
    assert len(gallery) == 2


def test_keys_check_lists_and_deletes_unreadable_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cunan.cli import app
    from cunan.config import Settings
    from cunan.registry.datadir import open_registry

    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUNAN_ADMIN_PASSWORD", "Correct-horse-battery-9")
    data = tmp_path / "data"
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--data-dir", str(data)]).exit_code == 0
    registry = open_registry(data, Settings())
    try:
        person = registry.service.add_person(
            NewPerson(name="A", village_id=registry.service.default_village_id()),
            consent=consent(),
            templates=[template(1), template(2)],
        )
        first = registry.service.templates_of(person)[0].template_id
        _flip_a_byte(registry.database, first)
    finally:
        registry.close()

    result = runner.invoke(app, ["keys", "check", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert f"template {first} of person {person}" in result.output
    result = runner.invoke(app, ["keys", "check", "--delete-unreadable", "--data-dir", str(data)])
    assert result.exit_code == 0 and "deleted 1" in result.output
    result = runner.invoke(app, ["keys", "check", "--data-dir", str(data)])
    assert result.exit_code == 0 and "every encrypted value decrypts" in result.output


def test_other_encrypted_values_that_do_not_decrypt_are_listed(
    service: RegistryService, village: int, database: Database
) -> None:
    from cunan.pipeline.store import SightingStore
    from cunan.registry.keys import unreadable_values
    from cunan.registry.records import PhotoInput, TemplateInput
    from tests.registry.helpers import NOW
    from tests.sightings import new_sighting

    person = service.add_person(
        NewPerson(name="A", village_id=village),
        consent=consent(),
        templates=[
            TemplateInput(vector(1), MODEL, photo=PhotoInput(b"photo-1", "image/jpeg")),
            TemplateInput(vector(2), MODEL, photo=PhotoInput(b"photo-2", "image/jpeg")),
        ],
    )
    store = SightingStore(database, service.cipher)
    store.add(new_sighting(vector(3), at=NOW, track_key="a"))
    assert unreadable_values(database, service.cipher) == []
    # Swap the two photos' ciphertexts: each is bound to its own row.
    first, second = service.photo_ids_of(person)
    with database.engine.begin() as conn:
        blobs = {
            int(r[0]): bytes(r[1])
            for r in conn.execute(text("SELECT id, ciphertext FROM enrolment_photos"))
        }
        for row, other in ((first, second), (second, first)):
            conn.execute(
                text("UPDATE enrolment_photos SET ciphertext = :c WHERE id = :id"),
                {"c": blobs[other], "id": row},
            )
    bad = unreadable_values(database, service.cipher)
    assert sorted((b.kind, b.row_id) for b in bad) == [("photo", first), ("photo", second)]
