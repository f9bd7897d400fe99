"""SQLite connections are pooled: transactions reuse them, and ``dispose`` closes them all."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade


def test_transactions_reuse_connections_and_dispose_closes_them(tmp_path: Path) -> None:
    database = Database.open(sqlite_url(tmp_path))
    opened: list[Any] = []
    closed: list[Any] = []
    event.listen(database.engine, "connect", lambda conn, _record: opened.append(conn))
    event.listen(database.engine.pool, "close", lambda conn, _record: closed.append(conn))
    upgrade(database)

    def work() -> None:
        for _ in range(10):
            with database.read() as session:
                session.execute(text("SELECT count(*) FROM villages"))
            with database.transaction() as session:
                session.execute(text("SELECT 1"))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 60 transactions on three threads: a few connections, each set up once (it was one
    # new connection, six pragmas and a close per transaction).
    assert 1 <= len(opened) <= 3
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    database.dispose()
    assert len(closed) == len(opened)  # nothing keeps the file open after dispose
