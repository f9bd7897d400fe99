"""Database fixtures for both engines: SQLite in a temporary dir and a fresh PostgreSQL database."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import current_revision, head_revision, upgrade
from cunan.storage.tables import Base

#: The local server CI uses; override with CUNAN_TEST_POSTGRES_URL.
POSTGRES_ADMIN_URL = os.environ.get(
    "CUNAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_required() -> bool:
    return os.environ.get("CUNAN_REQUIRE_DATA") == "1" or os.environ.get("CI") == "true"


def _admin_engine_or_skip() -> object:
    engine = create_engine(
        POSTGRES_ADMIN_URL,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        engine.dispose()
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__})"
        if _postgres_required():
            pytest.fail(reason + " and CUNAN_REQUIRE_DATA=1 or CI=true")
        pytest.skip(reason + "; start it or set CUNAN_TEST_POSTGRES_URL")
    return engine


class DropQueue:
    """Test databases dropped in the background, all awaited at the end of the run: each
    DROP DATABASE waits for a server checkpoint (about a second), and drops issued together
    share one."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drop-db")
        self._pending: list[Future[None]] = []

    def drop(self, admin: Engine, name: str) -> None:
        self._pending.append(self._pool.submit(self._drop, admin, name))

    @staticmethod
    def _drop(admin: Engine, name: str) -> None:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()

    def finish(self) -> None:
        self._pool.shutdown(wait=True)
        for future in self._pending:
            future.result()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_drops: DropQueue,
) -> Iterator[str]:
    """A migrated, empty database URL per test module, on each engine."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("db"))
        return
    admin = _admin_engine_or_skip()
    assert isinstance(admin, Engine)
    name = f"cunan_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        postgres_drops.drop(admin, name)


def wipe(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            # Append-only tables (the audit log) refuse DELETE by trigger, by design.
            if table.info.get("append_only"):
                continue
            conn.execute(table.delete())


@functools.cache
def _head() -> str:
    return head_revision()


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A migrated database, emptied after each test."""
    db = Database.open(db_url, connect_timeout_s=3)
    # Alembic reads every migration script to learn there is nothing to do: asked only when a
    # test left the schema elsewhere (the first test of a module, or a downgrade).
    if current_revision(db) != _head():
        upgrade(db)
    try:
        yield db
    finally:
        wipe(db)
        db.dispose()


def sqlite_file(database: Database) -> Path:
    assert database.engine.url.database is not None
    return Path(database.engine.url.database)
