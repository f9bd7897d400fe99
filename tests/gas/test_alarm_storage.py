"""Alarms stored from evaluated messages (both engines): raise, update, clear, restart, offline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from cunan.audit.log import AuditLog
from cunan.authz import Principal, local_principal
from cunan.errors import Conflict, Forbidden, NotFound
from cunan.gas.alarm_settings import GasAlarmSettings
from cunan.gas.alarms import GasAlarmService
from cunan.gas.domain import MessageKind
from cunan.storage.case_tables import Case
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from cunan.storage.gas_alarm_repository import AlarmFilter
from cunan.storage.gas_tables import GasAlarmEvent, GasDevice, GasDeviceStatus
from tests.gas.alarm_fixtures import (
    T0,
    FrozenClock,
    Site,
    alarms,
    ingest,
    message,
    readings,
    seed,
    store,
    summary,
)
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def site(database: Database) -> Site:
    return seed(database, replacement_due=date(2026, 3, 1))


@pytest.fixture
def service(database: Database, site: Site, clock: FrozenClock) -> Iterator[GasAlarmService]:
    yield GasAlarmService(database, AuditLog(database), GasAlarmSettings(), clock=clock)


def test_a_leak_raises_low_and_high_opens_one_case_and_clears(
    database: Database, service: GasAlarmService, site: Site
) -> None:
    ingest(service, readings("DET-A1", T0, [3, 30, 35, 40, 60, 62, 75]))
    assert summary(database, "DET-A1") == [("low", "active"), ("high", "active")]
    low, high = alarms(database, "DET-A1")
    assert (low.first_lel, low.peak_lel, low.updates) == (40, 75, 3)
    assert (high.first_lel, high.peak_lel, high.severity) == (75, 75, "critical")
    # The HIGH alarm opened a gas case, the LOW one none; only HIGH escalates (critical).
    assert low.case_id is None and low.next_escalation_at is None
    assert high.case_id is not None and high.next_escalation_at is not None
    with database.read() as session:
        case = session.get(Case, high.case_id)
        assert case is not None
        assert (case.kind, case.gas_stage, case.status) == ("gas", "unresponded", "open")
        assert case.village_id == site.village_id
    ingest(service, readings("DET-A1", T0 + timedelta(minutes=1), [40, 30, 12]))
    assert summary(database, "DET-A1") == [("low", "cleared"), ("high", "cleared")]
    low, high = alarms(database, "DET-A1")
    assert high.cleared_at == T0 + timedelta(minutes=1)  # 40 < 50 - 5
    assert low.last_lel == 12 and high.next_escalation_at is None
    with database.read() as session:
        actions = session.scalars(
            select(GasAlarmEvent.action).where(GasAlarmEvent.alarm_id == high.id)
        ).all()
    assert list(actions) == ["raised", "cleared"]
    # A new leak later is a new alarm: one active per device and type, history kept.
    ingest(service, readings("DET-A1", T0 + timedelta(minutes=5), [31, 32, 33]))
    assert summary(database, "DET-A1") == [
        ("low", "cleared"),
        ("high", "cleared"),
        ("low", "active"),
    ]


def test_spikes_raise_nothing_and_devices_of_one_batch_do_not_mix(
    database: Database, service: GasAlarmService
) -> None:
    batch = readings("DET-A1", T0, [2, 80, 3, 90, 2]) + readings("DET-B1", T0, [30, 30, 30])
    changes = ingest(service, batch)
    assert [(c.serial, c.alarm_type.value) for c in changes] == [("DET-B1", "low")]
    assert summary(database) == [("low", "active")]


def test_a_restart_raises_no_alarm_twice_and_keeps_a_condition_building_up(
    database: Database, site: Site, clock: FrozenClock
) -> None:
    audit = AuditLog(database)
    first = GasAlarmService(database, audit, clock=clock)
    ingest(first, readings("DET-A1", T0, [30, 30, 30, 60]))
    ingest(first, readings("DET-B1", T0, [40, 40]))  # two of the three readings needed
    assert summary(database) == [("low", "active")]
    # The process restarts: a new service knows nothing but what is stored.
    second = GasAlarmService(database, audit, clock=clock)
    later = T0 + timedelta(seconds=20)
    changes = ingest(second, readings("DET-A1", later, [70, 70]))
    # LOW was active already: updated, not raised again; HIGH completes its run (60, 70, 70).
    assert [(c.alarm_type.value, c.action.value) for c in changes] == [
        ("low", "updated"),
        ("high", "raised"),
    ]
    changes = ingest(second, readings("DET-B1", later, [40]))
    assert [(c.alarm_type.value, c.action.value) for c in changes] == [("low", "raised")]
    assert summary(database) == [("low", "active"), ("high", "active"), ("low", "active")]
    # Late readings from before the restart change nothing after it either.
    third = GasAlarmService(database, audit, clock=clock)
    assert ingest(third, readings("DET-A1", T0 - timedelta(minutes=5), [0, 0, 0])) == []


def test_a_failed_batch_leaves_no_alarm_and_no_stale_state(
    database: Database, service: GasAlarmService
) -> None:
    ingest(service, readings("DET-A1", T0, [30, 30]))

    class BoomError(Exception):
        pass

    def explode(*args: object) -> None:
        raise BoomError

    original = service._store
    service._store = explode  # type: ignore[method-assign]
    with pytest.raises(BoomError):
        ingest(service, readings("DET-A1", T0 + timedelta(seconds=4), [30]))
    service._store = original  # type: ignore[method-assign]
    assert summary(database) == []
    # The state is rebuilt from what was committed: the stored reading counts once.
    changes = service.evaluate([])
    assert changes == []
    changes = ingest(service, readings("DET-A1", T0 + timedelta(seconds=6), [30]))
    assert [(c.alarm_type.value, c.action.value) for c in changes] == [("low", "raised")]


def test_offline_detection_history_and_recovery(
    database: Database, service: GasAlarmService, clock: FrozenClock
) -> None:
    ingest(service, [message("DET-A1", T0), message("DET-A2", T0)])
    clock.advance(200)
    # VAL-A1 and DET-B1 never reported since they were installed 30 days ago.
    assert {c.serial for c in service.sweep_offline()} == {"VAL-A1", "DET-B1"}
    clock.advance(400)  # DET-A1 (mains, 5 min) is offline; DET-A2 (battery, 25 h) is not
    assert {c.serial for c in service.sweep_offline()} == {"DET-A1"}
    assert service.sweep_offline() == []  # raised once
    back = T0 + timedelta(minutes=15)
    ingest(service, [message("DET-A1", back)])
    assert summary(database, "DET-A1") == [("offline", "cleared")]
    with database.read() as session:
        device = session.scalars(select(GasDevice).where(GasDevice.serial == "DET-A1")).one()
        history = session.execute(
            select(GasDeviceStatus.state, GasDeviceStatus.at)
            .where(GasDeviceStatus.device_id == device.id)
            .order_by(GasDeviceStatus.id)
        ).all()
        assert device.online is True
    assert [tuple(r) for r in history] == [
        ("online", T0),
        ("offline", T0 + timedelta(seconds=300)),
        ("online", back),
    ]
    clock.advance(25 * 3600)
    assert "DET-A2" in {c.serial for c in service.sweep_offline()}


def test_replacement_overdue_daily_check(database: Database, service: GasAlarmService) -> None:
    changes = service.check_replacements(date(2026, 3, 2))
    assert {c.serial for c in changes} == {"DET-A1", "DET-A2", "VAL-A1", "DET-B1"}
    assert service.check_replacements(date(2026, 3, 3)) == []
    with database.transaction() as session:
        device = session.scalars(select(GasDevice).where(GasDevice.serial == "DET-B1")).one()
        device.replacement_due = date(2029, 3, 1)
    cleared = service.check_replacements(date(2026, 3, 4))
    assert [(c.serial, c.action.value) for c in cleared] == [("DET-B1", "cleared")]


def test_valve_and_fault_events_are_stored(database: Database, service: GasAlarmService) -> None:
    ingest(
        service,
        [
            message("VAL-A1", T0, kind=MessageKind.VALVE, code="closed"),
            message("DET-A1", T0, kind=MessageKind.EVENT, code="fault"),
            message(
                "DET-A1",
                T0 + timedelta(seconds=9),
                kind=MessageKind.EVENT,
                code="fault",
                active=False,
            ),
        ],
    )
    assert summary(database) == [("valve_closed", "active"), ("fault", "cleared")]


def _principal(site: Site, user: str, role: UserRole) -> Principal:
    return Principal(username=user, role=role, user_id=site.users[user])


def test_list_filters_detail_and_scoping(
    database: Database, service: GasAlarmService, site: Site
) -> None:
    ingest(service, readings("DET-A1", T0, [60, 60, 60]))
    ingest(service, readings("DET-B1", T0, [30, 30, 30]))
    admin = local_principal("tests")
    everything = service.list_alarms(admin, AlarmFilter())
    assert everything.total == 3
    # Newest first (all three were raised by the third reading: then the newest id).
    assert [(a.serial, a.alarm_type) for a in everything.items] == [
        ("DET-B1", "low"),
        ("DET-A1", "high"),
        ("DET-A1", "low"),
    ]
    high = service.list_alarms(admin, AlarmFilter(alarm_types=["high"]))
    assert [(a.serial, a.label, a.business_name) for a in high.items] == [
        ("DET-A1", "高浓度报警", "川味小馆")
    ]
    critical = service.list_alarms(admin, AlarmFilter(severities=["critical"], states=["active"]))
    assert critical.total == 1
    assert service.list_alarms(admin, AlarmFilter(since=T0 + timedelta(hours=1))).total == 0
    assert service.list_alarms(admin, AlarmFilter(business_id=site.business["b"])).total == 1
    # The owner of "a" sees a's alarms only; maintainer 2 (B of "a", A of "b") sees both.
    owner_a = _principal(site, "owner_a", UserRole.BUSINESS)
    owner_b = _principal(site, "owner_b", UserRole.BUSINESS)
    maint_2 = _principal(site, "maint_2", UserRole.MAINTAINER)
    maint_1 = _principal(site, "maint_1", UserRole.MAINTAINER)
    assert {a.serial for a in service.list_alarms(owner_a, AlarmFilter()).items} == {"DET-A1"}
    assert {a.serial for a in service.list_alarms(owner_b, AlarmFilter()).items} == {"DET-B1"}
    assert service.list_alarms(maint_2, AlarmFilter()).total == 3
    assert {a.serial for a in service.list_alarms(maint_1, AlarmFilter()).items} == {"DET-A1"}
    # Outside the scope an alarm is "not found", exactly like a missing one.
    b_alarm = service.list_alarms(owner_b, AlarmFilter()).items[0].id
    with pytest.raises(NotFound) as hidden:
        service.detail(owner_a, b_alarm)
    with pytest.raises(NotFound) as missing:
        service.detail(owner_a, 987654)
    assert str(hidden.value).replace(str(b_alarm), "X") == str(missing.value).replace("987654", "X")
    with pytest.raises(NotFound):
        service.acknowledge(owner_a, b_alarm)
    detail = service.detail(owner_b, b_alarm)
    assert [e.action for e in detail.events] == ["raised"]


def test_acknowledge_records_who_and_when_once_and_is_audited(
    database: Database, service: GasAlarmService, site: Site, clock: FrozenClock
) -> None:
    ingest(service, readings("DET-A1", T0, [60, 60, 60]))
    high = next(a for a in alarms(database) if a.alarm_type == "high")
    owner = _principal(site, "owner_a", UserRole.BUSINESS)
    clock.advance(90)
    detail = service.acknowledge(owner, high.id)
    assert detail.alarm.acknowledged_at == T0 + timedelta(seconds=90)
    assert detail.alarm.acknowledged_by == f"user:{site.users['owner_a']}"
    assert detail.alarm.next_escalation_at is None
    assert detail.alarm.state == "active"  # acknowledged and cleared are separate
    assert [e.action for e in detail.events] == ["raised", "acknowledged"]
    with pytest.raises(Conflict, match="已"):
        service.acknowledge(owner, high.id)
    auditor = Principal(username="aud", role=UserRole.AUDITOR, user_id=None)
    with pytest.raises(Forbidden):
        service.acknowledge(auditor, high.id)
    entries = AuditLog(database).recent(action="gas.alarm_acknowledge")
    assert len(entries) == 1 and entries[0].target_id == str(high.id)
    assert entries[0].details["alarm_type"] == "high"


def test_messages_of_unknown_devices_are_skipped(
    database: Database, service: GasAlarmService
) -> None:
    store(database, readings("DET-A1", T0, [1]))
    assert service.evaluate(readings("NOPE-1", T0, [90, 90, 90])) == []
    assert summary(database) == []


def test_history_is_recorded_but_neither_notified_nor_made_a_case(
    database: Database, service: GasAlarmService, clock: FrozenClock
) -> None:
    # A CSV import of last week, or a backlog a device sends after two hours cut off.
    clock.advance(2 * 3600)
    ingest(service, readings("DET-A1", T0, [70, 70, 70]))
    low, high = alarms(database, "DET-A1")
    assert (low.state, high.alarm_type, high.state) == ("active", "high", "active")
    assert high.case_id is None and high.next_escalation_at is None
    ingest(service, readings("DET-B1", clock.now - timedelta(minutes=5), [70, 70, 70]))
    fresh = next(a for a in alarms(database, "DET-B1") if a.alarm_type == "high")
    assert fresh.case_id is not None and fresh.next_escalation_at == clock.now


def test_after_a_restart_silence_counts_from_the_last_message_ingestion_noted(
    database: Database, service: GasAlarmService, clock: FrozenClock
) -> None:
    # The raw messages are gone (retention); the device row still says when it last spoke.
    with database.transaction() as session:
        device = session.scalars(select(GasDevice).where(GasDevice.serial == "DET-A1")).one()
        device.last_message_at = T0
    clock.advance(100)
    assert "DET-A1" not in {c.serial for c in service.sweep_offline()}
    clock.advance(300)
    assert [c.at for c in service.sweep_offline() if c.serial == "DET-A1"] == [
        T0 + timedelta(seconds=300)
    ]
