"""Answers (statistics, sessions) kept a few seconds, dropped when a write changes them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from cunan.storage.database import Database

T = TypeVar("T")

#: Tables whose changes alter the statistics or the overdue-departures list: any write to
#: them drops what is cached (at commit). Sightings are not among them: a camera stores one
#: every second or so, and the sightings-per-day chart may lag by the cache's lifetime.
WATCHED_TABLES = frozenset(
    {
        "people",
        "tenancies",
        "rooms",
        "houses",
        "landlords",
        "face_templates",
        "consents",
        "departure_reports",
        "confirmation_tasks",
        "cameras",
    }
)
#: Cases matter only when one is opened, or its status changes (a grouped sighting updates
#: its case's counts on every sighting, which the statistics do not show).
CASES_TABLE = "cases"


@dataclass(slots=True)
class _Entry(Generic[T]):
    value: T
    generation: int
    expires: float


class ShortCache:
    """Values computed for a key (a statistic and the scope it was computed for), reused for
    ``ttl_s`` seconds unless a watched write commits meanwhile.

    The key must name everything the value depends on that differs between callers (the
    village, the landlord scope): a value is only ever returned for the exact key it was
    computed for. Concurrent callers of an expired key wait for one computation instead of
    all computing it at once (a dashboard refreshed by fifty clients).
    """

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[Hashable, _Entry[Any]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if self.ttl_s <= 0:
            return compute()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            entry = self._fresh(key)
            if entry is not None:
                self.hits += 1
                value: T = entry.value
                return value
            self.misses += 1
            # The generation before computing: a write committed while computing makes the
            # value stale at once rather than for the whole lifetime.
            generation = self._generation
            value = compute()
            with self._guard:
                self._entries[key] = _Entry(value, generation, self._clock() + self.ttl_s)
            return value

    def _fresh(self, key: Hashable) -> _Entry[Any] | None:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.generation != self._generation or entry.expires <= self._clock():
                del self._entries[key]
                return None
            return entry

    def invalidate(self) -> None:
        """Drop everything (a watched write committed)."""
        with self._guard:
            self._generation += 1
            self._entries.clear()

    def watch(self, database: Database) -> None:
        """Invalidate at the commit of any write transaction of ``database`` that changed a
        watched table (ORM changes, and bulk UPDATE / DELETE / INSERT statements)."""
        watch_writes(
            database,
            changes=_changes_statistics,
            statement_tables=WATCHED_TABLES | {CASES_TABLE},
            on_commit=self.invalidate,
        )


def watch_writes(
    database: Database,
    *,
    changes: Callable[[object, bool], bool] | None = None,
    statement_tables: frozenset[str] = frozenset(),
    deleted_tables: frozenset[str] = frozenset(),
    on_commit: Callable[[], None],
) -> None:
    """Call ``on_commit`` after each committed write transaction of ``database`` in which
    ``changes(obj, is_new)`` held for a flushed ORM object, a bulk statement wrote one of
    ``statement_tables``, or a row of one of ``deleted_tables`` was deleted (an ORM delete
    or a bulk DELETE). Rolled-back transactions call nothing."""
    flag = object()  # this watch's own mark in a session's info

    def mark_flush(session: Session, _context: UOWTransaction) -> None:
        if session.info.get(flag):
            return
        if (
            (changes is not None and any(changes(o, True) for o in session.new))
            or (
                changes is not None
                and any(changes(o, False) for o in (*session.dirty, *session.deleted))
            )
            # Still listed here: a flush's deletions are finalised after this event.
            or any(table_of(o) in deleted_tables for o in session.deleted)
        ):
            session.info[flag] = True

    def mark_statement(state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete or state.is_insert):
            return
        table = getattr(getattr(state.statement, "table", None), "name", None)
        if table in statement_tables or (state.is_delete and table in deleted_tables):
            state.session.info[flag] = True

    def after_commit(session: Session) -> None:
        if session.info.pop(flag, False):
            on_commit()

    def after_rollback(session: Session) -> None:
        session.info.pop(flag, None)

    database.listen_writes("after_flush", mark_flush)
    database.listen_writes("do_orm_execute", mark_statement)
    database.listen_writes("after_commit", after_commit)
    database.listen_writes("after_rollback", after_rollback)


def table_of(obj: object) -> str | None:
    """The table an ORM object is a row of (None for anything else)."""
    name = getattr(getattr(obj, "__table__", None), "name", None)
    return name if isinstance(name, str) else None


def attribute_changed(obj: object, name: str) -> bool:
    """Whether a flushed ORM object's attribute ``name`` changed in this flush."""
    return bool(inspect(obj).attrs[name].history.has_changes())


def _changes_statistics(obj: object, new: bool) -> bool:
    table = table_of(obj)
    if table in WATCHED_TABLES:
        return True
    if table == CASES_TABLE:
        return new or attribute_changed(obj, "status")
    return False
