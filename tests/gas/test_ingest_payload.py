"""The payload scheme: MQTT topics and bodies, CTWing-style pushes, refusals that name the field."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cunan.gas.domain import DeviceMessage, MessageKind
from cunan.gas.payload import (
    MAX_PAYLOAD_BYTES,
    PayloadError,
    encode_ctwing,
    encode_mqtt,
    parse_ctwing,
    parse_mqtt,
)
from cunan.gas.simulator import malformed

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_a_reading_parses_with_iso_or_epoch_times() -> None:
    iso = parse_mqtt(
        "cunan/gas/D-1/reading",
        b'{"id":"a1","ts":"2026-03-01T12:00:00.250+08:00","lel":12.5,"battery":88}',
        NOW,
    )
    assert (iso.serial, iso.message_id, iso.kind) == ("D-1", "a1", MessageKind.READING)
    assert iso.device_time == datetime(2026, 3, 1, 4, 0, 0, 250000, tzinfo=UTC)
    assert (iso.lel, iso.battery_pct, iso.received_at, iso.source) == (12.5, 88.0, NOW, "mqtt")
    epoch = parse_mqtt("cunan/gas/D-1/reading", b'{"id":7,"ts":1772337600000,"lel":0}', NOW)
    assert epoch.message_id == "7"
    assert epoch.device_time == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_events_valves_and_heartbeats() -> None:
    event = parse_mqtt(
        "cunan/gas/D-1/event", b'{"id":"e","ts":1772337600000,"code":"tamper","active":false}', NOW
    )
    assert (event.kind, event.code, event.active) == (MessageKind.EVENT, "tamper", False)
    valve = parse_mqtt("cunan/gas/D-1/valve", b'{"id":"v","ts":1772337600000,"code":"closed"}', NOW)
    assert (valve.kind, valve.code) == (MessageKind.VALVE, "closed")
    beat = parse_mqtt("cunan/gas/D-1/heartbeat", b'{"id":"h","ts":1772337600000}', NOW)
    assert beat.kind is MessageKind.HEARTBEAT and beat.lel is None


@pytest.mark.parametrize(
    ("topic", "body", "field"),
    [
        ("cunan/gas/D-1/reading", b'{"id":"x","lel":3}', "ts"),
        ("cunan/gas/D-1/reading", b'{"id":"x","ts":"2026-03-01T12:00:00","lel":3}', "ts"),
        ("cunan/gas/D-1/reading", b'{"id":"x","ts":"1999-01-01T00:00:00Z","lel":3}', "ts"),
        ("cunan/gas/D-1/reading", b'{"id":"x","ts":true,"lel":3}', "ts"),
        ("cunan/gas/D-1/reading", b'{"ts":1772337600000,"lel":3}', "id"),
        ("cunan/gas/D-1/reading", b'{"id":"a b","ts":1772337600000,"lel":3}', "id"),
        ("cunan/gas/D-1/reading", b'{"id":"x","ts":1772337600000}', "lel"),
        ("cunan/gas/D-1/reading", b'{"id":"x","ts":1772337600000,"lel":"3"}', "lel"),
        ("cunan/gas/D-1/reading", b'{"id":"x","ts":1772337600000,"lel":-1}', "lel"),
        (
            "cunan/gas/D-1/reading",
            b'{"id":"x","ts":1772337600000,"lel":3,"battery":101}',
            "battery",
        ),
        ("cunan/gas/D-1/event", b'{"id":"x","ts":1772337600000,"code":"smoke"}', "code"),
        (
            "cunan/gas/D-1/event",
            b'{"id":"x","ts":1772337600000,"code":"fault","active":1}',
            "active",
        ),
        ("cunan/gas/D-1/valve", b'{"id":"x","ts":1772337600000,"code":"ajar"}', "code"),
    ],
)
def test_a_bad_field_is_named(topic: str, body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_mqtt(topic, body, NOW)
    assert caught.value.field == field
    assert caught.value.where == topic
    assert f"field {field!r}" in str(caught.value)


@pytest.mark.parametrize(
    "topic",
    [
        "cunan/gas/D-1",
        "cunan/gas/D-1/reading/x",
        "other/gas/D-1/reading",
        "cunan/gas/D+1/reading",
        "cunan/gas/D-1/smoke",
    ],
)
def test_a_bad_topic_is_refused(topic: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_mqtt(topic, b'{"id":"x","ts":1772337600000,"lel":3}', NOW)
    assert caught.value.where == topic and caught.value.field is None


def test_bodies_that_are_not_json_objects_or_too_large_are_refused() -> None:
    for body in (b"nope", b"[1]", b"\xff\xfe", b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"):
        with pytest.raises(PayloadError):
            parse_mqtt("cunan/gas/D-1/reading", body, NOW)


def test_every_malformed_simulator_message_is_refused() -> None:
    for topic, body in malformed("D-1"):
        with pytest.raises(PayloadError):
            parse_mqtt(topic, body, NOW)


def _message(**changes: object) -> DeviceMessage:
    base = DeviceMessage(
        serial="D-9",
        message_id="m-1",
        kind=MessageKind.READING,
        device_time=NOW.astimezone(timezone(timedelta(hours=8))),
        received_at=NOW,
        lel=31.5,
        battery_pct=70.0,
    )
    fields = {f: getattr(base, f) for f in base.__slots__}  # type: ignore[attr-defined]
    fields.update(changes)
    return DeviceMessage(**fields)  # type: ignore[arg-type]


def test_what_the_simulator_encodes_parses_back() -> None:
    for message in (
        _message(),
        _message(kind=MessageKind.EVENT, lel=None, code="fault", active=True),
        _message(kind=MessageKind.VALVE, lel=None, code="open"),
        _message(kind=MessageKind.HEARTBEAT, lel=None),
    ):
        topic, body = encode_mqtt(message)
        back = parse_mqtt(topic, body, NOW)
        assert back == message
        pushed = parse_ctwing(json.dumps(encode_ctwing(message)).encode(), NOW)
        assert pushed.messages == [
            DeviceMessage(**{**{f: getattr(back, f) for f in back.__slots__}, "source": "http"})  # type: ignore[attr-defined]
        ]


def test_ctwing_pushes_in_their_three_shapes() -> None:
    ms = 1772337600000
    transparent = {
        "messageType": "dataReport",
        "deviceId": "IMEI86001",
        "timestamp": ms,
        "upPacketSN": 41,
        "payload": {"APPdata": base64.b64encode(b'{"lel": 4.5, "battery": 60}').decode()},
    }
    online = {
        "messageType": "deviceOnlineOfflineReport",
        "deviceId": "IMEI86001",
        "timestamp": ms + 1,
        "eventType": 1,
    }
    offline = {**online, "eventType": 0}
    command = {"messageType": "commandResponse", "deviceId": "IMEI86001", "timestamp": ms}
    parsed = parse_ctwing(json.dumps([transparent, online, offline, command]).encode(), NOW)
    assert parsed.skipped == 2
    reading, beat = parsed.messages
    assert (reading.kind, reading.lel, reading.battery_pct, reading.message_id) == (
        MessageKind.READING,
        4.5,
        60.0,
        "ct-41",
    )
    assert reading.device_time == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    assert beat.kind is MessageKind.HEARTBEAT and beat.source == "http"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"messageType": "dataReport", "timestamp": 1772337600000, "payload": {}}, "deviceId"),
        ({"messageType": "dataReport", "deviceId": "D1", "payload": {"lel": 1}}, "timestamp"),
        ({"messageType": "dataReport", "deviceId": "D1", "timestamp": 1772337600000}, "payload"),
        (
            {
                "messageType": "dataReport",
                "deviceId": "D1",
                "timestamp": 1772337600000,
                "payload": {"APPdata": "%%%"},
            },
            "payload.APPdata",
        ),
        (
            {
                "messageType": "dataReport",
                "deviceId": "D1",
                "timestamp": 1772337600000,
                "payload": {"serviceData": {"lel": 250}},
            },
            "lel",
        ),
    ],
)
def test_a_bad_push_names_its_field(entry: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_ctwing(json.dumps(entry).encode(), NOW)
    assert caught.value.field == field


def test_the_scenarios_have_their_shapes() -> None:
    from cunan.gas.simulator import SCENARIOS, flapping, leak, scenario

    start = datetime(2026, 3, 1, tzinfo=UTC)
    ramp = leak("D-1", start, 30, peak=80.0)
    assert ramp[0].lel is not None and ramp[0].lel < 5 and ramp[-1].lel == 80.0
    assert all((a.lel or 0) <= (b.lel or 0) for a, b in itertools.pairwise(ramp))
    around = [m.lel for m in flapping("D-1", start, 12, set_point=25.0, amplitude=3.0)]
    assert {round(v or 0) for v in around} == {22, 28}
    assert sum(1 for a, b in itertools.pairwise(around) if a != b) >= 5
    silent = scenario("silent", "D-1", start, 40, 1.0)
    assert len(silent) == 10 and max(m.device_time for m in silent) < start + timedelta(seconds=10)
    for name in SCENARIOS:
        assert scenario(name, "D-1", start, 20, 1.0)
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("earthquake", "D-1", start, 20, 1.0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Unhashable or wrong-typed codes are refused, not a crash of the parser.
        (b'{"id":"e1","ts":1772337605000,"code":[]}', "code"),
        (b'{"id":"e1","ts":1772337605000,"code":{"a":1}}', "code"),
        # A time that cannot be brought to UTC.
        (b'{"id":"e1","ts":"0001-01-01T00:00:00+14:00","code":"fault"}', "ts"),
        # A device clock far ahead of the message's arrival.
        (b'{"id":"e1","ts":"2099-01-01T00:00:00+08:00","code":"fault"}', "ts"),
    ],
)
def test_hostile_event_fields_are_refused_by_name(body: bytes, field: str) -> None:
    received = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    with pytest.raises(PayloadError) as refused:
        parse_mqtt("cunan/gas/D-1/event", body, received)
    assert refused.value.field == field


def test_a_clock_a_little_ahead_is_accepted_and_deep_nesting_is_refused() -> None:
    received = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    ahead = (received + timedelta(minutes=5)).isoformat()
    body = json.dumps({"id": "r1", "ts": ahead, "lel": 1.0}).encode()
    assert parse_mqtt("cunan/gas/D-1/reading", body, received).lel == 1.0
    nested = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(PayloadError, match="not UTF-8 JSON"):
        parse_ctwing(nested, received, source="ctwing")


def test_a_serial_with_a_colon_is_refused() -> None:
    # ':' separates the user name from the hash in Mosquitto's password file.
    with pytest.raises(PayloadError):
        parse_mqtt("cunan/gas/a:b/heartbeat", b'{"id":"h1","ts":1772337605000}', datetime.now(UTC))
