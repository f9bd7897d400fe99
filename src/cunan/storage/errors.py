"""Errors from the storage layer that callers are expected to handle."""

from __future__ import annotations

from cunan.errors import Conflict, Unavailable


class StorageError(RuntimeError):
    """Base of storage errors."""


class DatabaseUnavailableError(StorageError, Unavailable):
    """The database cannot be reached (or stopped answering); nothing was written."""


class DatabaseBusyError(DatabaseUnavailableError):
    """Another writer held the SQLite database longer than the busy timeout."""


class ConstraintViolationError(StorageError, Conflict):
    """A uniqueness or foreign-key constraint refused a write (``constraint`` names it)."""

    def __init__(self, message: str, constraint: str | None) -> None:
        super().__init__(message)
        self.constraint = constraint


class DatabaseDamagedError(StorageError):
    """The database file is damaged (corrupt pages, or not a database at all)."""
