"""Audit fixtures: a migrated database per test on SQLite (a file) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade
from tests.storage.dbfixtures import db_url

__all__ = ["db_url"]


def migrate(database: Database) -> None:
    # "heads": other migrations may branch from 0001 until the lead chains them.
    upgrade(database, "heads")


def clear_audit_log(database: Database) -> None:
    """Empty the append-only table between tests: only possible with its triggers off."""
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(text("DELETE FROM notify_dead_letters"))
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


@pytest.fixture
def database(db_url: str, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database: a new SQLite file per test, or the module's PostgreSQL."""
    url = sqlite_url(tmp_path) if db_url.startswith("sqlite") else db_url
    db = Database.open(url, connect_timeout_s=3)
    migrate(db)
    try:
        yield db
    finally:
        if not db.is_sqlite:
            clear_audit_log(db)
        db.dispose()


def sqlite_path(database: Database) -> Path:
    assert database.engine.url.database is not None
    return Path(database.engine.url.database)
