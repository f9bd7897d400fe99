"""The whole gas chain in a running installation: a device publishes a leak ramp over the real
Mosquitto, ingestion stores it, the alarm rules raise LOW and HIGH (the one-sample spike does
not), the HIGH alarm opens a gas case and reaches the webhook; one online-history row per change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from cunan.app import BackgroundOptions, CunanApp
from cunan.authz import local_principal
from cunan.config import GasSettings, Settings
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.notify.settings import NotifySettings, WebhookSettings
from cunan.registry.datadir import initialise
from cunan.storage.gas_alarm_repository import AlarmFilter
from cunan.storage.gas_tables import GasDeviceStatus, GasMessage
from tests.gas.alarm_fixtures import seed
from tests.gas.ingest_fixtures import forget_session, local_broker, wait_for
from tests.notify.conftest import SECRET, Receiver, spare_port


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(port=spare_port())
    r.start()
    try:
        yield r
    finally:
        r.stop()


def _publish(host: str, port: int, serial: str, bodies: list[dict[str, object]]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    try:
        for body in bodies:
            info = client.publish(f"cunan/gas/{serial}/reading", json.dumps(body), qos=1)
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_leak_published_over_mqtt_raises_alarms_a_case_and_a_notification(
    tmp_path: Path, receiver: Receiver
) -> None:
    host, port = local_broker()
    client_id = f"cunan-e2e-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        notify=NotifySettings(webhooks=[WebhookSettings(url=receiver.url, secret=SECRET)]),
        gas=GasSettings(
            ingest=GasIngestSettings(
                mqtt_enabled=True,
                mqtt_host=host,
                mqtt_port=port,
                mqtt_client_id=client_id,
                mqtt_session_expiry_s=0,
                batch_wait_ms=20,
            )
        ),
    )
    data = tmp_path / "data"
    initialise(
        data,
        settings,
        admin_username="admin",
        admin_password="Correct-horse-battery-9",
        village_name="桃源村",
    ).close()
    app = CunanApp.open(settings, data)
    try:
        site = seed(app.registry.database, village_id=app.registry.service.default_village_id())
        app.start(BackgroundOptions(cameras=False, cases=False, duties=False, gas=True))
        # Device time a minute ago, one reading a second: a one-sample spike (cooking fumes)
        # first, then a ramp that holds above the high set point (50 %LEL).
        t0 = datetime.now(UTC) - timedelta(seconds=60)
        lels = [2.0, 70.0, 3.0, 3.0, 20.0, 30.0, 40.0, 55.0, 60.0, 65.0, 68.0]
        bodies: list[dict[str, object]] = [
            {"id": f"r{i}", "ts": (t0 + timedelta(seconds=i)).isoformat(), "lel": lel}
            for i, lel in enumerate(lels)
        ]
        bodies.append(dict(bodies[-1]))  # a duplicate delivery: stored once
        # The subscription may take a moment after start: publish once it is listening.
        assert app._gas_mqtt is not None and app._gas_mqtt.wait_connected(30.0)
        _publish(host, port, "DET-A1", bodies)

        admin = local_principal("admin")

        def alarms() -> dict[str, str]:
            page = app.gas_alarms.list_alarms(admin, AlarmFilter(), limit=20)
            return {a.alarm_type: a.state for a in page.items}

        wait_for(lambda: alarms().get("high") == "active", what="the HIGH alarm")
        # The fixture's device was registered a month ago and never heard: offline from the
        # first sweep, cleared by its first message.
        assert alarms() == {"offline": "cleared", "low": "active", "high": "active"}
        with app.registry.database.read() as session:
            stored = session.scalar(select(func.count()).select_from(GasMessage))
            history = list(
                session.scalars(
                    select(GasDeviceStatus.state)
                    .where(GasDeviceStatus.device_id == site.device["DET-A1"])
                    .order_by(GasDeviceStatus.id)
                )
            )
        assert stored == len(lels)
        # One row per change, written by the alarm service alone (ingestion does not add a
        # second "online" row for the same comeback).
        assert history == ["offline", "online"]

        high = next(
            a
            for a in app.gas_alarms.list_alarms(admin, AlarmFilter(), limit=20).items
            if a.alarm_type == "high"
        )
        assert high.peak_lel == 68.0
        assert high.case_id is not None
        case = app.gas_cases.get(admin, high.case_id)
        assert case.stage == "unresponded" and case.alarm_id == high.id

        wait_for(lambda: bool(receiver.received), what="the webhook")
        assert [r["kind"] for r in receiver.received] == ["gas.alarm"]
        assert receiver.bad_signatures == 0
        app.stop()
    finally:
        app.close()
        forget_session(host, port, client_id)
