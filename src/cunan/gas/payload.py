"""The gas devices' payload scheme: MQTT topics and JSON bodies, and CTWing-style HTTP pushes."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cunan.errors import InvalidInput
from cunan.gas.domain import DeviceMessage, EventCode, MessageKind, ValveState

#: Every gas topic starts with this; a device publishes under ``cunan/gas/{serial}/{kind}``.
TOPIC_PREFIX = "cunan/gas"
#: What the ingestor subscribes to (one level for the serial, one for the kind).
SUBSCRIPTION = f"{TOPIC_PREFIX}/+/+"
#: Largest MQTT body accepted: a reading is about 100 bytes; anything near this is not one.
MAX_PAYLOAD_BYTES = 2048
#: Largest HTTP push body ever parsed (the route refuses bodies over its own, smaller limit).
MAX_PUSH_BYTES = 1024 * 1024
#: A serial is safe in a topic level, a file line and a URL: no ``/ + #``, no spaces, and no
#: ``:`` (it separates the user name from the hash in Mosquitto's password file).
SERIAL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: How far ahead of its arrival a device's clock may be: a message dated later would become
#: the device's latest and make every real reading after it look old.
MAX_CLOCK_AHEAD = timedelta(minutes=10)
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,64}")
#: Device clocks before this are unset clocks (1970, 2000 ...), not history.
_EARLIEST = datetime(2015, 1, 1, tzinfo=UTC)
_EPOCH_MS_MAX = 4_102_444_800_000  # 2100-01-01


class PayloadError(InvalidInput):
    """A message that does not follow the scheme; ``where`` names the topic or source and
    ``field`` the field at fault (the payload itself is never quoted: it may be anything)."""

    def __init__(self, where: str, field: str | None, reason: str) -> None:
        self.where = where
        self.field = field
        self.reason = reason
        at = f"{where} field {field!r}" if field else where
        super().__init__(f"{at}: {reason}")


@dataclass(frozen=True, slots=True)
class Topic:
    serial: str
    kind: MessageKind


def topic_for(serial: str, kind: MessageKind) -> str:
    return f"{TOPIC_PREFIX}/{serial}/{kind.value}"


def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != TOPIC_PREFIX:
        raise PayloadError(
            topic[:200], None, f"not a gas topic ({TOPIC_PREFIX}/{{serial}}/{{kind}})"
        )
    serial, kind = parts[2], parts[3]
    if not SERIAL_PATTERN.fullmatch(serial):
        raise PayloadError(topic[:200], None, "the serial has characters outside A-Z a-z 0-9 _ . -")
    try:
        return Topic(serial, MessageKind(kind))
    except ValueError:
        raise PayloadError(
            topic[:200], None, f"unknown kind {kind[:32]!r} (reading, event, heartbeat, valve)"
        ) from None


def parse_time(value: object, where: str, field: str = "ts") -> datetime:
    """ISO 8601 with an offset, or epoch milliseconds, to aware UTC."""
    if isinstance(value, bool):
        raise PayloadError(where, field, "must be ISO 8601 with an offset or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 < value < _EPOCH_MS_MAX:
            raise PayloadError(where, field, "epoch milliseconds out of range")
        moment = datetime.fromtimestamp(value / 1000.0, tz=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise PayloadError(where, field, "not an ISO 8601 time") from None
        if moment.tzinfo is None:
            # A device in another zone than CunAn would be silently hours off.
            raise PayloadError(where, field, "ISO 8601 time without an offset (add +08:00 or Z)")
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 with an offset: outside what a time can hold
            raise PayloadError(where, field, "time out of range") from None
    else:
        raise PayloadError(where, field, "must be ISO 8601 with an offset or epoch milliseconds")
    if moment < _EARLIEST:
        raise PayloadError(where, field, "before 2015: the device clock is not set")
    return moment


def _number(body: dict[str, Any], field: str, where: str, lo: float, hi: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(where, field, "must be a number")
    if not lo <= value <= hi:
        raise PayloadError(where, field, f"out of range {lo:g}..{hi:g}")
    return float(value)


def _message_id(body: dict[str, Any], where: str) -> str:
    value = body.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _MESSAGE_ID.fullmatch(value):
        raise PayloadError(where, "id", "missing, or not 1-64 printable ASCII characters")
    return value


def message_from_fields(
    serial: str,
    kind: MessageKind,
    body: dict[str, Any],
    *,
    where: str,
    received_at: datetime,
    source: str,
    message_id: str | None = None,
) -> DeviceMessage:
    """Validate one message's fields (the scheme of docs/gas-ingest.md) for its kind."""
    mid = message_id if message_id is not None else _message_id(body, where)
    if "ts" not in body:
        raise PayloadError(where, "ts", "missing")
    device_time = parse_time(body["ts"], where)
    if device_time > received_at + MAX_CLOCK_AHEAD:
        raise PayloadError(where, "ts", "in the future: the device clock is ahead")
    battery = _number(body, "battery", where, 0.0, 100.0)
    lel: float | None = None
    code: str | None = None
    active: bool | None = None
    if kind is MessageKind.READING:
        lel = _number(body, "lel", where, 0.0, 100.0)
        if lel is None:
            raise PayloadError(where, "lel", "missing (a reading carries %LEL)")
    elif kind is MessageKind.EVENT:
        raw = body.get("code")
        if not isinstance(raw, str) or raw not in {c.value for c in EventCode}:
            raise PayloadError(where, "code", "missing or not one of " + ", ".join(EventCode))
        code = str(raw)
        flag = body.get("active", True)
        if not isinstance(flag, bool):
            raise PayloadError(where, "active", "must be true or false")
        active = flag
    elif kind is MessageKind.VALVE:
        raw = body.get("code")
        if not isinstance(raw, str) or raw not in {v.value for v in ValveState}:
            raise PayloadError(where, "code", "missing or not open / closed")
        code = str(raw)
    return DeviceMessage(
        serial=serial,
        message_id=mid,
        kind=kind,
        device_time=device_time,
        received_at=received_at,
        lel=lel,
        code=code,
        active=active,
        battery_pct=battery,
        source=source,
    )


