"""A gas device simulator over real MQTT and HTTP push, keeping the ground truth of what it sent."""

from __future__ import annotations

import json
import math
import random
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cunan.gas.domain import DeviceMessage, EventCode, MessageKind
from cunan.gas.payload import encode_ctwing, encode_mqtt, topic_for
from cunan.gas.push import DELIVERY_HEADER, SIGNATURE_HEADER, TOKEN_HEADER, sign

#: The scenarios ``cunan gas simulate`` knows.
SCENARIOS = (
    "normal",
    "leak",
    "flapping",
    "silent",
    "malformed",
    "duplicates",
    "out-of-order",
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class GroundTruth:
    """What the simulator sent: every valid message (re-sends included), which of them the
    broker (or the push endpoint) acknowledged, and how many malformed ones went out."""

    sent: list[DeviceMessage] = field(default_factory=list)
    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    malformed: int = 0
    #: Times a message id was sent again (a duplicate delivery).
    resent: int = 0
    #: When each message was handed to the transport (monotonic seconds), for latency.
    published_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def unique(self) -> dict[tuple[str, str], DeviceMessage]:
        out: dict[tuple[str, str], DeviceMessage] = {}
        for m in self.sent:
            out.setdefault((m.serial, m.message_id), m)
        return out

    def newest(self, serial: str) -> DeviceMessage | None:
        """The device's message with the latest device time (what last_* should show)."""
        mine = [m for m in self.sent if m.serial == serial]
        return max(mine, key=lambda m: m.device_time) if mine else None

    def merge(self, other: GroundTruth) -> None:
        self.sent += other.sent
        self.acknowledged |= other.acknowledged
        self.malformed += other.malformed
        self.resent += other.resent
        self.published_at.update(other.published_at)


# -- scenarios: what devices say (pure; no I/O) --------------------------------------------------


def _reading(serial: str, n: int, at: datetime, lel: float, battery: float | None) -> DeviceMessage:
    return DeviceMessage(
        serial=serial,
        message_id=f"r{n}-{uuid.uuid4().hex[:8]}",
        kind=MessageKind.READING,
        device_time=at,
        received_at=at,
        lel=round(lel, 2),
        battery_pct=battery,
    )


def normal(
    serial: str, start: datetime, count: int, period_s: float = 1.0, *, seed: int = 0
) -> list[DeviceMessage]:
    """Clean air: 0-3 %LEL with a little noise, a heartbeat every 60 readings."""
    rng = random.Random(seed)
    out: list[DeviceMessage] = []
    for n in range(count):
        at = start + timedelta(seconds=n * period_s)
        out.append(_reading(serial, n, at, rng.uniform(0.0, 3.0), 95.0))
        if n % 60 == 59:
            out.append(
                DeviceMessage(
                    serial=serial,
                    message_id=f"h{n}-{uuid.uuid4().hex[:8]}",
                    kind=MessageKind.HEARTBEAT,
                    device_time=at,
                    received_at=at,
                    battery_pct=95.0,
                )
            )
    return out


def leak(
    serial: str, start: datetime, count: int, period_s: float = 1.0, *, peak: float = 80.0
) -> list[DeviceMessage]:
    """A leak: from clean air up to ``peak`` %LEL over the first two thirds, then held."""
    rise = max(1, count * 2 // 3)
    return [
        _reading(
            serial,
            n,
            start + timedelta(seconds=n * period_s),
            min(peak, 1.0 + peak * n / rise),
            None,
        )
        for n in range(count)
    ]


def flapping(
    serial: str,
    start: datetime,
    count: int,
    period_s: float = 1.0,
    *,
    set_point: float = 25.0,
    amplitude: float = 3.0,
) -> list[DeviceMessage]:
    """Around a set point: above, below, above ... (what the hold time and hysteresis fight)."""
    return [
        _reading(
            serial,
            n,
            start + timedelta(seconds=n * period_s),
            set_point + amplitude * math.copysign(1.0, math.sin(n * math.pi / 2 + 0.1)),
            None,
        )
        for n in range(count)
    ]


def fault_event(serial: str, at: datetime, *, active: bool = True) -> DeviceMessage:
    return DeviceMessage(
        serial=serial,
        message_id=f"e-{uuid.uuid4().hex[:12]}",
        kind=MessageKind.EVENT,
        device_time=at,
        received_at=at,
        code=EventCode.FAULT.value,
        active=active,
    )


def with_duplicates(messages: Sequence[DeviceMessage], every: int = 3) -> list[DeviceMessage]:
    """Each ``every``-th message sent twice (a device that missed the acknowledgement)."""
    out: list[DeviceMessage] = []
    for n, m in enumerate(messages):
        out.append(m)
        if n % every == every - 1:
            out.append(m)
    return out


def out_of_order(messages: Sequence[DeviceMessage], *, seed: int = 0) -> list[DeviceMessage]:
    """The same messages, shuffled (a device flushing its buffer after a network outage)."""
    out = list(messages)
    random.Random(seed).shuffle(out)
    return out


def malformed(serial: str) -> list[tuple[str, bytes]]:
    """Messages that break the scheme, one way each (topic, body)."""
    now = _utcnow().isoformat()
    reading = topic_for(serial, MessageKind.READING)
    return [
        (reading, b"not json"),
        (reading, b"[1, 2]"),
        (reading, json.dumps({"id": "m1", "lel": 5}).encode()),  # no ts
        (reading, json.dumps({"id": "m2", "ts": now}).encode()),  # no lel
        (reading, json.dumps({"id": "m3", "ts": now, "lel": 140}).encode()),  # out of range
        (reading, json.dumps({"id": "m4", "ts": "2026-01-01T08:00:00", "lel": 1}).encode()),
        (reading, json.dumps({"ts": now, "lel": 1}).encode()),  # no id
        (topic_for(serial, MessageKind.EVENT), json.dumps({"id": "m5", "ts": now}).encode()),
        (f"cunan/gas/{serial}/smoke", json.dumps({"id": "m6", "ts": now}).encode()),
        (reading, b"{" + b" " * 4096 + b"}"),  # over the size limit
    ]


def scenario(name: str, serial: str, start: datetime, count: int, period_s: float) -> list[Any]:
    """Messages (or, for ``malformed``, (topic, body) pairs) of a named scenario."""
    if name == "normal":
        return normal(serial, start, count, period_s)
    if name == "leak":
        return leak(serial, start, count, period_s)
    if name == "flapping":
        return flapping(serial, start, count, period_s)
    if name == "silent":
        # A normal start, then nothing: the offline sweep sees silence after the last one.
        return normal(serial, start, max(1, count // 4), period_s)
    if name == "malformed":
        return malformed(serial)
    if name == "duplicates":
        return with_duplicates(normal(serial, start, count, period_s))
    if name == "out-of-order":
        return out_of_order(normal(serial, start, count, period_s))
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


# -- transports ------------------------------------------------------------------------------


class MqttDevice:
    """One MQTT connection publishing as one device (its credentials), or as many devices on
    a broker without authentication. QoS 1: a message counts as acknowledged when its
    PUBACK came back."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        client_id: str | None = None,
        max_inflight: int = 1000,
    ) -> None:
        self.where = f"{host}:{port}"
        self.truth = GroundTruth()
        self._lock = threading.Lock()
        self._by_mid: dict[int, tuple[str, str] | None] = {}
        #: Answers that came back before ``publish`` returned the packet id (mid -> failed).
        self._early: dict[int, bool] = {}
        self._done = threading.Condition(self._lock)
        self._connected = threading.Event()
        self.refused: Any = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"cunan-sim-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = reason
        self._connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            if mid not in self._by_mid:
                self._early[mid] = bool(reason.is_failure)
                return
            self._answered(mid, bool(reason.is_failure))

    def _answered(self, mid: int, failed: bool) -> None:
        key = self._by_mid.pop(mid, None)
        # MQTT 5 brokers say "not authorized" in the PUBACK (ACL): not acknowledged.
        if key is not None and not failed:
            self.truth.acknowledged.add(key)
        self._done.notify_all()

    def _register(self, mid: int, key: tuple[str, str] | None) -> None:
        # Never hold the lock around ``publish``: paho calls on_publish holding its own.
        with self._lock:
            self._by_mid[mid] = key
            if mid in self._early:
                self._answered(mid, self._early.pop(mid))

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self._connected.wait(timeout_s) and self.refused is None

    def send(self, message: DeviceMessage, *, resent: bool = False) -> None:
        topic, body = encode_mqtt(message)
        key = (message.serial, message.message_id)
        with self._lock:
            self.truth.sent.append(message)
            if resent:
                self.truth.resent += 1
            self.truth.published_at.setdefault(key, time.monotonic())
        info = self.client.publish(topic, body, qos=1)
        self._register(info.mid, key)

    def send_raw(self, topic: str, body: bytes) -> None:
        with self._lock:
            self.truth.malformed += 1
        info = self.client.publish(topic, body, qos=1)
        self._register(info.mid, None)

    def send_all(self, messages: Iterable[DeviceMessage], *, rate: float | None = None) -> None:
        seen: set[tuple[str, str]] = set()
        started = time.monotonic()
        for n, m in enumerate(messages):
            key = (m.serial, m.message_id)
            self.send(m, resent=key in seen)
            seen.add(key)
            if rate:
                ahead = started + (n + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def wait_acknowledged(self, timeout_s: float = 30.0) -> bool:
        """Wait until every publish was answered; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._by_mid:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def push_burst(
    url: str,
    messages: Sequence[DeviceMessage],
    *,
    token: str | None = None,
    hmac_secret: str | None = None,
    per_body: int = 1,
    client: httpx.Client | None = None,
) -> GroundTruth:
    """POST the messages as CTWing-style pushes, ``per_body`` entries per body, as fast as
    the server answers; a 200 counts as acknowledged."""
    truth = GroundTruth()
    own = client is None
    http = client or httpx.Client(timeout=10.0)
    try:
        for start in range(0, len(messages), per_body):
            chunk = messages[start : start + per_body]
            entries = [encode_ctwing(m) for m in chunk]
            body = json.dumps(entries[0] if per_body == 1 else entries).encode()
            headers = {"content-type": "application/json", DELIVERY_HEADER: uuid.uuid4().hex}
            if token is not None:
                headers[TOKEN_HEADER] = token
            if hmac_secret is not None:
                headers[SIGNATURE_HEADER] = sign(hmac_secret, body)
            truth.sent += chunk
            for m in chunk:
                truth.published_at.setdefault((m.serial, m.message_id), time.monotonic())
            response = http.post(url, content=body, headers=headers)
            if response.status_code == 200:
                truth.acknowledged |= {(m.serial, m.message_id) for m in chunk}
    finally:
        if own:
            http.close()
    return truth


def shifted(messages: Sequence[DeviceMessage], to: datetime) -> list[DeviceMessage]:
    """The same messages with device times moved so the first is at ``to``."""
    if not messages:
        return []
    delta = to - messages[0].device_time
    return [replace(m, device_time=m.device_time + delta) for m in messages]
