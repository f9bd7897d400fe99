"""What the command-line tests share: an initialised data dir, and Typer apps run against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cunan.config import Settings
from cunan.registry.datadir import Registry, initialise
from cunan.storage.database import Database

ADMIN_PASSWORD = "Correct-horse-battery-9"

#: What would point the commands at another data dir, config, key file or database.
CUNAN_ENVIRONMENT = ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE")

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """An initialised SQLite data dir (admin ``admin``, village 桃源村), outside environment
    cleared; import it into a test module to use it there."""
    for name in CUNAN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    reg = initialise(
        tmp_path / "data",
        Settings(),
        admin_username="admin",
        admin_password=ADMIN_PASSWORD,
        village_name="桃源村",
    )
    try:
        yield reg
    finally:
        reg.close()


def invoke_on(app: typer.Typer, registry: Registry, *args: str) -> tuple[int, str]:
    """Run ``app`` with ``args`` on the registry's data dir: (exit code, output)."""
    result = runner.invoke(app, [*args, "--data-dir", str(registry.data_dir)])
    return result.exit_code, result.output


def staff_account(database: Database, username: str) -> int:
    """A staff account (created as the authentication service creates every account)."""
    from cunan.audit.log import AuditLog
    from cunan.auth.service import AuthService
    from cunan.authz import local_principal
    from cunan.storage.enums import UserRole

    auth = AuthService(database, AuditLog(database), Settings().web)
    return auth.create_user(local_principal("tests"), username, ADMIN_PASSWORD, UserRole.STAFF).id
