"""Escalation rounds on a frozen clock, delivered to real local HTTP receivers (webhook, SMS)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from cunan.audit.log import AuditLog
from cunan.authz import local_principal
from cunan.gas.alarm_settings import GasAlarmSettings
from cunan.gas.alarms import GasAlarmService
from cunan.gas.domain import Severity
from cunan.gas.escalation import GasAlarmWorker, GasEscalation, SmsGatewayNotifier
from cunan.notify.dispatcher import NotificationDispatcher
from cunan.notify.webhook import WebhookNotifier
from cunan.storage.database import Database
from tests.gas.alarm_fixtures import T0, FrozenClock, Site, alarms, ingest, readings, seed
from tests.notify.conftest import SECRET, Receiver, spare_port
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

ZONE = ZoneInfo("Asia/Shanghai")
TEMPLATE = "【燃气报警】{business} {device} {alarm}{value} {time} 第{round}次"


@pytest.fixture
def hooks() -> Iterator[tuple[Receiver, Receiver]]:
    webhook, sms = Receiver(port=spare_port()), Receiver(port=spare_port())
    webhook.start()
    sms.start()
    try:
        yield webhook, sms
    finally:
        webhook.stop()
        sms.stop()


class Rig:
    def __init__(
        self,
        database: Database,
        hooks: tuple[Receiver, Receiver],
        settings: GasAlarmSettings | None = None,
    ) -> None:
        self.clock = FrozenClock()
        self.settings = settings or GasAlarmSettings()
        self.webhook, self.sms = hooks
        self.dispatcher = NotificationDispatcher(
            {"webhook": WebhookNotifier(self.webhook.url, SECRET)}
        )
        self.escalation = GasEscalation(
            database,
            self.settings,
            dispatcher=self.dispatcher,
            sms=SmsGatewayNotifier(self.sms.url, SECRET, TEMPLATE),
            clock=self.clock,
            zone=ZONE,
        )
        self.woken = 0
        self.alarms = GasAlarmService(
            database,
            AuditLog(database),
            self.settings,
            clock=self.clock,
            on_escalate=self._wake,
        )

    def _wake(self) -> None:
        self.woken += 1

    def close(self) -> None:
        self.dispatcher.close()


@pytest.fixture
def site(database: Database) -> Site:
    return seed(database)


@pytest.fixture
def rig(database: Database, site: Site, hooks: tuple[Receiver, Receiver]) -> Iterator[Rig]:
    r = Rig(database, hooks)
    try:
        yield r
    finally:
        r.close()


def test_rounds_reach_the_right_contacts_at_the_right_times(rig: Rig, database: Database) -> None:
    ingest(rig.alarms, readings("DET-A1", T0, [60, 60, 60]))
    assert rig.woken == 1  # the worker is woken at once for the new HIGH alarm
    first = rig.escalation.run_due()
    assert [(r.level, r.roles) for r in first] == [(1, ("owner", "safety_officer", "maintainer_a"))]
    assert rig.webhook.received[0]["data"]["phones"] == [
        "13800000001",
        "13800000002",
        "13800000003",
    ]
    assert rig.webhook.received[0]["kind"] == "gas.alarm"
    assert rig.webhook.received[0]["title"] == "燃气报警：川味小馆 高浓度报警"
    high = next(a for a in alarms(database) if a.alarm_type == "high")
    assert rig.sms.received == [
        {
            "id": f"gas-alarm-{high.id}-round-1",
            "kind": "gas.alarm",
            "phones": ["13800000001", "13800000002", "13800000003"],
            "text": "【燃气报警】川味小馆 DET-A1 高浓度报警60%LEL 2026-03-02 10:00:04 第1次",
            "created_at": T0.isoformat(),
        }
    ]
    # Nobody acknowledges: nothing more until 5 minutes have passed ...
    rig.clock.advance(299)
    assert rig.escalation.run_due() == []
    rig.clock.advance(2)
    second = rig.escalation.run_due()
    # ... then maintainer B is added.
    assert [(r.level, r.roles[-1], len(r.phones)) for r in second] == [(2, "maintainer_b", 4)]
    assert rig.sms.received[1]["phones"][-1] == "13800000004"
    assert rig.webhook.received[1]["title"].endswith("（第2次通知）")
    # Then every 10 minutes until acknowledged.
    rig.clock.advance(599)
    assert rig.escalation.run_due() == []
    rig.clock.advance(2)
    assert [r.level for r in rig.escalation.run_due()] == [3]
    rig.alarms.acknowledge(local_principal("tests"), high.id)
    rig.clock.advance(3600)
    assert rig.escalation.run_due() == []
    assert len(rig.webhook.received) == 3 and len(rig.sms.received) == 3
    assert rig.webhook.bad_signatures == 0 and rig.sms.bad_signatures == 0
    # The alarm's history says who was notified when.
    detail = rig.alarms.detail(local_principal("tests"), high.id)
    notified = [(e.at, e.detail) for e in detail.events if e.action == "notified"]
    assert notified == [
        (T0, "round 1: owner,safety_officer,maintainer_a"),
        (T0 + timedelta(seconds=301), "round 2: owner,safety_officer,maintainer_a,maintainer_b"),
        (T0 + timedelta(seconds=902), "round 3: owner,safety_officer,maintainer_a,maintainer_b"),
    ]


def test_a_cleared_alarm_stops_escalating(rig: Rig) -> None:
    ingest(rig.alarms, readings("DET-A1", T0, [60, 60, 60]))
    assert len(rig.escalation.run_due()) == 1
    ingest(rig.alarms, readings("DET-A1", T0 + timedelta(seconds=30), [2]))
    rig.clock.advance(3600)
    assert rig.escalation.run_due() == []


def test_a_restart_neither_forgets_nor_repeats_a_round(
    rig: Rig, database: Database, hooks: tuple[Receiver, Receiver]
) -> None:
    ingest(rig.alarms, readings("DET-B1", T0, [60, 60, 60]))
    assert len(rig.escalation.run_due()) == 1
    rig.clock.advance(120)
    # A new process (same database, same moment): the round already sent is not sent again.
    restarted = Rig(database, hooks)
    restarted.clock.now = rig.clock.now
    try:
        assert restarted.escalation.run_due() == []
        restarted.clock.advance(200)
        assert [r.level for r in restarted.escalation.run_due()] == [2]
        assert rig.escalation.run_due() == []  # the old one, same moment: already claimed
    finally:
        restarted.close()
    # Business b has no safety officer and maintainer 2 as its A: only existing phones.
    assert rig.sms.received[0]["phones"] == ["13900000001", "13800000003"]


def test_which_severities_notify_is_a_setting(
    database: Database, site: Site, hooks: tuple[Receiver, Receiver]
) -> None:
    quiet = Rig(database, hooks)
    try:
        ingest(quiet.alarms, readings("DET-A1", T0, [30, 30, 30]))  # LOW: major
        assert quiet.woken == 0 and quiet.escalation.run_due() == []
    finally:
        quiet.close()
    loud = Rig(
        database,
        hooks,
        GasAlarmSettings(escalate_severities=[Severity.CRITICAL, Severity.MAJOR]),
    )
    try:
        ingest(loud.alarms, readings("DET-B1", T0, [30, 30, 30]))
        assert [r.level for r in loud.escalation.run_due()] == [1]
    finally:
        loud.close()


def test_an_unreachable_gateway_does_not_stop_the_rounds(
    database: Database, site: Site, hooks: tuple[Receiver, Receiver]
) -> None:
    rig = Rig(database, hooks)
    try:
        rig.escalation.sms = SmsGatewayNotifier(
            f"http://127.0.0.1:{spare_port()}/sms", SECRET, TEMPLATE, timeout_s=2.0
        )
        ingest(rig.alarms, readings("DET-A1", T0, [60, 60, 60]))
        assert [r.level for r in rig.escalation.run_due()] == [1]
        assert len(rig.webhook.received) == 1
    finally:
        rig.close()


def test_the_worker_runs_due_rounds_and_the_offline_sweep(rig: Rig) -> None:
    ingest(rig.alarms, readings("DET-A1", T0, [60, 60, 60]))
    worker = GasAlarmWorker(rig.alarms, rig.escalation, sweep_every_s=0.0)
    rig.clock.advance(400)  # the devices that never reported are offline by now
    rounds = worker.run_once()
    assert [r.level for r in rounds] == [1]
    offline = [a for a in alarms(rig.alarms.database) if a.alarm_type == "offline"]
    assert {a.device_id for a in offline} and all(a.state == "active" for a in offline)
