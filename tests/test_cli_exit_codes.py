"""The command line's exit codes by error kind (docs/cli.md), one line on stderr each, and
the commands acting as a named CunAn account (audit actor ``cli:<account>``)."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from cunan import cli
from cunan.audit.log import AuditLog
from cunan.authz import local_principal
from cunan.config import Settings
from cunan.errors import EXIT_INTERNAL
from cunan.registry.datadir import Registry
from tests.cli_helpers import ADMIN_PASSWORD, registry

__all__ = ["registry"]

runner = CliRunner()


def _run(registry: Registry, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, [*args, "--data-dir", str(registry.data_dir)])
    return result.exit_code, result.output


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def test_each_error_kind_has_its_exit_code(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2: invalid input (an ID-number tail with letters), and a malformed command line.
    code, out = _run(registry, "people", "list", "--id-tail", "abc")
    assert code == 2 and "id_tail" in out and len(_error_lines(out)) == 1
    assert runner.invoke(cli.app, ["people", "show", "not-a-number"]).exit_code == 2
    # 3: not found.
    code, out = _run(registry, "people", "show", "999")
    assert code == 3 and "person 999 not found" in out and len(_error_lines(out)) == 1
    # 4: a conflict with what is stored (the account exists).
    monkeypatch.setenv("CUNAN_NEW_PASSWORD", ADMIN_PASSWORD)
    code, out = _run(registry, "users", "add", "admin", "--role", "staff")
    assert code == 4 and "admin" in out and len(_error_lines(out)) == 1
    # 5: forbidden for the acting account's role (an auditor changes nothing).
    from cunan.auth.service import AuthService
    from cunan.storage.enums import UserRole

    AuthService(registry.database, AuditLog(registry.database), Settings().web).create_user(
        local_principal("tests"), "shen", ADMIN_PASSWORD, UserRole.AUDITOR
    )
    monkeypatch.setenv("CUNAN_USER", "shen")
    code, out = _run(registry, "places", "add-area", "东片")
    assert code == 5 and "auditor" in out and len(_error_lines(out)) == 1
    # 5 too: no such account to act as.
    monkeypatch.setenv("CUNAN_USER", "nobody")
    code, out = _run(registry, "people", "list")
    assert code == 5 and "no such enabled account" in out
    monkeypatch.delenv("CUNAN_USER")
    # 6: unavailable (the key file is missing: face data cannot be read).
    registry.key_file.rename(registry.key_file.with_name("elsewhere.key"))
    code, out = _run(registry, "people", "list")
    assert code == 6 and "key" in out and len(_error_lines(out)) == 1


def test_an_internal_error_exits_70_not_1(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("cunan.app_services.AppServices.list_people", crash)
    monkeypatch.setattr(
        sys, "argv", ["cunan", "people", "list", "--data-dir", str(registry.data_dir)]
    )
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and "internal error (RuntimeError: a bug)" in err


def test_commands_act_as_the_named_account_not_the_os_user(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUNAN_USER", raising=False)
    code, out = _run(registry, "maintenance", "reconcile")
    assert code == 0, out
    code, out = _run(registry, "maintenance", "purge", "--dry-run")
    assert code == 0, out
    code, out = _run(registry, "keys", "rotate")
    assert code == 0, out
    actors = {e.action: e.actor for e in AuditLog(registry.database).recent(limit=20) if e.seq > 2}
    # The installation's only administrator is "admin": every change is recorded as that
    # account's, whatever operating-system user ran the commands.
    assert actors and set(actors.values()) == {"cli:admin"}, actors
