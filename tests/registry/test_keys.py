from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from cunan.config import RegistrySettings
from cunan.registry.keys import rotate_keys
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyFileError, KeyRing
from cunan.storage.database import Database
from tests.registry.helpers import consent, template, vector


def test_rotation_reencrypts_everything_and_retires_the_old_key(
    database: Database, tmp_path: Path
) -> None:
    key_file = tmp_path / "cunan.key"
    old = KeyRing.generate()
    old.save(key_file)
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
        service.templates_of(pid)  # the old key alone no longer reads anything
