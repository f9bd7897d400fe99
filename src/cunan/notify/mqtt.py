"""MQTT channel: publishes each notification as JSON to a topic, QoS 1 by default."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, to_payload

logger = logging.getLogger(__name__)


class MqttNotifier:
    """Connects, publishes, waits for the broker's acknowledgement, disconnects.

    A connection per notification keeps no socket to babysit between rare alerts; with QoS 1
    ``send`` returns only after the broker's PUBACK, so a return means "the broker has it".
    """

    def __init__(
        self,
        host: str,
        topic: str,
        *,
        port: int = 1883,
        channel: str = "mqtt",
        qos: int = 1,
        retain: bool = False,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
        include_face_data: bool = False,
        client_id_prefix: str = "cunan-",
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        if not topic or "#" in topic or "+" in topic:
            raise ValueError("publish topic must be non-empty and have no wildcards")
        self.host = host
        self.port = port
        self.topic = topic
        self.channel = channel
        self._qos = qos
        self._retain = retain
        self._username = username
        self._password = password
        self._tls = tls
        self._ca_file = ca_file
        self._timeout_s = timeout_s
        self._include_face_data = include_face_data
        self._client_id_prefix = client_id_prefix

    def send(self, notification: Notification) -> None:
        payload = json.dumps(
            to_payload(notification, include_face_data=self._include_face_data),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{self._client_id_prefix}{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set(
                ca_certs=str(self._ca_file) if self._ca_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        connected = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(
            _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
        ) -> None:
            outcome["reason"] = reason
            connected.set()

        client.on_connect = on_connect
        where = f"{self.host}:{self.port}"
        try:
            client.connect(self.host, self.port, keepalive=max(10, int(self._timeout_s) * 2))
        except (OSError, ValueError) as exc:
            raise NotificationError(self.channel, f"broker {where} unreachable ({exc})") from exc
        client.loop_start()
        try:
            if not connected.wait(self._timeout_s):
                raise NotificationError(self.channel, f"broker {where} did not accept the session")
            reason = outcome["reason"]
            if reason.is_failure:
                # Bad credentials or a refused client id: retrying cannot help.
                raise NotificationError(
                    self.channel,
                    f"broker {where} refused the connection ({reason})",
                    retryable=False,
                )
            info = client.publish(self.topic, payload, qos=self._qos, retain=self._retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise NotificationError(
                    self.channel, f"publish to {where} failed ({mqtt.error_string(info.rc)})"
                )
            info.wait_for_publish(self._timeout_s)
            if not info.is_published():
                raise NotificationError(
                    self.channel, f"broker {where} did not acknowledge within {self._timeout_s} s"
                )
        except RuntimeError as exc:  # paho raises it when the connection drops mid-publish
            raise NotificationError(self.channel, f"connection to {where} lost ({exc})") from exc
        finally:
            client.disconnect()
            client.loop_stop()
        logger.debug("notification %s published to %s on %s", notification.id, self.topic, where)
