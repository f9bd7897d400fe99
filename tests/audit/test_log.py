from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from cunan.audit import (
    AuditAction,
    AuditDetailsError,
    AuditLog,
    entry_hash,
    system_actor,
    user_actor,
    verify_chain,
)
from cunan.storage import notify_tables
from cunan.storage.audit_tables import GENESIS_HASH, AuditEntry
from cunan.storage.database import Database
from cunan.storage.errors import StorageError
from cunan.storage.tables import Base, Village


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record(
            AuditAction.SEARCH,
            actor=user_actor(i % 3 + 1),
            target_type="person",
            target_id=i,
            details={"results": i, "camera_ids": [1, 2]},
        )


def test_schema_matches_the_tables(database: Database) -> None:
    assert notify_tables.DeadLetter.__tablename__ in Base.metadata.tables
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = {"audit_log", "notify_dead_letters"}
    ours = [d for d in diff if mine & {getattr(x, "name", None) for x in _objects(d)}]
    assert ours == []


def _objects(diff: object) -> list[object]:
    items = diff if isinstance(diff, list) else [diff]
    out: list[object] = []
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):
            out.append(part)
            out.append(getattr(part, "table", None))
    return out


def test_first_entries_chain_from_genesis(database: Database) -> None:
    clock_time = datetime(2025, 6, 1, 8, 30, 0, 123456, tzinfo=UTC)
    log = AuditLog(database, clock=lambda: clock_time)
    first = log.record(AuditAction.LOGIN, actor=user_actor(1), details={"role": "admin"})
    second = log.record(AuditAction.PURGE, actor=system_actor(), details={"templates": 3})
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.recorded_at == clock_time
    assert second.hash == entry_hash(
        seq=2,
        recorded_at=clock_time,
        actor="system",
        action="purge",
        target_type=None,
        target_id=None,
        details={"templates": 3},
        prev_hash=first.hash,
    )
    report = verify_chain(database)
    assert report.ok
    assert (report.entries, report.head_seq, report.head_hash) == (2, 2, second.hash)


def test_empty_log_verifies(database: Database) -> None:
    report = verify_chain(database)
    assert report.ok and report.entries == 0 and report.head_hash == GENESIS_HASH


def test_intact_chain_of_many_entries_verifies(database: Database) -> None:
    _fill(AuditLog(database), 30)
    report = verify_chain(database)
    assert report.ok and report.head_seq == 30


def test_entry_commits_with_the_callers_transaction(database: Database) -> None:
    log = AuditLog(database)
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.add(Village(name="rolled back"))
        session.flush()
        log.record(AuditAction.PERSON_CREATE, actor="system", target_id=1, session=session)
        raise RuntimeError("the audited change fails")
    assert log.recent() == []
    with database.transaction() as session:
        village = Village(name="kept")
        session.add(village)
        session.flush()
        log.record(
            "village.create",
            actor="system",
            target_type="village",
            target_id=village.id,
            session=session,
        )
    [entry] = log.recent()
    assert entry.action == "village.create" and entry.seq == 1
    assert verify_chain(database).ok


@pytest.mark.parametrize(
    "details",
    [
        {"name": "张三"},
        {"id_number": "110101199003074514"},
        {"embedding": [0.1, 0.2]},
        {"note": "x" * 500},
        {"nested": {"phone": "13800000000"}},
        {"Bad Key": 1},
        {"blob": b"\x00"},
    ],
)
def test_details_with_personal_data_are_refused(
    database: Database, details: dict[str, object]
) -> None:
    with pytest.raises(AuditDetailsError):
        AuditLog(database).record("export", actor="user:1", details=details)  # type: ignore[arg-type]
    assert AuditLog(database).recent() == []


def test_triggers_refuse_update_and_delete(database: Database) -> None:
    _fill(AuditLog(database), 3)
    with (
        pytest.raises((StorageError, DBAPIError), match="append-only"),
        database.transaction() as s,
    ):
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(details="{}"))
    with (
        pytest.raises((StorageError, DBAPIError), match="append-only"),
        database.transaction() as s,
    ):
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    with (
        pytest.raises((StorageError, DBAPIError), match="append-only"),
        database.transaction() as s,
    ):
        row = s.get(AuditEntry, 1)
        assert row is not None
        s.delete(row)
    if not database.is_sqlite:
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_log"))
    assert verify_chain(database).ok
    assert verify_chain(database).entries == 3


def test_concurrent_appends_make_one_unbroken_chain(database: Database) -> None:
    # Two threads, each with its own AuditLog and engine (as two processes would have).
    other = Database.open(database.engine.url.render_as_string(hide_password=False))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def append(db: Database, who: int) -> None:
        log = AuditLog(db)
        try:
            start.wait(timeout=30)
            for i in range(25):
                if i % 2:
                    log.record("search", actor=user_actor(who), details={"i": i})
                else:
                    with db.transaction() as session:
                        session.add(Village(name=f"v{who}-{i}"))
                        session.flush()
                        log.record("village.create", actor=user_actor(who), session=session)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=append, args=(db, n)) for n, db in ((1, database), (2, other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    other.dispose()
    assert errors == []
    report = verify_chain(database)
    assert report.ok, report.problem
    assert report.head_seq == 50
    actors = {r.actor for r in AuditLog(database).recent(limit=100)}
    assert actors == {"user:1", "user:2"}


def test_recent_filters_and_orders_newest_first(database: Database) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    ticks = iter(range(100))
    log = AuditLog(database, clock=lambda: base + timedelta(seconds=next(ticks)))
    _fill(log, 6)
    log.record("login_failed", actor="user:9", details={"attempts": 3})
    assert [r.seq for r in log.recent(limit=3)] == [7, 6, 5]
    assert [r.seq for r in log.recent(action="login_failed")] == [7]
    assert [r.seq for r in log.recent(actor="user:1")] == [4, 1]
    assert json.loads(json.dumps(dict(log.recent(limit=1)[0].details))) == {"attempts": 3}


def test_counts_under_personal_sounding_keys_are_fine(database: Database) -> None:
    entry = AuditLog(database).record(
        AuditAction.PURGE, actor=system_actor(), details={"crops": 12, "embeddings": 3}
    )
    assert entry.details == {"crops": 12, "embeddings": 3}
