"""The template change feed commits its seqs in order, also under concurrent writers."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from cunan.storage.database import Database
from cunan.storage.enums import TemplateChangeKind
from cunan.storage.repositories import TEMPLATE_CHANGE_LOCK_KEY, RegistryRepository


def _record(repo: RegistryRepository, template_id: int) -> None:
    repo.record_change(
        TemplateChangeKind.REMOVED, template_id=template_id, person_id=1, model_id="m"
    )
    repo.session.flush()


def test_a_second_writer_waits_for_the_first_to_commit(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite's BEGIN IMMEDIATE already serialises writers")
    second_done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with database.transaction() as session:
                _record(RegistryRepository(session), 2)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            second_done.set()

    with database.transaction() as session:
        _record(RegistryRepository(session), 1)
        thread = threading.Thread(target=second)
        thread.start()
        # Wait (by state, not by time) until the second writer blocks on the feed's lock.
        with database.engine.connect() as watcher:
            while not second_done.is_set():
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND objid = :lo"
                    ),
                    {"lo": TEMPLATE_CHANGE_LOCK_KEY & 0xFFFFFFFF},
                ).scalar_one()
                watcher.rollback()
                if waiting:
                    break
        assert not second_done.is_set() and not errors  # it has not taken a seq yet
    thread.join()
    assert not errors
    with database.transaction() as session:
        rows = RegistryRepository(session).changes_since(0, limit=10)
        # The first writer committed first and holds the lower seq.
        assert [r.template_id for r in rows] == [1, 2]
        assert rows[0].seq < rows[1].seq
