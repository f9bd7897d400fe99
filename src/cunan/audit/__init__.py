"""Tamper-evident audit log: append-only, hash-chained entries and their verification."""

from cunan.audit.chain import ChainProblem, ChainReport, verify_chain
from cunan.audit.log import (
    AuditAction,
    AuditDetailsError,
    AuditLog,
    AuditRecord,
    cli_actor,
    entry_hash,
    system_actor,
    user_actor,
)

__all__ = [
    "AuditAction",
    "AuditDetailsError",
    "AuditLog",
    "AuditRecord",
    "ChainProblem",
    "ChainReport",
    "cli_actor",
    "entry_hash",
    "system_actor",
    "user_actor",
    "verify_chain",
]
