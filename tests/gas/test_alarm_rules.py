"""The alarm rules alone: spikes, holding, hysteresis, order, events, offline, replacement."""

from __future__ import annotations

from datetime import date, timedelta

from cunan.gas.domain import AlarmAction, AlarmType, EventCode, MessageKind, SetPoints
from cunan.gas.rules import AlarmRules, DeviceState
from tests.gas.alarm_fixtures import T0, message, readings


def _rules(**points: float) -> tuple[AlarmRules, DeviceState]:
    rules = AlarmRules()
    state = DeviceState("D1", set_points=SetPoints(**points), offline_after_s=300)  # type: ignore[arg-type]
    rules.devices["D1"] = state
    return rules, state


def _run(
    rules: AlarmRules, state: DeviceState, values: list[float], step_s: float = 2.0
) -> list[tuple[str, str]]:
    out = []
    for m in readings("D1", T0, values, step_s):
        out += [(c.alarm_type.value, c.action.value) for c in rules.feed(state, m)]
    return out


def test_one_sample_spikes_raise_nothing() -> None:
    rules, state = _rules()
    # Steam and a splash of cooking wine: single readings far above both set points.
    assert _run(rules, state, [3, 80, 4, 2, 95, 3, 60, 2]) == []
    assert state.active == {}


def test_a_held_leak_raises_low_then_high_updates_the_peak_and_clears_below_the_band() -> None:
    rules, state = _rules()
    changes = _run(rules, state, [5, 30, 32, 34, 55, 60, 70, 65, 48, 30, 22, 19, 4])
    assert changes == [
        ("low", "raised"),  # 3rd reading in a row above 25
        ("low", "updated"),  # 55: new peak
        ("low", "updated"),  # 60
        ("low", "updated"),  # 70, and the 3rd reading above 50 (low is active already):
        ("high", "raised"),
        ("high", "cleared"),  # 30 < 50 - 5 (48 stays inside the band)
        ("low", "cleared"),  # 19 < 25 - 5
    ]
    assert state.active == {}


def test_holding_for_hold_s_raises_before_repeat_n_readings() -> None:
    rules, state = _rules(hold_s=10.0, repeat_n=5)
    # Battery devices report rarely: two readings 10 s apart hold the condition long enough.
    assert _run(rules, state, [30, 31], step_s=10.0) == [("low", "raised")]


def test_flapping_around_the_set_point_gives_one_alarm() -> None:
    rules, state = _rules()
    values = [27, 26, 28, 23, 26, 21, 27, 24, 26, 22, 25, 21]
    assert _run(rules, state, values) == [("low", "raised")]
    assert AlarmType.LOW in state.active
    below = message("D1", T0 + timedelta(minutes=1), lel=19.0)
    assert [(c.alarm_type, c.action) for c in rules.feed(state, below)] == [
        (AlarmType.LOW, AlarmAction.CLEARED)
    ]


def test_late_messages_do_not_flip_alarms_back() -> None:
    rules, state = _rules()
    _run(rules, state, [30, 30, 30])
    assert AlarmType.LOW in state.active
    # A reading from before the alarm, delivered late, does not clear it ...
    late = message("D1", T0 - timedelta(seconds=30), lel=0.0)
    assert rules.feed(state, late) == []
    assert AlarmType.LOW in state.active
    # ... and after the clear, late high readings raise nothing either.
    clear = message("D1", T0 + timedelta(seconds=60), lel=1.0)
    assert [c.action for c in rules.feed(state, clear)] == [AlarmAction.CLEARED]
    for i in range(5):
        old = message("D1", T0 + timedelta(seconds=10 + i), lel=90.0)
        assert rules.feed(state, old) == []
    assert state.active == {}


