from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cunan.audit import AuditLog, system_actor
from cunan.audit.cli import audit_app
from cunan.registry.datadir import Registry
from cunan.storage.database import Database, sqlite_url
from tests.audit.conftest import migrate
from tests.cli_helpers import registry

__all__ = ["registry"]

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    db = Database.open(sqlite_url(tmp_path))
    migrate(db)
    log = AuditLog(db)
    for i in range(5):
        log.record("purge", actor=system_actor(), details={"crops": i})
    db.dispose()
    return tmp_path


def test_verify_intact_chain_exits_0_and_prints_the_head(data_dir: Path) -> None:
    result = runner.invoke(audit_app, ["verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "intact: 5 entries" in result.output
    as_json = runner.invoke(audit_app, ["verify", "--data-dir", str(data_dir), "--json"])
    report = json.loads(as_json.output)
    assert report["ok"] and report["head_seq"] == 5 and len(report["head_hash"]) == 64
    anchored = runner.invoke(
        audit_app, ["verify", "--data-dir", str(data_dir), "--anchor", report["head_hash"]]
    )
    assert anchored.exit_code == 0


def test_verify_tampered_chain_exits_1_and_says_where(data_dir: Path) -> None:
    with closing(sqlite3.connect(data_dir / "cunan.db")) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET details = '{\"crops\":0}' WHERE seq = 4")
        conn.commit()
    result = runner.invoke(audit_app, ["verify", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "BROKEN at seq 4: hash mismatch" in result.output
    as_json = runner.invoke(audit_app, ["verify", "--data-dir", str(data_dir), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["problem"]["seq"] == 4


def test_verify_with_a_missing_anchor_exits_1(data_dir: Path) -> None:
    result = runner.invoke(
        audit_app, ["verify", "--data-dir", str(data_dir), "--anchor", "ab" * 32]
    )
    assert result.exit_code == 1
    assert "anchor missing" in result.output


def test_verify_without_a_database_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUNAN_DATABASE_URL", raising=False)
    result = runner.invoke(audit_app, ["verify", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "is it a CunAn data directory" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_list_shows_newest_first(registry: Registry) -> None:
    log = AuditLog(registry.database)
    for i in range(5):
        log.record("purge", actor=system_actor(), details={"crops": i})
    result = runner.invoke(
        audit_app, ["list", "--data-dir", str(registry.data_dir), "--json", "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    newest = log.recent(limit=1)[0].seq
    assert [r["seq"] for r in rows] == [newest, newest - 1]
    assert rows[0]["details"] == {"crops": 4} and len(rows[0]["hash"]) == 64
    table = runner.invoke(audit_app, ["list", "--data-dir", str(registry.data_dir)])
    assert table.exit_code == 0 and "purge" in table.output


def test_list_is_for_administrators_and_auditors(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli_helpers import staff_account

    staff_account(registry.database, "wang")
    monkeypatch.setenv("CUNAN_USER", "wang")
    result = runner.invoke(audit_app, ["list", "--data-dir", str(registry.data_dir)])
    assert result.exit_code == 5 and "audit.read" in result.output  # forbidden for staff
