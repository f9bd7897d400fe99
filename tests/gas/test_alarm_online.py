"""Online time from the online/offline history: one device's month, a business's rate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cunan.audit.log import AuditLog
from cunan.authz import Principal, local_principal
from cunan.errors import InvalidInput, NotFound
from cunan.gas.alarms import GasAlarmService, device_online
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from tests.gas.alarm_fixtures import T0, FrozenClock, Site, ingest, message, seed
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

START = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3600.0


def _at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def test_never_heard_from_counts_as_offline() -> None:
    row = device_online(1, "D", [], START, _at(10))
    assert (row.observed_s, row.online_s, row.offline_spells, row.longest_offline_s) == (
        10 * HOUR,
        0.0,
        1,
        10 * HOUR,
    )


def test_spells_inside_and_across_the_period() -> None:
    history = [
        ("online", _at(-5)),  # online before the period: online from its start
        ("offline", _at(2)),
        ("online", _at(3)),
        ("offline", _at(8)),  # offline until the end of the period
        ("online", _at(20)),  # after it: ignored
    ]
    row = device_online(1, "D", history, START, _at(10))
    assert row.online_s == 7 * HOUR
    assert (row.offline_spells, row.longest_offline_s) == (2, 2 * HOUR)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def service(database: Database, clock: FrozenClock) -> Iterator[GasAlarmService]:
    yield GasAlarmService(database, AuditLog(database), clock=clock, zone=ZoneInfo("Asia/Shanghai"))


def test_a_business_monthly_online_rate_and_its_scope(
    database: Database, service: GasAlarmService, clock: FrozenClock
) -> None:
    site: Site = seed(database)
    ingest(service, [message(s, T0) for s in ("DET-A1", "DET-A2", "VAL-A1")])
    clock.advance(400)
    service.sweep_offline()  # DET-A1 and VAL-A1 (mains) offline at T0 + 5 min
    ingest(service, [message("DET-A1", T0 + timedelta(minutes=15))])
    clock.now = T0 + timedelta(hours=1)
    month = service.online_rate(local_principal("t"), site.business["a"], 2026, 3)
    # March begins at 2026-02-28 16:00 UTC in the village; now is 2026-03-02 03:00 UTC.
    observed = 35 * HOUR
    rows = {r.serial: r for r in month.devices}
    assert {s: r.observed_s for s, r in rows.items()} == dict.fromkeys(rows, observed)
    assert rows["DET-A1"].online_s == 300 + 45 * 60
    assert rows["DET-A1"].offline_spells == 2  # never heard before T0; 10 min at T0 + 5 min
    assert rows["DET-A2"].online_s == HOUR  # battery: 25 h allowed, online since T0
    assert rows["VAL-A1"].online_s == 300
    assert month.rate == pytest.approx((3000 + 3600 + 300) / (3 * observed))
    assert service.online_rate(local_principal("t"), site.business["a"], 2026, 2).rate == 0.0
    assert service.online_rate(local_principal("t"), site.business["a"], 2025, 3).rate is None
    owner_b = Principal(username="b", role=UserRole.BUSINESS, user_id=site.users["owner_b"])
    with pytest.raises(NotFound):
        service.online_rate(owner_b, site.business["a"], 2026, 3)
    with pytest.raises(InvalidInput):
        service.online_rate(local_principal("t"), site.business["a"], 2026, 13)
