"""Bulk inserts for generated data sets (benchmarks): ids chosen by the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from cunan.storage.tables import Base

#: Rows per INSERT statement: bounded so parameter lists stay small on both engines.
BULK_CHUNK = 2000


class BulkRepository:
    """Inserts rows whose ids the caller picked (ciphertexts bind their row id, so the id
    must be known before encrypting); :meth:`sync_sequences` then moves PostgreSQL's id
    sequences past them so later ordinary inserts never collide."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def next_id(self, table: type[Base]) -> int:
        """One more than the largest ``id`` of ``table`` (1 when it is empty)."""
        column = table.__table__.c.id
        return int(self.session.scalar(select(func.max(column))) or 0) + 1

    def insert(self, table: type[Base], rows: Sequence[Mapping[str, object]]) -> None:
        """Insert ``rows`` (attribute name -> value) in statements of :data:`BULK_CHUNK`."""
        for start in range(0, len(rows), BULK_CHUNK):
            self.session.execute(insert(table), list(rows[start : start + BULK_CHUNK]))

    def sync_sequences(self, tables: Sequence[type[Base]]) -> None:
        """PostgreSQL: set each table's ``id`` sequence to its largest id (SQLite needs
        nothing: it takes the next rowid, and AUTOINCREMENT tables remember explicit ids)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        for table in tables:
            name = table.__tablename__
            self.session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence(:table, 'id'), "
                    f'(SELECT COALESCE(MAX(id), 1) FROM "{name}"))'
                ),
                {"table": name},
            )
