"""Engines and transactions: SQLite (WAL, one writer) by default, PostgreSQL for districts."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from cunan.storage.errors import (
    ConstraintViolationError,
    DatabaseBusyError,
    DatabaseDamagedError,
    DatabaseUnavailableError,
)

logger = logging.getLogger(__name__)

SQLITE_FILENAME = "cunan.db"
#: SQLite page cache per connection (KiB); with the pool below, a process holds at most
#: ``SQLITE_POOL_SIZE`` idle connections' caches (plus those of busy overflow connections).
SQLITE_CACHE_KIB = 2000
#: Idle SQLite connections kept open per process, and extra ones allowed under load. Opening
#: a connection (file, WAL index, six pragmas) cost a third of the API's time under load
#: when every transaction opened its own (docs/benchmarks.md, "HTTP API under load").
SQLITE_POOL_SIZE = 8
SQLITE_POOL_OVERFLOW = 32
#: Execution option marking a read-only transaction (see ``Database.read``).
READ_ONLY_OPTION = "cunan_read_only"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / SQLITE_FILENAME).resolve()}"


def create_private_file(path: Path) -> None:
    """Create an empty SQLite file readable by its owner only (mode 0600) if it is missing
    and its directory exists: SQLite would create it with the umask (often 0644), and gives
    the WAL and SHM files the database file's mode."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except (FileExistsError, FileNotFoundError):
        return
    os.close(fd)


