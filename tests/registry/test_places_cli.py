"""``cunan places`` and ``cunan users``: the same operations as the API, from the shell."""

from __future__ import annotations

import pytest
import typer

from cunan.audit.log import AuditLog
from cunan.registry.datadir import Registry
from cunan.registry.places_cli import PASSWORD_ENV, places_app, users_app
from tests.cli_helpers import invoke_on, registry

__all__ = ["registry"]


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(places_app, name="places")
    root.add_typer(users_app, name="users")
    return root


def _id(out: str) -> int:
    return int(out.strip().split()[-1])


def test_build_a_house_with_rooms_and_a_landlord_account(
    app: typer.Typer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = invoke_on(app, registry, "places", "add-landlord", "房东王", "--phone", "139")
    assert code == 0, out
    landlord = _id(out)
    code, out = invoke_on(app, registry, "places", "add-house", "桃源路8号")
    house = _id(out)
    code, out = invoke_on(
        app, registry, "places", "set-landlord", str(house), "--landlord", str(landlord)
    )
    assert code == 0, out
    for label in ("101", "102"):
        code, out = invoke_on(
            app, registry, "places", "add-room", str(house), label, "--capacity", "2"
        )
        assert code == 0, out
    code, out = invoke_on(app, registry, "places", "add-room", str(house), "101")
    assert code == 4 and "already exists" in out  # a conflict (docs/cli.md)
    code, out = invoke_on(app, registry, "places", "house", str(house))
    assert code == 0 and "桃源路8号" in out and "102" in out
    code, out = invoke_on(app, registry, "places", "houses", "--json")
    assert '"landlord": "房东王"' in out
    monkeypatch.setenv(PASSWORD_ENV, "Correct-horse-battery-9")
    code, out = invoke_on(
        app, registry, "users", "add", "wang", "--role", "landlord", "--landlord", str(landlord)
    )
    assert code == 0, out
    code, out = invoke_on(app, registry, "users", "list")
    assert "wang" in out and "landlord" in out
    code, out = invoke_on(app, registry, "users", "disable", "wang")
    assert code == 0, out
    code, out = invoke_on(app, registry, "users", "disable", "admin")
    assert code == 4 and "last admin" in out  # a conflict
    code, out = invoke_on(app, registry, "users", "disable", "ghost")
    assert code == 3 and "not found" in out
    # Every change is audited as the account the command line acts as.
    actors = {e.actor for e in AuditLog(registry.database).recent(limit=20)}
    assert "cli:admin" in actors
