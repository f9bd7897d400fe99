"""MQTT ingestion through the local Mosquitto: the simulator's ground truth ends up stored."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from cunan.gas.domain import DeviceMessage
from cunan.gas.ingest import GasIngestService, StoreReport
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.mqtt_ingest import MqttIngestor
from cunan.gas.simulator import MqttDevice, leak, malformed, normal, out_of_order, with_duplicates
from cunan.storage.database import Database
from tests.gas.ingest_fixtures import (
    Collected,
    add_devices,
    forget_session,
    local_broker,
    stored_count,
    stored_keys,
    wait_for,
)
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def broker() -> tuple[str, int]:
    return local_broker()


@pytest.fixture
def client_id(broker: tuple[str, int]) -> Iterator[str]:
    name = f"cunan-test-{uuid.uuid4().hex[:10]}"
    yield name
    # The broker keeps a persistent session a week: leave none behind on the shared broker.
    forget_session(*broker, name)


def _settings(broker: tuple[str, int], client_id: str) -> GasIngestSettings:
    return GasIngestSettings(
        mqtt_host=broker[0], mqtt_port=broker[1], mqtt_client_id=client_id, batch_wait_ms=20
    )


def test_the_simulators_messages_are_stored_once(
    database: Database, broker: tuple[str, int], client_id: str
) -> None:
    serials = add_devices(database, 3)
    collected = Collected()
    service = GasIngestService(database, on_stored=collected)
    ingestor = MqttIngestor(service, _settings(broker, client_id))
    ingestor.start()
    device = MqttDevice(*broker)
    try:
        assert ingestor.wait_connected(10) and device.wait_connected()
        plan = (
            with_duplicates(normal(serials[0], T0, 120), every=4)
            + out_of_order(normal(serials[1], T0, 80), seed=5)
            + leak(serials[2], T0, 60)
        )
        device.send_all(plan)
        for topic, body in malformed(serials[0]):
            device.send_raw(topic, body)
        assert device.wait_acknowledged(30)
        truth = device.truth
        expected = set(truth.unique())
        wait_for(lambda: stored_count(database, serials) >= len(expected), 60, "all stored")
        wait_for(lambda: service.counters.get("malformed") >= truth.malformed, 10, "malformed")
    finally:
        device.close()
        ingestor.stop()
    assert truth.resent == 30 and truth.acknowledged == expected
    assert stored_keys(database, serials) == expected
    # Every new message went to the callback once; the re-sent ones were dropped.
    handed = [(m.serial, m.message_id) for m in collected.messages]
    assert sorted(handed) == sorted(expected)
    assert service.counters.get("malformed") == truth.malformed == 10
    assert service.counters.get("acked") >= len(plan)


def test_messages_sent_while_cunan_is_down_arrive_after(
    database: Database, broker: tuple[str, int], client_id: str
) -> None:
    (serial,) = add_devices(database, 1)
    settings = _settings(broker, client_id)
    first = MqttIngestor(GasIngestService(database), settings)
    first.start()
    assert first.wait_connected(10)
    first.stop()  # the session stays at the broker
    device = MqttDevice(*broker)
    try:
        assert device.wait_connected()
        device.send_all(normal(serial, T0, 40))
        assert device.wait_acknowledged(30)
    finally:
        device.close()
    assert stored_count(database, [serial]) == 0
    service = GasIngestService(database)
    again = MqttIngestor(service, settings)
    again.start()
    try:
        wait_for(lambda: stored_count(database, [serial]) == len(device.truth.sent), 30, "backlog")
    finally:
        again.stop()
    assert stored_keys(database, [serial]) == set(device.truth.unique())


class _Outage(GasIngestService):
    """The real service behind a switch that makes the database look down (fault injection)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.down = threading.Event()

    def store(self, messages: Sequence[DeviceMessage]) -> StoreReport:
        if self.down.is_set():
            raise ConnectionError("database unavailable (test)")
        return super().store(messages)


def test_nothing_is_acknowledged_before_it_is_stored(
    database: Database, broker: tuple[str, int], client_id: str
) -> None:
    (serial,) = add_devices(database, 1)
    settings = _settings(broker, client_id).model_copy(update={"reconnect_min_s": 0.2})
    failing = _Outage(database)
    failing.down.set()
    ingestor = MqttIngestor(failing, settings)
    ingestor.start()
    device = MqttDevice(*broker)
    try:
        assert ingestor.wait_connected(10) and device.wait_connected()
        device.send_all(normal(serial, T0, 25))
        assert device.wait_acknowledged(30)
        wait_for(lambda: failing.counters.get("store_failures") >= 2, 30, "store retried")
        # CunAn stops (or crashes) while the database is down: nothing was acknowledged.
        ingestor.stop(timeout_s=5)
    finally:
        device.close()
    assert failing.counters.get("acked") == 0
    assert stored_count(database, [serial]) == 0
    healthy = GasIngestService(database)
    again = MqttIngestor(healthy, settings)
    again.start()
    try:
        wait_for(lambda: stored_count(database, [serial]) == 25, 30, "redelivered")
    finally:
        again.stop()
    assert stored_keys(database, [serial]) == set(device.truth.unique())


def test_a_store_that_recovers_acknowledges_then(
    database: Database, broker: tuple[str, int], client_id: str
) -> None:
    (serial,) = add_devices(database, 1)
    settings = _settings(broker, client_id).model_copy(update={"reconnect_min_s": 0.2})
    service = _Outage(database)
    service.down.set()
    ingestor = MqttIngestor(service, settings)
    ingestor.start()
    device = MqttDevice(*broker)
    try:
        assert ingestor.wait_connected(10) and device.wait_connected()
        device.send_all(normal(serial, T0 + timedelta(hours=1), 10))
        wait_for(lambda: service.counters.get("store_failures") >= 1, 30, "a failure")
        service.down.clear()
        wait_for(lambda: stored_count(database, [serial]) == 10, 30, "stored after recovery")
        wait_for(lambda: service.counters.get("acked") == 10, 10, "acknowledged")
    finally:
        device.close()
        ingestor.stop()
