from tests.duties.conftest import audit, clock, duties, listener, service, settings, sightings
from tests.storage.dbfixtures import database, db_url

__all__ = [
    "audit",
    "clock",
    "database",
    "db_url",
    "duties",
    "listener",
    "service",
    "settings",
    "sightings",
]
