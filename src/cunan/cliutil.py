"""Plumbing every ``cunan`` command shares: the ``--data-dir`` option, the installation opened
as the acting account, one-line errors with an exit code per kind (docs/cli.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from cunan.authz import Principal
from cunan.config import Settings, load_settings
from cunan.errors import EXIT_CODES, ErrorKind, kind_of
from cunan.registry.datadir import (
    check_database_private,
    database_url,
    open_database,
    resolve_data_dir,
)
from cunan.registry.errors import RegistryError
from cunan.security.keys import KeyFileError
from cunan.storage.database import SQLITE_FILENAME, Database
from cunan.storage.enums import UserRole
from cunan.storage.errors import StorageError

if TYPE_CHECKING:
    from cunan.app import CunanApp
    from cunan.app_services import AppServices

#: Exit code for invalid input and usage errors; the other kinds have their own (see
#: :data:`cunan.errors.EXIT_CODES`); 0 and 1 are answers where a command gives one
#: (``faces compare``, ``audit verify``).
EXIT_ERROR = EXIT_CODES[ErrorKind.INVALID]

err_console = Console(stderr=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: $CUNAN_DATA_DIR, else the per-user data dir).",
        show_default=False,
    ),
]

#: What can go wrong while opening a data directory: no such directory or database, a
#: missing or unreadable key, a database that is down, a malformed setting.
OPEN_ERRORS: tuple[type[Exception], ...] = (
    RegistryError,
    StorageError,
    KeyFileError,
    FileNotFoundError,
    ValueError,
    OSError,
)


def fail(message: str, kind: ErrorKind = ErrorKind.INVALID) -> NoReturn:
    """Print ``error: message`` on stderr (one line) and exit with the code of ``kind``."""
    # markup off: messages quote user input and paths, which may contain "[...]".
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_CODES[kind])


def fail_with(exc: BaseException) -> NoReturn:
    """One line for ``exc`` and the exit code of its kind (invalid input when it has none:
    only errors a caller can act on are passed here)."""
    fail(str(exc), kind_of(exc) or ErrorKind.INVALID)


@contextmanager
def user_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Errors of these kinds (ones a user can act on) become one line and the exit code of
    their kind: 3 not found, 4 conflict, 6 unavailable, else 2 (docs/cli.md)."""
    try:
        yield
    except kinds as exc:
        fail_with(exc)


@contextmanager
def opened_database(data_dir: Path | None) -> Iterator[tuple[Database, Settings]]:
    """The data directory's database as it is, without migrating it, disposed afterwards.

    For commands that only read or must not change the schema (audit verification, dead
    letters): a missing SQLite file is an error instead of a new, empty database.
    """
    with user_errors(FileNotFoundError, ValueError, KeyFileError):
        settings = load_settings()
        directory = resolve_data_dir(data_dir, settings)
        url = database_url(directory, settings)
        if url.startswith("sqlite") and not (directory / SQLITE_FILENAME).is_file():
            fail(f"{directory} has no {SQLITE_FILENAME}; is it a CunAn data directory?")
        check_database_private(directory, settings)
        database = open_database(directory, settings)
    try:
        with user_errors(StorageError):
            yield database, settings
    finally:
        database.dispose()


#: Environment variable naming the CunAn account a command acts as (see cli_principal).
ACT_AS_ENV = "CUNAN_USER"


def cli_principal(database: Database) -> Principal:
    """The CunAn account the command line acts as, with that account's role and scope.

    ``CUNAN_USER`` names it; unset, the account named like the operating-system user, else
    the installation's only administrator. Whoever can run commands on the data dir holds
    its key anyway; naming an account keeps the audit trail about people, not machines.
    """
    import getpass

    from cunan.storage.auth_repository import AuthRepository

    wanted = os.environ.get(ACT_AS_ENV, "").strip()
    with database.read() as session:
        repo = AuthRepository(session)
        user = repo.user_by_name(wanted) if wanted else None
        if wanted and (user is None or user.disabled_at is not None):
            fail(f"{ACT_AS_ENV}={wanted}: no such enabled account", ErrorKind.UNAUTHENTICATED)
        if user is None:
            try:
                user = repo.user_by_name(getpass.getuser())
            except (KeyError, OSError):
                user = None
        if user is None or user.disabled_at is not None:
            admins = [u for u in repo.admins() if u.disabled_at is None]
            if len(admins) != 1:
                fail(
                    f"say which account this command acts as: {ACT_AS_ENV}=NAME "
                    f"({len(admins)} administrators are registered)",
                    ErrorKind.UNAUTHENTICATED,
                )
            user = admins[0]
        landlord = repo.landlord_id_of_user(user.id) if user.role is UserRole.LANDLORD else None
        return Principal(
            username=user.username,
            role=user.role,
            user_id=user.id,
            village_id=user.village_id,
            landlord_id=landlord,
            via="local",
        )


@contextmanager
def opened_app(
    data_dir: Path | None, *errors: type[Exception], key_required: bool = True
) -> Iterator[tuple[CunanApp, AppServices]]:
    """The installation (composition root) and its services as the acting account (see
    :func:`cli_principal`), closed afterwards.

    Errors of the vocabulary (and ``errors``) become one line and the exit code of their
    kind. Without ``key_required`` a lost key file is no error (commands that only delete
    face data).
    """
    from cunan.app import CunanApp
    from cunan.errors import CunanError

    with user_errors(*OPEN_ERRORS):
        settings = load_settings()
        app = CunanApp.open(
            settings, resolve_data_dir(data_dir, settings), key_required=key_required
        )
    try:
        # Plain ValueErrors are value checks on what the user typed (kind_of: invalid).
        with user_errors(CunanError, RegistryError, StorageError, ValueError, *errors):
            principal = cli_principal(app.registry.database)
            # Every change of this process is the account's, also where a service is
            # reached without the principal (the audit trail names people, not machines).
            app.act_as(principal.actor)
            yield app, app.services_for(principal)
    finally:
        app.close()
