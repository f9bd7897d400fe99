"""Tampering done directly in the database, as someone holding the file would do it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import psycopg
import pytest

from cunan.audit import AuditLog, entry_hash, user_actor, verify_chain
from cunan.audit.chain import ProblemKind
from cunan.storage.database import Database
from tests.audit.conftest import sqlite_path

Execute = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


@contextmanager
def attacker(database: Database) -> Iterator[Execute]:
    """A raw connection that bypasses CunAn, with the append-only triggers removed."""
    if database.is_sqlite:
        with closing(sqlite3.connect(sqlite_path(database))) as conn:
            conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")

            def run_sqlite(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()

            yield run_sqlite
            conn.commit()
        return
    url = database.engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as pg:
        pg.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")

        def run_pg(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            cur = pg.execute(sql.encode(), params)  # type: ignore[call-overload]
            return cur.fetchall() if cur.description else []

        yield run_pg
        pg.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


@pytest.fixture
def chain(database: Database) -> Database:
    log = AuditLog(database)
    for i in range(1, 7):
        log.record(
            "search", actor=user_actor(i), target_type="case", target_id=i, details={"results": i}
        )
    assert verify_chain(database).ok
    return database


def _broken(database: Database) -> tuple[int, ProblemKind]:
    report = verify_chain(database)
    assert report.problem is not None, "tampering went unnoticed"
    return report.problem.seq, report.problem.kind


def test_walk_in_batches_reads_every_entry_once_and_finds_a_later_edit(chain: Database) -> None:
    # Each batch reads on from the last seq of the one before: none skipped, none twice.
    for size in (1, 2, 4, 6, 7):
        report = verify_chain(chain, batch_size=size)
        assert report.ok, (size, report.problem)
        assert (report.entries, report.head_seq) == (6, 6)
    with attacker(chain) as sql:
        sql("UPDATE audit_log SET details = %s WHERE seq = %s", ('{"results":0}', 5))
    report = verify_chain(chain, batch_size=2)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (5, ProblemKind.HASH_MISMATCH)


def test_edited_detail_is_found(chain: Database) -> None:
    with attacker(chain) as sql:
        sql("UPDATE audit_log SET details = %s WHERE seq = %s", ('{"results":0}', 3))
    assert _broken(chain) == (3, ProblemKind.HASH_MISMATCH)


def test_edited_actor_is_found(chain: Database) -> None:
    with attacker(chain) as sql:
        sql("UPDATE audit_log SET actor = %s WHERE seq = %s", ("user:99", 5))
    assert _broken(chain) == (5, ProblemKind.HASH_MISMATCH)


def test_deleted_entry_is_found(chain: Database) -> None:
    with attacker(chain) as sql:
        sql("DELETE FROM audit_log WHERE seq = %s", (4,))
    seq, kind = _broken(chain)
    assert (seq, kind) == (4, ProblemKind.SEQ_GAP)
    assert "entry 4 is missing" in (verify_chain(chain).problem or _no()).message


def test_deleted_and_renumbered_entries_are_found(chain: Database) -> None:
    with attacker(chain) as sql:
        sql("DELETE FROM audit_log WHERE seq = %s", (2,))
        for seq in range(3, 7):
            sql("UPDATE audit_log SET seq = %s WHERE seq = %s", (seq - 1, seq))
    assert _broken(chain) == (2, ProblemKind.HASH_MISMATCH)


def test_swapped_rows_are_found(chain: Database) -> None:
    columns = "recorded_at, actor, action, target_type, target_id, details, prev_hash, hash"
    with attacker(chain) as sql:
        [row2] = sql(f"SELECT {columns} FROM audit_log WHERE seq = %s", (2,))
        [row4] = sql(f"SELECT {columns} FROM audit_log WHERE seq = %s", (4,))
        assign = ", ".join(f"{c} = %s" for c in columns.split(", "))
        # The hash column is unique: park one row's hash while moving the other.
        sql("UPDATE audit_log SET hash = %s WHERE seq = %s", ("parked", 4))
        sql(f"UPDATE audit_log SET {assign} WHERE seq = %s", (*row4, 2))
        sql(f"UPDATE audit_log SET {assign} WHERE seq = %s", (*row2, 4))
    assert _broken(chain) == (2, ProblemKind.HASH_MISMATCH)


def test_inserted_forged_entry_is_found(chain: Database) -> None:
    # A forger who knows the hash function fills in a valid hash, but cannot make the next
    # entry (whose hash covers the old prev_hash) follow the forged one.
    with attacker(chain) as sql:
        [(prev,)] = sql("SELECT hash FROM audit_log WHERE seq = %s", (3,))
        for seq in range(6, 3, -1):
            sql("UPDATE audit_log SET seq = %s WHERE seq = %s", (seq + 1, seq))
        [(ts,)] = sql("SELECT recorded_at FROM audit_log WHERE seq = %s", (3,))
    entries = AuditLog(chain).recent(limit=10)
    when = next(r.recorded_at for r in entries if r.seq == 3)
    forged = entry_hash(
        seq=4,
        recorded_at=when,
        actor="user:1",
        action="export",
        target_type=None,
        target_id=None,
        details={},
        prev_hash=prev,
    )
    with attacker(chain) as sql:
        sql(
            "INSERT INTO audit_log (seq, recorded_at, actor, action, target_type, target_id, "
            "details, prev_hash, hash) VALUES (%s, %s, %s, %s, NULL, NULL, %s, %s, %s)",
            (4, ts, "user:1", "export", "{}", prev, forged),
        )
    assert _broken(chain) == (5, ProblemKind.HASH_MISMATCH)


def test_forged_entry_with_a_wrong_link_is_found(chain: Database) -> None:
    head = verify_chain(chain)
    entries = AuditLog(chain).recent(limit=1)
    when = entries[0].recorded_at
    bogus_prev = "f" * 64
    forged = entry_hash(
        seq=7,
        recorded_at=when,
        actor="user:1",
        action="export",
        target_type=None,
        target_id=None,
        details={},
        prev_hash=bogus_prev,
    )
    with attacker(chain) as sql:
        [(ts,)] = sql("SELECT recorded_at FROM audit_log WHERE seq = %s", (6,))
        sql(
            "INSERT INTO audit_log (seq, recorded_at, actor, action, target_type, target_id, "
            "details, prev_hash, hash) VALUES (%s, %s, %s, %s, NULL, NULL, %s, %s, %s)",
            (7, ts, "user:1", "export", "{}", bogus_prev, forged),
        )
    assert head.ok
    assert _broken(chain) == (7, ProblemKind.PREV_HASH_MISMATCH)


def test_truncated_tail_is_found_only_with_an_anchor(chain: Database) -> None:
    anchor = verify_chain(chain).head_hash
    with attacker(chain) as sql:
        sql("DELETE FROM audit_log WHERE seq >= %s", (5,))
    assert verify_chain(chain).ok  # a chain alone cannot know it was longer
    report = verify_chain(chain, anchor=anchor)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (4, ProblemKind.ANCHOR_MISSING)


def _no() -> Any:
    raise AssertionError("expected a problem")
