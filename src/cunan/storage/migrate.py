"""Schema migrations run from code: ``upgrade head`` on init and every open."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cunan.storage.database import Database, translate_errors
from cunan.storage.errors import StorageError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class MigrationError(StorageError):
    """A migration would leave the schema inconsistent; it was rolled back."""


def alembic_config(database: Database | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database is not None:
        config.set_main_option("sqlalchemy.url", database.url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships at least one revision
    return head


def current_revision(database: Database) -> str | None:
    with translate_errors(database.url), database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one transaction (a failed upgrade changes nothing
    on PostgreSQL; SQLite DDL is transactional too)."""
    _migrate(database, revision, command.upgrade)


def downgrade(database: Database, revision: str) -> None:
    """Take the schema back to ``revision``, with the same care as :func:`upgrade` (one
    transaction; on SQLite foreign keys off while tables are rebuilt, checked before commit).
    A migration that refuses (e.g. rows the older schema cannot hold) changes nothing."""
    _migrate(database, revision, command.downgrade)


def _migrate(database: Database, revision: str, step: Callable[[Config, str], None]) -> None:
    config = alembic_config(database)
    with translate_errors(database.url), database.engine.connect() as conn:
        raw = conn.connection.dbapi_connection if database.is_sqlite else None
        if raw is not None:
            # SQLite changes a table by rebuilding it, and DROP TABLE with foreign keys on
            # would cascade into the rows that reference it. The pragma only works outside
            # a transaction; the check below stands in for it before the commit.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                before = MigrationContext.configure(conn).get_current_revision()
                step(config, revision)
                after = MigrationContext.configure(conn).get_current_revision()
                # Checked only when a migration ran: the check reads every table.
                if raw is not None and before != after:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise MigrationError(
                            f"migration to {revision} would break {len(broken)} "
                            f"reference(s), first in table {broken[0][0]}; nothing was changed"
                        )
        finally:
            if raw is not None:
                # The connection goes back to the pool: every later user expects them on.
                raw.execute("PRAGMA foreign_keys=ON")
    logger.debug("database %s at revision %s", database.url, revision)


def is_up_to_date(database: Database) -> bool:
    return current_revision(database) == head_revision()