def _json_object(raw: bytes, where: str, limit: int) -> dict[str, Any]:
    if len(raw) > limit:
        raise PayloadError(where, None, f"body of {len(raw)} bytes is over the limit of {limit}")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack (a hostile body).
        raise PayloadError(where, None, "body is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise PayloadError(where, None, "body is not a JSON object")
    return body


def parse_mqtt(topic: str, payload: bytes, received_at: datetime) -> DeviceMessage:
    """One MQTT message to a :class:`DeviceMessage`, or a :class:`PayloadError`."""
    where = topic[:200]
    parsed = parse_topic(topic)
    body = _json_object(payload, where, MAX_PAYLOAD_BYTES)
    return message_from_fields(
        parsed.serial, parsed.kind, body, where=where, received_at=received_at, source="mqtt"
    )


def encode_mqtt(message: DeviceMessage) -> tuple[str, bytes]:
    """The topic and body a device sends for ``message`` (the simulator's side)."""
    body: dict[str, Any] = {
        "id": message.message_id,
        "ts": message.device_time.isoformat(timespec="milliseconds"),
    }
    if message.lel is not None:
        body["lel"] = message.lel
    if message.code is not None:
        body["code"] = message.code
    if message.active is not None:
        body["active"] = message.active
    if message.battery_pct is not None:
        body["battery"] = message.battery_pct
    return topic_for(message.serial, message.kind), json.dumps(body, separators=(",", ":")).encode()


# -- CTWing-style HTTP push -------------------------------------------------------------------

#: CTWing's ``messageType`` values this scheme understands; others are skipped, not errors
#: (a subscription may include command responses, device added/removed notices ...).
CTWING_DATA = "dataReport"
CTWING_EVENT = "eventReport"
CTWING_ONLINE = "deviceOnlineOfflineReport"


@dataclass(frozen=True, slots=True)
class PushParse:
    """What one push body held: the messages, and how many entries were skipped."""

    messages: list[DeviceMessage]
    skipped: int = 0


def parse_ctwing(raw: bytes, received_at: datetime, *, source: str = "ctwing") -> PushParse:
    """A CTWing-style subscription push (one object, or a list of them) to messages.

    ``deviceId`` (else ``IMEI``) is the serial, ``timestamp`` (epoch ms) the device time
    unless the data carries its own ``ts``. The data is ``payload.serviceData`` (profile
    products), ``payload.APPdata`` (base64 of a JSON object: transparent products) or the
    ``payload`` object itself, with this scheme's fields (``lel``, ``code``, ``active``,
    ``battery``, ``valve``); ``id`` in the data, else ``upPacketSN``, else the platform
    timestamp is the message id.
    """
    where = f"push {source}"
    try:
        decoded = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_PUSH_BYTES else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack (a hostile body).
        raise PayloadError(where, None, "body is not UTF-8 JSON") from None
    if decoded is None:
        raise PayloadError(where, None, f"body over the limit of {MAX_PUSH_BYTES} bytes")
    entries = decoded if isinstance(decoded, list) else [decoded]
    messages: list[DeviceMessage] = []
    skipped = 0
    for n, entry in enumerate(entries):
        at = where if len(entries) == 1 else f"{where} entry {n + 1}"
        if not isinstance(entry, dict):
            raise PayloadError(at, None, "not a JSON object")
        parsed = _ctwing_entry(entry, at, received_at, source)
        if parsed is None:
            skipped += 1
        else:
            messages.append(parsed)
    return PushParse(messages, skipped)


def _ctwing_entry(
    entry: dict[str, Any], where: str, received_at: datetime, source: str
) -> DeviceMessage | None:
    kind_name = entry.get("messageType")
    serial = entry.get("deviceId") or entry.get("IMEI")
    if not isinstance(serial, str) or not SERIAL_PATTERN.fullmatch(serial):
        raise PayloadError(where, "deviceId", "missing or not a device serial")
    where = f"{where} device {serial}"
    if kind_name not in (CTWING_DATA, CTWING_EVENT, CTWING_ONLINE):
        return None
    if "timestamp" not in entry:
        raise PayloadError(where, "timestamp", "missing")
    platform_time = parse_time(entry["timestamp"], where, "timestamp")
    if kind_name == CTWING_ONLINE:
        # Only "came online" says the device is alive; "went offline" is the platform's view,
        # CunAn decides offline from silence itself.
        if entry.get("eventType") != 1:
            return None
        body: dict[str, Any] = {"ts": entry["timestamp"]}
        return message_from_fields(
            serial,
            MessageKind.HEARTBEAT,
            body,
            where=where,
            received_at=received_at,
            source="http",
            message_id=f"online-{entry['timestamp']}",
        )
    data = _ctwing_data(entry.get("payload"), where)
    data.setdefault("ts", int(platform_time.timestamp() * 1000))
    if kind_name == CTWING_EVENT:
        kind = MessageKind.EVENT
    elif "lel" in data:
        kind = MessageKind.READING
    elif "valve" in data:
        kind = MessageKind.VALVE
        data["code"] = data["valve"]
    else:
        kind = MessageKind.HEARTBEAT
    if "id" not in data:
        sn = entry.get("upPacketSN")
        if isinstance(sn, int) and not isinstance(sn, bool) and sn >= 0:
            data["id"] = f"ct-{sn}"
        else:
            data["id"] = f"ct-{entry['timestamp']}-{kind.value}"
    return message_from_fields(
        serial, kind, data, where=where, received_at=received_at, source="http"
    )


def _ctwing_data(payload: object, where: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise PayloadError(where, "payload", "missing or not an object")
    if isinstance(payload.get("serviceData"), dict):
        return dict(payload["serviceData"])
    if "APPdata" in payload:
        try:
            inner = json.loads(base64.b64decode(str(payload["APPdata"]), validate=True))
        except (binascii.Error, ValueError, RecursionError):
            raise PayloadError(where, "payload.APPdata", "not base64 of a JSON object") from None
        if not isinstance(inner, dict):
            raise PayloadError(where, "payload.APPdata", "not base64 of a JSON object")
        return inner
    return dict(payload)


def encode_ctwing(message: DeviceMessage, *, packet_sn: int | None = None) -> dict[str, Any]:
    """A CTWing-style push entry for ``message`` (the simulator's and the tests' side)."""
    data: dict[str, Any] = {"id": message.message_id}
    if message.lel is not None:
        data["lel"] = message.lel
    if message.kind is MessageKind.VALVE:
        data["valve"] = message.code
    elif message.code is not None:
        data["code"] = message.code
    if message.active is not None:
        data["active"] = message.active
    if message.battery_pct is not None:
        data["battery"] = message.battery_pct
    return {
        "upPacketSN": -1 if packet_sn is None else packet_sn,
        "upDataSN": -1,
        "topic": "v1/up/ad",
        "timestamp": int(message.device_time.timestamp() * 1000),
        "tenantId": "2000000000",
        "serviceId": "",
        "protocol": "lwm2m",
        "productId": "15000000",
        "messageType": CTWING_EVENT if message.kind is MessageKind.EVENT else CTWING_DATA,
        "deviceId": message.serial,
        "payload": {"serviceId": 1, "serviceData": data},
    }