def test_events_raise_and_restore() -> None:
    rules, state = _rules()
    t = T0
    feed = [
        message("D1", t, kind=MessageKind.EVENT, code=EventCode.FAULT.value, active=True),
        message("D1", t + timedelta(seconds=1), kind=MessageKind.EVENT, code="fault", active=True),
        message("D1", t + timedelta(seconds=2), kind=MessageKind.EVENT, code="tamper"),
        message("D1", t + timedelta(seconds=3), kind=MessageKind.VALVE, code="closed"),
        message("D1", t + timedelta(seconds=4), kind=MessageKind.EVENT, code="fault", active=False),
        message("D1", t + timedelta(seconds=5), kind=MessageKind.VALVE, code="open"),
        message("D1", t + timedelta(seconds=6), kind=MessageKind.EVENT, code="low_battery"),
        message("D1", t + timedelta(seconds=7), kind=MessageKind.EVENT, code="unknown_code"),
    ]
    got = [(c.alarm_type.value, c.action.value) for m in feed for c in rules.feed(state, m)]
    assert got == [
        ("fault", "raised"),
        ("tamper", "raised"),
        ("valve_closed", "raised"),
        ("fault", "cleared"),
        ("valve_closed", "cleared"),
        ("low_battery", "raised"),
    ]


def test_the_devices_own_alarm_raises_at_once_and_its_restore_clears() -> None:
    rules, state = _rules()
    _run(rules, state, [12])
    on = message("D1", T0 + timedelta(seconds=5), kind=MessageKind.EVENT, code="device_alarm")
    got = [(c.alarm_type.value, c.action.value, c.detail) for c in rules.feed(state, on)]
    assert got == [("low", "raised", "device_alarm"), ("high", "raised", "device_alarm")]
    off = message(
        "D1", T0 + timedelta(seconds=9), kind=MessageKind.EVENT, code="device_alarm", active=False
    )
    got = [(c.alarm_type.value, c.action.value) for c in rules.feed(state, off)]
    assert got == [("high", "cleared"), ("low", "cleared")]


def test_offline_after_the_models_period_and_back_with_the_next_message() -> None:
    rules, state = _rules()
    rules.feed(state, message("D1", T0, kind=MessageKind.HEARTBEAT))
    assert rules.sweep_offline(T0 + timedelta(seconds=299)) == []
    changes = rules.sweep_offline(T0 + timedelta(seconds=400))
    assert [(c.alarm_type, c.action, c.at) for c in changes] == [
        (AlarmType.OFFLINE, AlarmAction.RAISED, T0 + timedelta(seconds=300))
    ]
    assert rules.sweep_offline(T0 + timedelta(seconds=900)) == []  # raised once
    back = message("D1", T0 + timedelta(seconds=950), kind=MessageKind.HEARTBEAT)
    assert [(c.alarm_type, c.action) for c in rules.feed(state, back)] == [
        (AlarmType.OFFLINE, AlarmAction.CLEARED)
    ]


def test_a_late_message_still_brings_a_device_back_online() -> None:
    rules, state = _rules()
    rules.feed(state, message("D1", T0, lel=1.0))
    rules.sweep_offline(T0 + timedelta(hours=1))
    # Buffered readings from while it was cut off arrive now: it is alive again.
    late = message("D1", T0 - timedelta(minutes=1), lel=1.0, received_at=T0 + timedelta(hours=2))
    assert [(c.alarm_type, c.action) for c in rules.feed(state, late)] == [
        (AlarmType.OFFLINE, AlarmAction.CLEARED)
    ]


def test_replacement_overdue_raised_after_the_date_and_cleared_when_replaced() -> None:
    rules, state = _rules()
    due = date(2026, 3, 1)
    assert rules.replacement(state, due, date(2026, 3, 1), T0) == []
    raised = rules.replacement(state, due, date(2026, 3, 2), T0)
    assert [(c.alarm_type, c.action) for c in raised] == [
        (AlarmType.REPLACEMENT_OVERDUE, AlarmAction.RAISED)
    ]
    assert rules.replacement(state, due, date(2026, 3, 3), T0) == []
    cleared = rules.replacement(state, date(2029, 3, 1), date(2026, 3, 4), T0)
    assert [c.action for c in cleared] == [AlarmAction.CLEARED]


def test_severity_follows_the_settings() -> None:
    from cunan.gas.domain import Severity

    rules = AlarmRules({AlarmType.LOW: Severity.CRITICAL})
    state = DeviceState("D1")
    rules.devices["D1"] = state
    changes = [
        c for m in readings("D1", T0, [30, 30, 30, 60, 60, 60]) for c in rules.feed(state, m)
    ]
    assert {c.alarm_type: c.severity for c in changes} == {
        AlarmType.LOW: Severity.CRITICAL,
        AlarmType.HIGH: Severity.CRITICAL,
    }
