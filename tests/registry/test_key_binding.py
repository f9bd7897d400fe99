"""A key file belongs to one database: a foreign or altered key is refused before any write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from cunan.registry.keybinding import ForeignKeyFileError, bind_key_ring
from cunan.registry.keys import rotate_keys
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.registry.helpers import consent, template


def _enrol(database: Database, ring: KeyRing) -> int:
    service = RegistryService(database, FieldCipher(ring))
    village = service.add_village("v")
    return service.add_person(
        NewPerson(name="A", village_id=village), consent=consent(), templates=[template(1)]
    )


def test_a_key_file_from_another_data_dir_is_refused(database: Database, tmp_path: Path) -> None:
    ours, theirs = KeyRing.generate(), KeyRing.generate()
    bind_key_ring(database, ours, tmp_path / "cunan.key")
    with pytest.raises(ForeignKeyFileError, match=f"密钥文件与数据库不符.*{theirs.active}"):
        bind_key_ring(database, theirs, tmp_path / "cunan.key")
    bind_key_ring(database, ours, tmp_path / "cunan.key")  # its own key still opens it


def test_a_key_with_a_known_id_but_other_bytes_is_refused(
    database: Database, tmp_path: Path
) -> None:
    ours = KeyRing.generate()
    bind_key_ring(database, ours, tmp_path / "cunan.key")
    forged = KeyRing(active=ours.active, keys={ours.active: bytes(32)})
    with pytest.raises(ForeignKeyFileError, match="differs"):
        bind_key_ring(database, forged, tmp_path / "cunan.key")


def test_a_database_from_before_key_checks_binds_to_its_own_key_only(
    database: Database, tmp_path: Path
) -> None:
    ours, theirs = KeyRing.generate(), KeyRing.generate()
    _enrol(database, ours)  # data written without any key check recorded
    with pytest.raises(ForeignKeyFileError, match=ours.active):
        bind_key_ring(database, theirs, tmp_path / "cunan.key")
    bind_key_ring(database, ours, tmp_path / "cunan.key")
    with pytest.raises(ForeignKeyFileError):
        bind_key_ring(database, theirs, tmp_path / "cunan.key")


def test_rotation_binds_the_new_key_and_retires_the_old(database: Database, tmp_path: Path) -> None:
    key_file = tmp_path / "cunan.key"
    old = KeyRing.generate()
    old.save(key_file)
    _enrol(database, old)
    bind_key_ring(database, old, key_file)
    rotate_keys(database, key_file)
    new = KeyRing.load(key_file)
    bind_key_ring(database, new, key_file)
    # A backup of the key file from before the rotation is refused, not half-used.
    with pytest.raises(ForeignKeyFileError, match="retired"):
        bind_key_ring(database, old, key_file)
    with database.engine.connect() as conn:
        ids = set(conn.execute(text("SELECT key_id FROM key_checks")).scalars())
    assert ids == {new.active}


# -- the commands ---------------------------------------------------------------------------


def _cunan(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from cunan.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def two_data_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUNAN_ADMIN_PASSWORD", "Correct-horse-battery-9")
    dirs = tmp_path / "a", tmp_path / "b"
    for d in dirs:
        assert _cunan("init", "--data-dir", str(d))[0] == 0
    return dirs


def test_cli_refuses_a_swapped_key_file(two_data_dirs: tuple[Path, Path]) -> None:
    a, b = two_data_dirs
    shutil.copy2(b / "cunan.key", a / "cunan.key")
    code, out = _cunan("people", "list", "--data-dir", str(a))
    assert code == 6 and "密钥文件与数据库不符" in out and "Traceback" not in out


def test_lost_key_remove_and_withdraw_still_delete_then_reset_starts_over(
    two_data_dirs: tuple[Path, Path],
) -> None:
    from cunan.config import Settings
    from cunan.registry.datadir import open_registry

    data = two_data_dirs[0]
    registry = open_registry(data, Settings())
    try:
        service = registry.service
        village = service.default_village_id()
        first = service.add_person(
            NewPerson(name="A", village_id=village), consent=consent(), templates=[template(1)]
        )
        second = service.add_person(
            NewPerson(name="B", village_id=village), consent=consent(), templates=[template(2)]
        )
    finally:
        registry.close()
    (data / "cunan.key").unlink()

    code, out = _cunan("people", "list", "--data-dir", str(data))
    assert code == 6 and "key file not found" in out  # unavailable
    code, out = _cunan("people", "remove", str(first), "--yes", "--data-dir", str(data))
    assert code == 0, out
    code, out = _cunan(
        "people",
        "withdraw-consent",
        str(second),
        "--recorded-by",
        "王",
        "--alternative",
        "ID card",
        "--data-dir",
        str(data),
    )
    assert code == 0, out
    assert "deleted 1 template(s)" in out

    code, out = _cunan("keys", "reset", "--data-dir", str(data))
    assert code == 2 and "--discard-face-data" in out
    code, out = _cunan("keys", "reset", "--discard-face-data", "--data-dir", str(data))
    assert code == 0, out
    assert (data / "cunan.key").stat().st_mode & 0o777 == 0o600
    code, out = _cunan("people", "list", "--data-dir", str(data))
    assert code == 0, out
    # The key works again; a second reset is refused while it exists.
    code, out = _cunan("keys", "reset", "--discard-face-data", "--data-dir", str(data))
    assert code == 4 and "keys rotate" in out  # a conflict with the key file there
    code, out = _cunan("audit", "list", "--action", "key.reset", "--data-dir", str(data))
    assert code == 0 and "key.reset" in out


def test_reset_deletes_face_data_that_no_key_can_read(database: Database, tmp_path: Path) -> None:
    from cunan.pipeline.store import CameraStore
    from cunan.registry.keys import reset_keys

    lost = KeyRing.generate()
    person = _enrol(database, lost)
    CameraStore(database, cipher=FieldCipher(lost)).add("gate", "rtsp://u:secret@192.0.2.1/s")
    bind_key_ring(database, lost, tmp_path / "cunan.key")
    report = reset_keys(database, tmp_path / "cunan.key")
    assert report.discarded.templates == 1 and report.discarded.camera_urls == 1
    # The camera keeps its redacted URL; its password is gone with the key.
    assert CameraStore(database).get("gate").stream_url == "rtsp://***@192.0.2.1/s"
    new = KeyRing.load(tmp_path / "cunan.key")
    bind_key_ring(database, new, tmp_path / "cunan.key")
    service = RegistryService(database, FieldCipher(new))
    assert service.templates_of(person) == []
    assert service.get_person(person).name == "A"  # the registry itself stays


def test_database_and_wal_are_private_and_checked_at_start(
    two_data_dirs: tuple[Path, Path],
) -> None:
    import sqlite3

    data = two_data_dirs[0]
    db = data / "cunan.db"
    assert db.stat().st_mode & 0o777 == 0o600
    # While a connection is open the WAL and SHM exist: SQLite gives them the file's mode.
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE probe (x INTEGER)")
        conn.commit()
        for suffix in ("-wal", "-shm"):
            assert (data / f"cunan.db{suffix}").stat().st_mode & 0o777 == 0o600
    finally:
        conn.close()
    db.chmod(0o644)
    code, out = _cunan("people", "list", "--data-dir", str(data))
    assert code == 6 and "chmod 600" in out and "Traceback" not in out
    code, out = _cunan("audit", "verify", "--data-dir", str(data))
    assert code == 6 and "chmod 600" in out


def test_init_after_a_half_failed_init_binds_the_new_key(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cunan.config import Settings
    from cunan.registry.datadir import initialise

    # An earlier init bound its key, then failed before creating the admin (key file gone).
    bind_key_ring(database, KeyRing.generate(), tmp_path / "lost.key")
    monkeypatch.setenv("CUNAN_KEY_FILE", str(tmp_path / "cunan.key"))
    settings = Settings(database_url=str(database.engine.url.render_as_string(False)))
    registry = initialise(
        tmp_path / "data",
        settings,
        admin_username="admin",
        admin_password="Correct-horse-battery-9",
        village_name="v",
    )
    registry.close()
    bind_key_ring(database, KeyRing.load(tmp_path / "cunan.key"), tmp_path / "cunan.key")
