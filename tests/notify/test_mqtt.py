from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cunan.notify import MqttNotifier, Notification, NotificationError
from tests.notify.conftest import spare_port

BROKER = ("127.0.0.1", 1883)


@pytest.fixture(scope="module")
def broker() -> tuple[str, int]:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError:
        reason = (
            "Mosquitto not reachable at 127.0.0.1:1883 (start it: "
            "mosquitto -d -c /etc/mosquitto/mosquitto.conf)"
        )
        if os.environ.get("CUNAN_REQUIRE_DATA") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return BROKER


@pytest.fixture
def subscriber(broker: tuple[str, int]) -> Iterator[tuple[str, list[Any], threading.Event]]:
    topic = f"cunan-test/{uuid.uuid4().hex}"
    received: list[Any] = []
    got = threading.Event()
    subscribed = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(*_: Any) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        received.append((message.qos, json.loads(message.payload)))
        got.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(*broker)
    client.loop_start()
    assert subscribed.wait(10), "test subscriber could not subscribe"
    try:
        yield topic, received, got
    finally:
        client.disconnect()
        client.loop_stop()


def test_published_notification_reaches_a_subscriber(
    broker: tuple[str, int], subscriber: tuple[str, list[Any], threading.Event]
) -> None:
    topic, received, got = subscriber
    notifier = MqttNotifier(broker[0], topic, port=broker[1], timeout_s=10)
    notification = Notification(
        kind="departure.overdue",
        title="离开报备逾期",
        body="tenancy 8 is overdue",
        data={"tenancy_id": 8, "crop": "AAAA"},
    )
    notifier.send(notification)
    assert got.wait(10), "no message arrived"
    [(qos, payload)] = received
    assert qos == 1
    assert payload["id"] == notification.id and payload["title"] == "离开报备逾期"
    assert payload["data"] == {"tenancy_id": 8}


def test_unreachable_broker_is_a_notification_error() -> None:
    notifier = MqttNotifier("127.0.0.1", "cunan/x", port=spare_port(), timeout_s=2)
    with pytest.raises(NotificationError, match="unreachable") as caught:
        notifier.send(Notification(kind="k", title="t", body="b"))
    assert caught.value.retryable
