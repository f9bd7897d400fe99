"""The data directory: where it is, setting it up (``cunan init``) and opening the registry."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from cunan.audit.log import AuditLog, cli_actor
from cunan.config import Settings
from cunan.pipeline.store import CameraStore
from cunan.registry.accounts import check_password_strength
from cunan.registry.errors import AlreadyInitialisedError, NotInitialisedError
from cunan.registry.keybinding import bind_key_ring, forget_unused_keys
from cunan.registry.records import TemplateListener
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher, UnavailableCipher
from cunan.security.files import others_can_access
from cunan.security.keys import KeyFilePermissionError, KeyRing
from cunan.storage.database import SQLITE_FILENAME, Database, sqlite_url
from cunan.storage.migrate import upgrade

logger = logging.getLogger(__name__)

KEY_FILENAME = "cunan.key"


def default_data_dir() -> Path:
    """The per-user default: ``platformdirs.user_data_dir("cunan")``."""
    return Path(platformdirs.user_data_dir("cunan", appauthor=False))


def resolve_data_dir(option: Path | None, settings: Settings) -> Path:
    """``--data-dir``, else ``CUNAN_DATA_DIR`` (settings), else the per-user default."""
    if option is not None:
        return option.expanduser()
    if settings.data_dir is not None:
        return settings.data_dir.expanduser()
    return default_data_dir()


def key_file_path(data_dir: Path, settings: Settings) -> Path:
    return settings.key_file.expanduser() if settings.key_file else data_dir / KEY_FILENAME


def database_url(data_dir: Path, settings: Settings) -> str:
    return settings.database_url or sqlite_url(data_dir)


@dataclass(slots=True)
class Registry:
    """An opened registry: its database, key file and services."""

    data_dir: Path
    key_file: Path
    database: Database
    service: RegistryService
    #: The audit log the services record into (None only for tools that do not audit).
    audit: AuditLog | None = None

    def close(self) -> None:
        self.database.dispose()


class DatabaseFilePermissionError(KeyFilePermissionError):
    """The SQLite database (or its WAL/SHM) can be read by users other than its owner."""


def check_database_private(data_dir: Path, settings: Settings) -> None:
    """Refuse a SQLite database file, WAL or SHM that group or others may access: they hold
    names, ID numbers and (encrypted) faces, like the key file they must be 0600."""
    if settings.database_url is not None:
        return
    db = data_dir / SQLITE_FILENAME
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        try:
            loose = others_can_access(path)
        except FileNotFoundError:
            continue
        if loose:
            raise DatabaseFilePermissionError(
                f"{path}: database file permissions allow group/others ({loose:03o}); it holds "
                f"personal data and must be readable only by its owner. Fix with: chmod 600 "
                f"{db}*"
            )


def open_database(data_dir: Path, settings: Settings) -> Database:
    return Database.open(
        database_url(data_dir, settings),
        busy_timeout_s=settings.registry.busy_timeout_s,
        connect_timeout_s=settings.registry.connect_timeout_s,
    )


def open_registry(
    data_dir: Path,
    settings: Settings,
    *,
    listener: TemplateListener | None = None,
    actor: str | None = None,
    key_required: bool = True,
) -> Registry:
    """Open an initialised data dir: migrate the schema to head, check that the key file is
    this database's own (a foreign one is refused).

    The services record every change in the audit log, as ``actor`` (default: the operating
    system account running the command, ``cli:<name>``). Without ``key_required`` a missing
    key file is no error: the services then delete face data but cannot read or write it
    (removal and withdrawal of consent after the key was lost, docs/keys.md).
    """
    key_file = key_file_path(data_dir, settings)
    if not key_file.exists() and not (data_dir / SQLITE_FILENAME).exists():
        raise NotInitialisedError(
            f"{data_dir} is not a CunAn data directory; run 'cunan init --data-dir {data_dir}'"
        )
    check_database_private(data_dir, settings)
    keyring: KeyRing | None = None
    if key_required or key_file.exists():
        keyring = KeyRing.load(key_file)
    database = open_database(data_dir, settings)
    try:
        upgrade(database)
        if keyring is not None:
            bind_key_ring(database, keyring, key_file)
            # Camera passwords stored before they were encrypted are sealed now.
            CameraStore(database, cipher=FieldCipher(keyring)).seal_plaintext_passwords()
    except BaseException:
        database.dispose()
        raise
    cipher = (
        FieldCipher(keyring)
        if keyring is not None
        else UnavailableCipher(
            f"{key_file}: key file not found, so face data cannot be read or written; "
            "restore it from its backup, or start over with 'cunan keys reset' (docs/keys.md)"
        )
    )
    audit = AuditLog(database)
    who = actor or cli_actor()
    service = RegistryService(
        database,
        cipher,
        settings.registry,
        listener=listener,
        audit=audit,
        actor=who,
    )
    return Registry(
        data_dir=data_dir,
        key_file=key_file,
        database=database,
        service=service,
        audit=audit,
    )


def initialise(
    data_dir: Path,
    settings: Settings,
    *,
    admin_username: str | None,
    admin_password: str | None,
    village_name: str,
) -> Registry:
    """Create the data dir (0700), the key file (0600), the schema, the village and the
    first admin (None: ``cunan serve``'s set-up link creates it later). Refuses a data dir
    or database that is already initialised."""
    if admin_password is not None:
        check_password_strength(admin_password)
    key_file = key_file_path(data_dir, settings)
    if key_file.exists() or (data_dir / SQLITE_FILENAME).exists():
        raise AlreadyInitialisedError(
            f"{data_dir} is already initialised (found {key_file.name} or {SQLITE_FILENAME}); "
            "refusing to overwrite it"
        )
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        data_dir.chmod(0o700)  # also when it existed (empty) before
    database = open_database(data_dir, settings)
    created_key = False
    try:
        upgrade(database)
        audit = AuditLog(database)
        from cunan.auth.service import AuthService

        # Accounts are the authentication service's (one owner of creating users).
        accounts = AuthService(database, audit, settings.web)
        if accounts.count_users():
            raise AlreadyInitialisedError(
                f"database {database.url} already has users; refusing to initialise it again "
                "(a new key could not read its face data)"
            )
        KeyRing.generate().save(key_file, overwrite=False)
        created_key = True
        keyring = KeyRing.load(key_file)
        forget_unused_keys(database)
        bind_key_ring(database, keyring, key_file)
        service = RegistryService(
            database,
            FieldCipher(keyring),
            settings.registry,
            audit=audit,
            actor=cli_actor(),
        )
        village_id = service.add_village(village_name)
        if admin_username is not None and admin_password is not None:
            accounts.setup_admin(
                admin_username, admin_password, village_id=village_id, actor=cli_actor()
            )
    except BaseException:
        if created_key:
            key_file.unlink(missing_ok=True)
        database.dispose()
        raise
    logger.info("initialised data dir %s", data_dir)
    return Registry(
        data_dir=data_dir,
        key_file=key_file,
        database=database,
        service=service,
        audit=audit,
    )
