"""A damaged SQLite file: one line saying so and what to do, never SQL, a URL or a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cunan.cli import app
from cunan.config import Settings
from cunan.registry.datadir import open_registry
from cunan.registry.records import NewPerson
from tests.registry.helpers import consent, template

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUNAN_ADMIN_PASSWORD", "Correct-horse-battery-9")
    directory = tmp_path / "data"
    assert runner.invoke(app, ["init", "--data-dir", str(directory)]).exit_code == 0
    registry = open_registry(directory, Settings())
    try:
        village = registry.service.default_village_id()
        for i in range(40):
            registry.service.add_person(
                NewPerson(name=f"P{i}", village_id=village),
                consent=consent(),
                templates=[template(i)],
            )
    finally:
        registry.close()  # the last connection closing folds the WAL into the file
    return directory


def _assert_damage_line(output: str, directory: Path) -> None:
    assert "the database file is damaged" in output and "integrity_check" in output
    assert "sqlite:" not in output and "SELECT" not in output and "Traceback" not in output
    assert str(directory / "cunan.db") in output


def test_a_file_that_is_no_database_any_more(data: Path) -> None:
    db = data / "cunan.db"
    with db.open("r+b") as fh:
        fh.write(b"\x00garbage" * 12)  # the 100-byte header
    result = runner.invoke(app, ["people", "list", "--data-dir", str(data)])
    assert result.exit_code == 2
    _assert_damage_line(result.output, data)


def test_a_malformed_templates_page_is_noticed(data: Path) -> None:
    db = data / "cunan.db"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'face_templates'"
        ).fetchone()[0]
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xee" * 64)  # an impossible page type and cell pointers

    result = runner.invoke(app, ["audit", "verify", "--data-dir", str(data)])
    assert result.exit_code == 1
    _assert_damage_line(result.output, data)
    result = runner.invoke(
        app, ["people", "add", "--name", "X", "--non-face", "ID card", "--data-dir", str(data)]
    )
    assert result.exit_code == 2
    _assert_damage_line(result.output, data)


def test_damage_on_postgresql_names_no_url_or_sql() -> None:
    from cunan.storage.database import damaged_message, is_damage

    # What PostgreSQL says of an unreadable page, and what SQLite says of its files.
    assert is_damage('could not read block 7 in file "base/16384/16402": read only 0 bytes')
    assert is_damage("database disk image is malformed")
    assert is_damage("file is not a database")
    assert not is_damage("UNIQUE constraint failed: people.village_id, people.id_number")
    message = damaged_message("postgresql+psycopg://cunan:pw@10.0.0.5:5432/village")
    assert "数据库已损坏" in message and "backup" in message
    assert "pw" not in message and "10.0.0.5" not in message and "postgresql" not in message
