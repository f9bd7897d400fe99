"""Camera passwords are encrypted with the data key; listings and the table show none."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cunan.pipeline.store import CameraStore
from cunan.registry.keys import rotate_keys
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

URL = "rtsp://admin:hunter2@192.0.2.10:554/stream1"


def _stored(database: Database) -> list[tuple[str, bytes | None, str | None]]:
    with database.engine.connect() as conn:
        return [
            (str(r[0]), None if r[1] is None else bytes(r[1]), r[2])
            for r in conn.execute(
                text("SELECT stream_url, stream_url_ciphertext, key_id FROM cameras")
            )
        ]


def test_a_password_is_stored_encrypted_and_read_back_with_the_key(database: Database) -> None:
    ring = KeyRing.generate()
    cameras = CameraStore(database, cipher=FieldCipher(ring))
    gate = cameras.add("gate", URL)
    plain = cameras.add("yard", "rtsp://192.0.2.11/stream1")
    [(url, blob, key_id), (other, other_blob, _)] = _stored(database)
    assert url == "rtsp://***@192.0.2.10:554/stream1" and blob is not None
    assert b"hunter2" not in blob and key_id == ring.active
    assert (other, other_blob) == ("rtsp://192.0.2.11/stream1", None)
    assert cameras.get(gate).stream_url == URL  # the pipeline gets the whole URL
    assert cameras.get(plain).stream_url == "rtsp://192.0.2.11/stream1"
    # Without the key (listings) the record holds the redacted URL only.
    assert CameraStore(database).get(gate).stream_url == url
    # Without the key a password cannot be stored at all.
    with pytest.raises(ValueError, match="encrypted"):
        CameraStore(database).add("door", "rtsp://u:p@192.0.2.12/s")
    assert len(_stored(database)) == 2


def test_plaintext_passwords_from_before_are_sealed_and_rotation_covers_them(
    database: Database, tmp_path: Path
) -> None:
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cameras (name, stream_url, enabled, public_notice_posted, "
                "settings_json, created_at, updated_at) VALUES ('old', :u, true, true, '{}', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"u": URL},
        )
    key_file = tmp_path / "cunan.key"
    ring = KeyRing.generate()
    ring.save(key_file)
    cameras = CameraStore(database, cipher=FieldCipher(ring))
    assert cameras.seal_plaintext_passwords() == 1
    assert cameras.seal_plaintext_passwords() == 0
    [(url, blob, _)] = _stored(database)
    assert "hunter2" not in url and blob is not None
    rotate_keys(database, key_file)
    new = KeyRing.load(key_file)
    [(_, _, key_id)] = _stored(database)
    assert key_id == new.active
    assert CameraStore(database, cipher=FieldCipher(new)).get("old").stream_url == URL
