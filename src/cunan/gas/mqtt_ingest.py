"""MQTT ingestion: a persistent QoS 1 subscription, acknowledged only once a batch is stored."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cunan.gas.domain import DeviceMessage
from cunan.gas.ingest import GasIngestService
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.payload import SUBSCRIPTION, PayloadError, parse_mqtt

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Received:
    message: DeviceMessage
    mid: int
    qos: int
    #: The session the message came in (a new session makes old packet ids meaningless).
    session: int


class MqttIngestor:
    """Subscribes to ``cunan/gas/+/+`` at QoS 1 in a persistent session (MQTT 5, clean start
    off, a session expiry): what devices publish while CunAn is down waits at the broker.

    Messages are acknowledged (``manual_ack``) only after the batch holding them is
    committed, so a crash or a database outage loses nothing the broker let go of: the
    broker delivers the unacknowledged ones again. Malformed messages are counted, logged
    (topic and field, never the payload) and acknowledged: delivering them again cannot
    help. paho reconnects on its own, waiting ``reconnect_min_s`` doubling to
    ``reconnect_max_s``.
    """

    def __init__(
        self,
        service: GasIngestService,
        settings: GasIngestSettings | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.service = service
        self.settings = settings or service.settings
        self.counters = service.counters
        self._clock = clock
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        #: Packet ids received and not yet acknowledged: a copy delivered again (after a
        #: reconnect) is dropped, so each id is acknowledged once.
        self._pending: set[int] = set()
        self._session = 0
        self._worker: threading.Thread | None = None
        self.client = self._build_client()

    # -- the client ----------------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.mqtt_client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if s.mqtt_username is not None:
            client.username_pw_set(s.mqtt_username, s.mqtt_password)
        if s.mqtt_tls or s.mqtt_ca_file is not None:
            client.tls_set(
                ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None,
                certfile=str(s.mqtt_cert_file) if s.mqtt_cert_file else None,
                keyfile=str(s.mqtt_key_file) if s.mqtt_key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(max(1, int(s.reconnect_min_s)), max(1, int(s.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        props.ReceiveMaximum = self.settings.mqtt_receive_maximum
        return props

    @property
    def where(self) -> str:
        return f"{self.settings.mqtt_host}:{self.settings.mqtt_port}"

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.counters.add("mqtt_refused")
            logger.warning("gas MQTT broker %s refused the session (%s)", self.where, reason)
            return
        with self._lock:
            if not flags.session_present:
                # The broker forgot the session: packet ids still queued here belong to
                # nothing now (their messages come again), so they are never acknowledged.
                self._session += 1
                self._pending.clear()
        self.counters.add("mqtt_connects")
        # Connected counts from the broker's SUBACK: before it, a message published by a
        # device would find no subscription in a new session.
        client.subscribe(SUBSCRIPTION, qos=1)
        logger.info(
            "gas MQTT connected to %s (session %s)",
            self.where,
            "resumed" if flags.session_present else "new",
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            self.counters.add("mqtt_refused")
            logger.warning("gas MQTT broker %s refused the subscription (%s)", self.where, reasons)
            return
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            self.counters.add("mqtt_disconnects")
            logger.warning("gas MQTT connection to %s lost (%s); reconnecting", self.where, reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            message = parse_mqtt(msg.topic, bytes(msg.payload), self._clock())
        except PayloadError as exc:
            self.counters.add("malformed")
            logger.info("gas MQTT message refused: %s", exc)
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        if not msg.qos:
            # QoS 0 (a device publishing at 0): nothing to acknowledge, nothing to hold.
            self._queue.put(_Received(message, 0, 0, self._session))
            return
        with self._lock:
            if msg.mid in self._pending:
                self.counters.add("redelivered")
                return
            self._pending.add(msg.mid)
            session = self._session
        self._queue.put(_Received(message, msg.mid, msg.qos, session))

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("the gas MQTT ingestor is already running")
        self._stop.clear()
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()
        self._worker = threading.Thread(target=self._run, name="cunan-gas-mqtt", daemon=True)
        self._worker.start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected and subscribed."""
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Store and acknowledge what was received, then disconnect (the session stays)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout_s)
            self._worker = None
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def _next_batch(self) -> list[_Received]:
        size = self.settings.batch_size
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000.0
        while len(batch) < size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self._store(batch)

    def _store(self, batch: list[_Received]) -> None:
        wait = self.settings.reconnect_min_s
        while True:
            try:
                self.service.store([r.message for r in batch])
                break
            except Exception:
                # Nothing acknowledged: the broker still holds every message of the batch.
                self.counters.add("store_failures")
                logger.exception(
                    "gas ingest: storing %d messages failed; retrying in %.0f s", len(batch), wait
                )
                if self._stop.wait(wait):
                    return
                wait = min(wait * 2, self.settings.reconnect_max_s)
        with self._lock:
            session = self._session
            acks = [r for r in batch if r.qos and r.session == session]
            for r in batch:
                if r.qos and r.session == session:
                    self._pending.discard(r.mid)
        for r in acks:
            self.client.ack(r.mid, r.qos)
        self.counters.add("acked", len(acks))
