"""docs/registry.md states every registry setting's real default; docs/import.md every column."""

from __future__ import annotations

import re
from pathlib import Path

from cunan.config import RegistrySettings
from cunan.registry.roster import COLUMNS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_registry_settings_defaults_match_the_code() -> None:
    text = (DOCS / "registry.md").read_text(encoding="utf-8")
    for name, info in RegistrySettings.model_fields.items():
        found = re.findall(rf"`registry\.{name}`,?\s+default\s+([\w.]+)", text)
        assert found, f"registry.{name} is not documented with its default"
        assert set(found) == {_shown(info.default)}, (name, found, info.default)


def test_every_roster_column_is_documented() -> None:
    text = (DOCS / "import.md").read_text(encoding="utf-8")
    for column in COLUMNS:
        assert re.search(rf"\|\s*{column.chinese}\s*\|\s*{column.english}\s*\|", text), column.key
