"""The cases CLI reads plain dates as the end of the village's local day, not UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cunan.cases.cli import local_end, village_zone

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_plain_date_is_the_end_of_the_local_day() -> None:
    end = local_end(datetime(2026, 5, 10), SHANGHAI)
    assert end.tzinfo is not None
    # 23:59:59.999999 Beijing time is 15:59:59.999999 UTC the same day (not midnight UTC).
    assert end.astimezone(UTC) == datetime(2026, 5, 10, 15, 59, 59, 999999, tzinfo=UTC)
    assert (end + timedelta(microseconds=1)).astimezone(SHANGHAI) == datetime(
        2026, 5, 11, tzinfo=SHANGHAI
    )


def test_time_of_day_is_local_and_explicit_offsets_are_kept() -> None:
    assert local_end(datetime(2026, 5, 10, 9, 30), SHANGHAI).astimezone(UTC) == datetime(
        2026, 5, 10, 1, 30, tzinfo=UTC
    )
    given = datetime(2026, 5, 10, 9, 30, tzinfo=UTC)
    assert local_end(given, SHANGHAI) == given


def test_zone_comes_from_the_duties_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUNAN_DUTIES__TIMEZONE", "Europe/Berlin")
    assert village_zone() == ZoneInfo("Europe/Berlin")
    monkeypatch.delenv("CUNAN_DUTIES__TIMEZONE")
    assert village_zone() == SHANGHAI
