"""Queries of the audit log: the append lock, the tail, new entries and entries as stored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cunan.storage.audit_tables import AUDIT_APPEND_LOCK_KEY, AuditEntry
from cunan.storage.database import Database, translate_errors


class AuditRepository:
    """Reads and appends audit entries on one session (the caller's transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_for_append(self) -> None:
        """Serialise appenders until the session's transaction ends, so the chain cannot fork.

        SQLite needs nothing here: CunAn's transactions start with ``BEGIN IMMEDIATE``, which
        already admits one writer at a time. On PostgreSQL a transaction-scoped advisory lock
        is taken; ``SELECT ... FOR UPDATE`` on the tail row would not do, since an empty table
        has no row to lock and a waiter would wake up holding the old tail.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_APPEND_LOCK_KEY}
            )

    def tail(self) -> AuditEntry | None:
        """The entry with the highest ``seq`` (None for an empty log)."""
        return self.session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Insert the entry now (flushed), inside the session's transaction."""
        self.session.add(entry)
        self.session.flush()
        return entry

    def recent(
        self, *, limit: int, action: str | None = None, actor: str | None = None
    ) -> Sequence[AuditEntry]:
        """The newest entries first, optionally of one action or actor."""
        query = select(AuditEntry)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        return self.session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)).all()

    def entries_after(self, seq: int | None, *, limit: int) -> Sequence[AuditEntry]:
        """Up to ``limit`` entries with ``seq`` above ``seq`` (all from the first when None),
        in ``seq`` order, with their columns exactly as stored."""
        query = select(AuditEntry).order_by(AuditEntry.seq).limit(limit)
        if seq is not None:
            query = query.where(AuditEntry.seq > seq)
        return self.session.scalars(query).all()


def stored_entries(database: Database, *, after_seq: int | None, limit: int) -> list[AuditEntry]:
    """One batch of :meth:`AuditRepository.entries_after`, read in a short transaction of its
    own, outside :meth:`Database.transaction` and its process-wide SQLite writer lock."""
    with translate_errors(database.url), Session(database.engine) as session:
        return list(AuditRepository(session).entries_after(after_seq, limit=limit))