def safe_url(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_database_engine(
    url: str, *, busy_timeout_s: float = 10.0, connect_timeout_s: int = 5
) -> Engine:
    """An engine set up for CunAn: pragmas for SQLite, timeouts for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            create_private_file(Path(parsed.database))
        engine = create_engine(
            parsed,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            # Pooled, handed to one thread at a time; ``Database.dispose`` closes them all,
            # so no handle keeps the file open after it.
            poolclass=QueuePool,
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_OVERFLOW,
        )
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": connect_timeout_s,
                # A server that stops answering mid-statement must not hang a call forever.
                "options": "-c statement_timeout=60000 -c lock_timeout=15000",
            },
        )
    raise ValueError(f"unsupported database {safe_url(parsed)}: use sqlite or postgresql+psycopg")


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (below) instead of pysqlite's deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
            # Deleted templates and photos are overwritten, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            # Page cache per connection, in KiB (negative = KiB): SQLite's own default, made
            # explicit so it stays bounded however large the sightings table grows.
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            # A reader: WAL gives it a snapshot without blocking or waiting for the writer.
            conn.exec_driver_sql("BEGIN DEFERRED")
            return
        # Take the write lock at BEGIN: a read-then-write transaction can never fail halfway
        # with "database is locked" after reading (SQLite has one writer at a time).
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class ReadOnlyTransactionError(RuntimeError):
    """A programming error: a write attempted inside ``Database.read``."""


class NestedTransactionError(RuntimeError):
    """A programming error: a transaction opened inside another on the same thread."""


class WriterBusyError(Exception):
    """``Database.transaction(wait=False)``: another thread of this process is writing."""


class Database:
    """An engine plus short transactions that either commit whole or leave nothing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Readers get their own engine view: on SQLite a deferred BEGIN (a WAL snapshot that
        # neither takes nor waits for the write lock), on PostgreSQL a READ ONLY transaction.
        self._read_engine = engine.execution_options(**{READ_ONLY_OPTION: True})
        self._readers = sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite has one writer: serialise this process's writers instead of spinning on
        # busy_timeout against each other.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # The thread holding the write lock: a second transaction opened by the same
        # thread would wait for itself forever, so it is refused instead (see transaction).
        self._writer: int | None = None

    @classmethod
    def open(
        cls, url: str, *, busy_timeout_s: float = 10.0, connect_timeout_s: int = 5
    ) -> Database:
        engine = create_database_engine(
            url, busy_timeout_s=busy_timeout_s, connect_timeout_s=connect_timeout_s
        )
        return cls(engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def listen_writes(self, name: str, listener: Any) -> None:
        """Register a SQLAlchemy session event (``after_flush``, ``after_commit`` ...) on
        this database's write transactions only (read-only ones never change anything)."""
        event.listen(self._sessions, name, listener)

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    def dispose(self) -> None:
        self.engine.dispose()

    def flush_deleted(self) -> None:
        """SQLite: checkpoint the WAL into the file and truncate it, so that rows just deleted
        (overwritten in the file by ``secure_delete``) leave no old copy in the WAL. Pooled
        connections keep the WAL alive between transactions; without this the removed
        bytes stayed there until an automatic checkpoint. Best effort: a reader in the middle
        of a snapshot can hold the WAL for a moment (the next checkpoint completes it)."""
        if not self.is_sqlite or _unit_is_open(self):
            return
        with translate_errors(self.url), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy is not None and busy[0]:
            logger.debug("WAL checkpoint after a deletion was busy; the next one completes it")

    def damage(self, table: str | None = None) -> list[str]:
        """SQLite's ``PRAGMA quick_check`` (of one table and its indexes, or of all): the
        problems found, empty when the file is sound. PostgreSQL checks its own pages
        (checksums) as it reads them, so nothing is scanned there."""
        if not self.is_sqlite:
            return []
        if table is not None and not re.fullmatch(r"[a-z_]+", table):
            raise ValueError(f"not a table name: {table!r}")
        pragma = f"PRAGMA quick_check({table})" if table else "PRAGMA quick_check"
        try:
            with translate_errors(self.url), self.engine.connect() as conn:
                rows = [str(r[0]) for r in conn.exec_driver_sql(pragma)]
        except DatabaseDamagedError as exc:
            return [str(exc)]
        return [] if rows == ["ok"] else rows

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        ``wait=False``: on SQLite, :class:`WriterBusyError` at once instead of waiting while
        another thread of this process writes (for writes that can as well happen later)."""
        lock = self._write_lock
        if lock is not None:
            if self._writer == threading.get_ident():
                raise NestedTransactionError(
                    "a transaction is already open on this thread; SQLite has one writer, so "
                    "a second one would wait for the first forever (join the open unit of "
                    "work instead: RegistryService.unit_of_work)"
                )
            if not lock.acquire(blocking=wait):
                raise WriterBusyError(f"database {self.url}: another write is in progress")
            self._writer = threading.get_ident()
        try:
            with translate_errors(self.url), self._sessions() as session, session.begin():
                yield session
        finally:
            if lock is not None:
                self._writer = None
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: a consistent snapshot that never queues behind writers.

        Page views and API reads use it so that camera writers, case grouping and imports
        (which hold SQLite's single write lock) never make a reader wait. Any write inside
        it is refused and the transaction rolled back.
        """
        with translate_errors(self.url), self._readers() as session:
            if not self.is_sqlite:
                session.execute(text("SET TRANSACTION READ ONLY"))
            yield session
            if session.new or session.dirty or session.deleted:
                raise ReadOnlyTransactionError("a read-only transaction tried to write")
            # Leaving the block closes the session: its transaction ends without a commit
            # and the rows read stay loaded (a rollback would expire them).


def _unit_is_open(database: Database) -> bool:
    # A transaction still open on this thread would make the checkpoint wait for itself.
    return database._writer == threading.get_ident()


def rowcount(result: object) -> int:
    """Rows a DELETE or UPDATE touched (0 when the driver does not say): ``Session.execute``
    is typed as returning ``Result``, and only its ``CursorResult`` carries ``rowcount``."""
    return int(getattr(result, "rowcount", 0) or 0)


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver errors into the storage errors callers handle."""
    try:
        yield
    except IntegrityError as exc:
        raise ConstraintViolationError(
            f"database refused the write: {_first_line(exc.orig)}", _constraint_name(exc)
        ) from exc
    except DatabaseError as exc:
        text = _first_line(exc.orig)
        if is_damage(text):
            # No SQL and no URL: the user needs to know what to do, not the query.
            raise DatabaseDamagedError(damaged_message(url)) from exc
        if isinstance(exc, OperationalError):
            if "locked" in text or "busy" in text:
                raise DatabaseBusyError(
                    f"database {url} is busy (another writer held it too long); nothing was "
                    "written, try again"
                ) from exc
            raise DatabaseUnavailableError(
                f"database {url} is unavailable ({text}); nothing was written"
            ) from exc
        _raise_if_connection_lost(exc, url)
        raise
    except DBAPIError as exc:
        _raise_if_connection_lost(exc, url)
        raise


#: What SQLite says of a damaged file (pages, header), and PostgreSQL of damaged storage.
_DAMAGE_MARKERS = (
    "malformed",
    "file is not a database",
    "disk image",
    "file is encrypted or is not a database",
    "invalid page",
    "could not read block",
)


def is_damage(text: str) -> bool:
    """Whether a driver's message says the database's storage is damaged."""
    lowered = text.lower()
    return any(marker in lowered for marker in _DAMAGE_MARKERS)


def damaged_message(url: str) -> str:
    """One line for a damaged database: what it is and what to do, no SQL, no URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = parsed.database
        return (
            f"{path}: 数据库文件已损坏 - the database file is damaged. Stop CunAn, check it with "
            f"sqlite3 {path} 'PRAGMA integrity_check', and restore the latest backup of the "
            "data dir (docs/keys.md#backing-up); nothing was written"
        )
    return (
        "数据库已损坏 - the database's storage is damaged (the server reports unreadable data); "
        "ask its administrator to check it (amcheck) and restore a backup; nothing was written"
    )


def _raise_if_connection_lost(exc: DBAPIError, url: str) -> None:
    if exc.connection_invalidated:
        raise DatabaseUnavailableError(
            f"database {url} connection lost ({_first_line(exc.orig)}); nothing was written"
        ) from exc


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else "error"


def _constraint_name(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if isinstance(name, str):
        return name
    # SQLite names the columns instead: "UNIQUE constraint failed: people.village_id, ..."
    match = re.search(r"constraint failed: (.+)$", str(exc.orig))
    return match.group(1) if match else None
