"""Row counts of the registry's tables, to show that a failed call left nothing behind."""

from __future__ import annotations

from sqlalchemy import text

from cunan.storage.database import Database

#: Everything a registration can write: the person, their records, face data, the change
#: feed the index catches up from, and the audit log.
REGISTRY_TABLES = (
    "people",
    "consents",
    "tenancies",
    "face_templates",
    "enrolment_photos",
    "template_changes",
    "audit_log",
)


def row_counts(database: Database, tables: tuple[str, ...] = REGISTRY_TABLES) -> dict[str, int]:
    """Call outside any open unit of work (on SQLite it would wait for the unit's lock)."""
    with database.engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in tables
        }
