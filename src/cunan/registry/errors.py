"""Typed errors of the registry; each message names the record and says what to do."""

from __future__ import annotations

from cunan.errors import Conflict, InvalidInput, NotFound
from cunan.storage.errors import DatabaseBusyError, DatabaseUnavailableError

__all__ = [
    "AlreadyInitialisedError",
    "ConsentRequiredError",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "DuplicateIdNumberError",
    "DuplicateRecordError",
    "GuardianConsentRequiredError",
    "InvalidRecordError",
    "NotFoundError",
    "NotInitialisedError",
    "PlaceInUseError",
    "RegistryError",
    "RoomCapacityError",
]


class RegistryError(ValueError, InvalidInput):
    """A registry rule refused the request; nothing was written."""


class NotFoundError(RegistryError, NotFound):
    """A record named by id does not exist."""

    def __init__(self, kind: str, record_id: int | str) -> None:
        super().__init__(f"{kind} {record_id} not found")
        self.record_kind = kind
        self.record_id = record_id


class InvalidRecordError(RegistryError):
    """A value is malformed (empty name, bad vector, end before start, ...)."""


class DuplicateRecordError(InvalidRecordError, Conflict):
    """A record with the same unique key exists (or a concurrent insert made one)."""


class ConsentRequiredError(RegistryError):
    """Face data for a person without a valid (recorded, not withdrawn) consent."""


class GuardianConsentRequiredError(ConsentRequiredError):
    """A minor's consent was not given by a guardian."""


class DuplicateIdNumberError(RegistryError, Conflict):
    """The ID number is already registered for another person of the village."""


class RoomCapacityError(RegistryError, Conflict):
    """A tenancy would put more people in a room than its capacity."""


class PlaceInUseError(RegistryError, Conflict):
    """A place something still refers to (rooms, tenants, people, cameras) is not deleted."""


class AlreadyInitialisedError(RegistryError, Conflict):
    """``cunan init`` on a data directory (or database) that is already set up."""


class NotInitialisedError(RegistryError):
    """A command needs a data directory that ``cunan init`` has not set up."""
