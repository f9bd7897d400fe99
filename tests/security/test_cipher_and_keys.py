from __future__ import annotations

from pathlib import Path

import pytest

from cunan.security.cipher import DecryptionError, FieldCipher, blob_key_id
from cunan.security.keys import KeyFileError, KeyFilePermissionError, KeyRing


def test_round_trip_with_random_nonce() -> None:
    cipher = FieldCipher(KeyRing.generate())
    a = cipher.encrypt(b"secret", b"template:1")
    b = cipher.encrypt(b"secret", b"template:1")
    assert a != b  # a fresh nonce per value
    assert b"secret" not in a
    assert cipher.decrypt(a, b"template:1") == b"secret"
    assert blob_key_id(a) == cipher.active_key_id


def test_wrong_context_or_tampering_fails_clearly() -> None:
    cipher = FieldCipher(KeyRing.generate())
    blob = cipher.encrypt(b"secret", b"template:1")
    with pytest.raises(DecryptionError, match="template 2: ciphertext does not decrypt"):
        cipher.decrypt(blob, b"template:2", what="template 2")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered, b"template:1")
    with pytest.raises(DecryptionError, match="bad header"):
        cipher.decrypt(b"\x00garbage", b"template:1")


def test_other_key_cannot_decrypt() -> None:
    blob = FieldCipher(KeyRing.generate()).encrypt(b"x", b"c")
    with pytest.raises(KeyFileError, match="not in the key file"):
        FieldCipher(KeyRing.generate()).decrypt(blob, b"c")


def test_key_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "cunan.key"
    ring = KeyRing.generate()
    ring.save(path, overwrite=False)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = KeyRing.load(path)
    assert loaded.active == ring.active and loaded.keys == ring.keys
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        ring.save(path, overwrite=False)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "cunan.key"
    KeyRing.generate().save(path)
    path.chmod(mode)
    with pytest.raises(KeyFilePermissionError, match="chmod 600"):
        KeyRing.load(path)


def test_missing_or_malformed_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cunan init"):
        KeyRing.load(tmp_path / "nope.key")
    bad = tmp_path / "bad.key"
    bad.write_text("{}")
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a CunAn key file"):
        KeyRing.load(bad)


def test_rotation_keeps_old_keys_until_retired() -> None:
    ring = KeyRing.generate()
    rotated = ring.with_new_active_key()
    assert rotated.active != ring.active and ring.active in rotated.keys
    assert set(rotated.only_active().keys) == {rotated.active}


def test_key_file_directory_is_fsynced_after_each_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cunan.security import keys as keys_module

    path = tmp_path / "cunan.key"
    seen: list[tuple[Path, str | None]] = []

    def record(directory: Path) -> None:
        # By then the new file must be in place under its final name.
        seen.append((directory, KeyRing.load(path).active if path.exists() else None))

    monkeypatch.setattr(keys_module, "fsync_directory", record)
    first = KeyRing.generate()
    first.save(path, overwrite=False)
    second = first.with_new_active_key()
    second.save(path)
    second.only_active().save(path)
    assert seen == [(tmp_path, first.active), (tmp_path, second.active), (tmp_path, second.active)]


def test_fsync_directory_runs_on_a_real_directory(tmp_path: Path) -> None:
    from cunan.security.keys import fsync_directory

    fsync_directory(tmp_path)  # no error: the directory can be opened and flushed
