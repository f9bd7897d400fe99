"""docs/duties.md names every duty setting and command."""

from __future__ import annotations

from pathlib import Path

from cunan.duties.cli import departures_app, maintenance_app
from cunan.duties.settings import DutySettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "duties.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [name for name in DutySettings.model_fields if f"`{name}`" not in DOC]
    assert missing == []


def test_every_command_is_documented() -> None:
    for group, app in (("departures", departures_app), ("maintenance", maintenance_app)):
        for command in app.registered_commands:
            assert f"cunan {group} {command.name}" in DOC
    assert "cunan stats" in DOC
