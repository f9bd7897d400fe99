"""docs/gas-alarms.md names every gas alarm setting, alarm type and case stage."""

from __future__ import annotations

from pathlib import Path

from cunan.gas.alarm_settings import GasAlarmSettings
from cunan.gas.domain import AlarmType, GasCaseStage

DOC = (Path(__file__).resolve().parents[2] / "docs" / "gas-alarms.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [name for name in GasAlarmSettings.model_fields if f"`{name}`" not in DOC]
    assert missing == []


def test_every_alarm_type_and_stage_is_documented() -> None:
    missing = [t.value for t in AlarmType if f"`{t.value}`" not in DOC]
    missing += [s.value for s in GasCaseStage if f"{s.value} " not in DOC]
    assert missing == []
