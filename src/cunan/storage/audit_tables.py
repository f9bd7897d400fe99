"""The audit log's table: an append-only, hash-chained record of every change, search and login."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.tables import Base

#: Key of the PostgreSQL advisory lock that serialises appends (any constant unique to CunAn;
#: see :meth:`cunan.storage.audit_repository.AuditRepository.lock_for_append`).
AUDIT_APPEND_LOCK_KEY = 0x43554E414E0A  # "CUNAN\n"

#: The ``prev_hash`` of the first entry: 64 zeros.
GENESIS_HASH = "0" * 64


class AuditEntry(Base):
    """One audit entry. Rows are never updated or deleted: triggers refuse it (defence in
    depth), and the hash chain reveals an edit made by someone who bypassed the triggers."""

    __tablename__ = "audit_log"
    # Tells test fixtures and maintenance code not to DELETE from this table.
    __table_args__ = ({"info": {"append_only": True}},)

    # Assigned by the writer (tail + 1) under a lock, not by the database: a gap is tampering.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    recorded_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    #: Canonical JSON (sorted keys) of ids and counts; never names, ID numbers or face data.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
