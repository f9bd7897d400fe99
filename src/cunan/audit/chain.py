"""Verification of the audit chain: finds the first edited, missing, inserted or moved entry."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum

from cunan.audit.log import row_hash
from cunan.storage.audit_repository import stored_entries
from cunan.storage.audit_tables import GENESIS_HASH, AuditEntry
from cunan.storage.database import Database

logger = logging.getLogger(__name__)

#: Entries read per transaction.
BATCH = 2000


class ProblemKind(StrEnum):
    SEQ_GAP = "seq gap"
    HASH_MISMATCH = "hash mismatch"
    PREV_HASH_MISMATCH = "prev_hash mismatch"
    BAD_DETAILS = "unreadable details"
    ANCHOR_MISSING = "anchor missing"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Where the chain breaks first, and why."""

    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of a verification: entries checked, the head, and the first problem."""

    entries: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(
    database: Database, *, anchor: str | None = None, batch_size: int = BATCH
) -> ChainReport:
    """Walk the whole log in ``seq`` order, ``batch_size`` entries per read, recomputing every
    hash.

    ``anchor`` is a head hash recorded earlier outside the database: the chain must still
    contain it, which also catches a truncated tail or a chain rewritten from scratch (what a
    chain alone cannot show, since whoever holds the file can recompute every hash).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    expected_seq = 1
    prev_hash = GENESIS_HASH
    entries = 0
    anchor_seen = anchor is None
    problem: ChainProblem | None = None
    last_seq: int | None = None
    while problem is None:
        # Short read transactions of one batch each: on SQLite every transaction takes the
        # write lock (BEGIN IMMEDIATE), and a long walk must not stall the pipeline's writes.
        # New entries only ever join the tail, so walking on from the last seq is consistent.
        # The rows come as stored (details unparsed), so an edit to any column shows.
        batch = stored_entries(database, after_seq=last_seq, limit=batch_size)
        for row in batch:
            entries += 1
            problem = _check(row, expected_seq, prev_hash)
            if problem is not None:
                break
            if anchor is not None and row.hash == anchor:
                anchor_seen = True
            expected_seq = row.seq + 1
            prev_hash = row.hash
            last_seq = row.seq
        if len(batch) < batch_size:
            break
    head_seq = expected_seq - 1
    if problem is None and not anchor_seen:
        problem = ChainProblem(
            seq=head_seq,
            kind=ProblemKind.ANCHOR_MISSING,
            message=f"no entry up to seq {head_seq} has the anchor hash {anchor}: entries were "
            "removed from the tail or the chain was rewritten",
        )
    if problem is not None:
        logger.warning("audit chain broken at seq %d: %s", problem.seq, problem.message)
    return ChainReport(entries=entries, head_seq=head_seq, head_hash=prev_hash, problem=problem)


def _check(row: AuditEntry, expected_seq: int, prev_hash: str) -> ChainProblem | None:
    seq = row.seq
    if seq != expected_seq:
        if seq > expected_seq:
            what = (
                f"entry {expected_seq} is missing"
                if seq == expected_seq + 1
                else f"entries {expected_seq}-{seq - 1} are missing"
            )
        else:
            what = f"entry {seq} appears again or out of order"
        return ChainProblem(
            seq=expected_seq,
            kind=ProblemKind.SEQ_GAP,
            message=f"{what} (expected seq {expected_seq}, found {seq})",
        )
    try:
        details = json.loads(row.details)
    except ValueError:
        return ChainProblem(seq, ProblemKind.BAD_DETAILS, f"entry {seq}: details are not JSON")
    if row_hash(row, details) != row.hash:
        return ChainProblem(
            seq,
            ProblemKind.HASH_MISMATCH,
            f"entry {seq} was changed: its content no longer matches its hash",
        )
    if row.prev_hash != prev_hash:
        return ChainProblem(
            seq,
            ProblemKind.PREV_HASH_MISMATCH,
            f"entry {seq} does not follow entry {seq - 1}: its prev_hash is not that entry's "
            "hash (an entry was replaced or inserted)",
        )
    return None
