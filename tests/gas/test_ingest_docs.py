"""docs/gas-ingest.md names every ingestion setting, command and counter."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cunan.gas import ingest, mqtt_ingest, push
from cunan.gas.ingest_cli import register
from cunan.gas.ingest_settings import GasIngestSettings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "gas-ingest.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [name for name in GasIngestSettings.model_fields if f"`{name}`" not in DOC]
    assert missing == []


def test_every_command_is_documented() -> None:
    group = typer.Typer()
    register(group)
    names = [c.name for c in group.registered_commands]
    assert len(names) == 5
    assert [n for n in names if f"cunan gas {n}" not in DOC] == []


def test_every_counter_is_documented() -> None:
    sources = "".join(
        Path(m.__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
        for m in (ingest, mqtt_ingest, push)
    )
    counters = set(re.findall(r'counters\.add\(\s*"([a-z_]+)"', sources))
    counters |= {"unknown_device", "removed_device"}
    assert len(counters) > 10
    assert [c for c in sorted(counters) if f"`{c}`" not in DOC] == []
