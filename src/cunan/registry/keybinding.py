"""Binding a key file to its database: a key the database does not know is refused."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from cunan.security.keys import KeyFileError, KeyRing
from cunan.storage.database import Database
from cunan.storage.key_repository import KeyCheckRepository
from cunan.storage.repositories import RegistryRepository

logger = logging.getLogger(__name__)


class ForeignKeyFileError(KeyFileError):
    """The key file is not one this database was encrypted with (another data dir's)."""


def bind_key_ring(database: Database, ring: KeyRing, key_file: Path) -> None:
    """Refuse ``ring`` unless every key in it is one this database knows (same id, same
    check value); a database that knows no key yet (new, or from before key checks) is bound
    to the ring, unless stored data was encrypted with a key the ring does not hold."""
    mine = ring.check_values()
    # The usual case (a bound database, its own key) only reads: no write lock is taken
    # while cameras and case grouping write.
    with database.read() as session:
        known = KeyCheckRepository(session).check_values()
    if known:
        _check_known(known, mine, key_file)
        return
    with database.transaction() as session:
        checks = KeyCheckRepository(session)
        known = checks.check_values()
        if not known:
            foreign = RegistryRepository(session).key_ids_in_use() - set(mine)
            if foreign:
                raise ForeignKeyFileError(
                    f"{key_file}: 密钥文件与数据库不符 - the stored face data was encrypted with "
                    f"key(s) {', '.join(sorted(foreign))}, which this key file does not hold; "
                    "use this data dir's own key file (restore it from its backup), nothing "
                    "was written"
                )
            now = datetime.now(UTC)
            for key_id, value in sorted(mine.items()):
                checks.record(key_id, value, at=now)
            logger.info("bound the database to key(s) %s", ", ".join(sorted(mine)))
            return
        _check_known(known, mine, key_file)


def _check_known(known: dict[str, str], mine: dict[str, str], key_file: Path) -> None:
    """Refuse ``mine`` unless every key in it is one of ``known`` (same id and value)."""
    for key_id, value in sorted(mine.items()):
        if key_id not in known:
            raise ForeignKeyFileError(
                f"{key_file}: 密钥文件与数据库不符 - key {key_id} is not a key of this "
                "database (a key file from another data dir, or one retired by 'cunan keys "
                "rotate'); use this data dir's own key file (restore it from its backup), "
                "nothing was written"
            )
        if known[key_id] != value:
            raise ForeignKeyFileError(
                f"{key_file}: 密钥文件与数据库不符 - key {key_id} differs from the key "
                "this database was encrypted with (the file was replaced or altered); use "
                "this data dir's own key file (restore it from its backup), nothing was "
                "written"
            )


def record_new_key(database: Database, ring: KeyRing, key_id: str) -> None:
    """Let the database know a new key before the key file holds it (rotation, reset)."""
    with database.transaction() as session:
        KeyCheckRepository(session).record(
            key_id, ring.check_values()[key_id], at=datetime.now(UTC)
        )


def forget_retired_keys(database: Database, ring: KeyRing) -> None:
    """After the retired keys left the key file, the database stops accepting them too."""
    with database.transaction() as session:
        KeyCheckRepository(session).forget_all_but(set(ring.keys))


def forget_unused_keys(database: Database) -> None:
    """A database being initialised holds no encrypted value yet: key checks left by an
    earlier ``cunan init`` that failed half-way (its key file removed again) are dropped, so
    the new key can be bound."""
    with database.transaction() as session:
        if not RegistryRepository(session).key_ids_in_use():
            KeyCheckRepository(session).forget_all()
