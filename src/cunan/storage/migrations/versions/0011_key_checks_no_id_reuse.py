"""Key check values bind a key file to its database; SQLite ids are never reused; camera
URLs with a password get an encrypted column (sealed by the application, which holds the key).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: Tables whose ids are referenced from the audit log, sightings or cases: a deleted row's
#: id must never come back for a new row (PostgreSQL's sequences never go back already).
AUTOINCREMENT_TABLES = (
    "people",
    "consents",
    "enrolment_photos",
    "tenancies",
    "cameras",
    "sightings",
    "cases",
    "users",
)


def upgrade() -> None:
    op.create_table(
        "key_checks",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("check_value", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_checks")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_autoincrement(bind)
    # After the rebuild: SQLite appends added columns to the table's text as they are.
    op.add_column("cameras", sa.Column("stream_url_ciphertext", sa.LargeBinary(), nullable=True))
    op.add_column("cameras", sa.Column("key_id", sa.String(length=32), nullable=True))


def _sqlite_autoincrement(bind: sa.engine.Connection) -> None:
    for table in AUTOINCREMENT_TABLES:
        _rebuild_with_autoincrement(bind, table)
    # Ids removed before this migration: the change feed still names removed people, so a
    # new person starts above every id it mentions.
    bind.exec_driver_sql(
        "UPDATE sqlite_sequence SET seq = max(seq, "
        "(SELECT coalesce(max(person_id), 0) FROM template_changes)) WHERE name = 'people'"
    )


def _rebuild_with_autoincrement(bind: sa.engine.Connection, table: str) -> None:
    """SQLite's table rebuild (the documented 12 steps): same columns, constraints and
    indexes, with ``INTEGER PRIMARY KEY AUTOINCREMENT``. ``cunan.storage.migrate`` runs
    migrations with foreign keys off, so dropping the old table cascades nothing."""
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    if sql is None or "AUTOINCREMENT" in sql:
        return
    pk = re.compile(rf"\s*CONSTRAINT pk_{table} PRIMARY KEY \(id\),?")
    column = re.compile(r"\bid INTEGER NOT NULL,")
    if not pk.search(sql) or not column.search(sql):
        raise RuntimeError(f"table {table}: unexpected schema, cannot add AUTOINCREMENT")
    new_sql = column.sub("id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,", pk.sub("", sql), 1)
    new_sql = re.sub(r",(\s*\)\s*)$", r"\1", new_sql)  # the PK was the last clause
    new_sql = new_sql.replace(f"CREATE TABLE {table} (", f"CREATE TABLE _new_{table} (", 1)
    extras = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL",
            (table,),
        )
    ]
    bind.exec_driver_sql(new_sql)
    bind.exec_driver_sql(f"INSERT INTO _new_{table} SELECT * FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for statement in extras:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    # AUTOINCREMENT stays: a plain INTEGER PRIMARY KEY would allow reuse again, and the
    # rebuild back would gain nothing. Sealed camera URLs keep their redacted form: the
    # password must be entered again after a downgrade.
    # Plain DROP COLUMN (SQLite >= 3.35, PostgreSQL): a batch rebuild of cameras would
    # cascade into the sightings and leases that reference it.
    op.execute("ALTER TABLE cameras DROP COLUMN key_id")
    op.execute("ALTER TABLE cameras DROP COLUMN stream_url_ciphertext")
    op.drop_table("key_checks")
