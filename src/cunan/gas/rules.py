"""The gas alarm rules: each device's state fed its messages in device-time order (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from cunan.gas.domain import (
    DEFAULT_SEVERITY,
    AlarmAction,
    AlarmChange,
    AlarmType,
    DeviceMessage,
    EventCode,
    MessageKind,
    SetPoints,
    Severity,
    ValveState,
)

#: Device events raised and restored by the device itself, and the alarm each one is.
EVENT_ALARMS: dict[str, AlarmType] = {
    EventCode.FAULT.value: AlarmType.FAULT,
    EventCode.TAMPER.value: AlarmType.TAMPER,
    EventCode.LOW_BATTERY.value: AlarmType.LOW_BATTERY,
}

#: The concentration alarms, low first: a reading is judged against the low set point
#: before the high one, so HIGH always finds LOW raised (see :meth:`AlarmRules.feed`).
CONCENTRATION = (AlarmType.LOW, AlarmType.HIGH)


@dataclass(slots=True)
class Pending:
    """A concentration condition not yet held long enough: since when, how many readings."""

    since: datetime | None = None
    n: int = 0

    def reset(self) -> None:
        self.since = None
        self.n = 0


@dataclass(slots=True)
class DeviceState:
    """What the rules remember of one device between messages.

    ``active`` maps each active alarm to its peak concentration (None for alarms without
    one); ``last_time`` is the newest device time evaluated (older messages are late and
    change nothing), ``last_heard`` the newest arrival (offline detection).
    """

    serial: str
    set_points: SetPoints = field(default_factory=SetPoints)
    offline_after_s: float | None = None
    last_time: datetime | None = None
    last_heard: datetime | None = None
    last_lel: float | None = None
    online: bool | None = None
    active: dict[AlarmType, float | None] = field(default_factory=dict)
    pending: dict[AlarmType, Pending] = field(
        default_factory=lambda: {kind: Pending() for kind in CONCENTRATION}
    )

    def resume_run(self, readings: Iterable[tuple[datetime, float]]) -> None:
        """Rebuild the pending counters from the device's last readings (oldest first), as
        if they had just been fed: a restart neither loses a condition building up nor
        raises an alarm that is already active (``active`` comes from storage)."""
        for kind in CONCENTRATION:
            self.pending[kind].reset()
        for moment, lel in readings:
            self.last_lel = lel
            for kind in CONCENTRATION:
                pending = self.pending[kind]
                if kind in self.active or lel < _level(self.set_points, kind):
                    pending.reset()
                    continue
                if pending.since is None:
                    pending.since = moment
                pending.n += 1


def _level(points: SetPoints, kind: AlarmType) -> float:
    return points.low_lel if kind is AlarmType.LOW else points.high_lel


class AlarmRules:
    """Every known device's state and the rules that turn its messages into alarm changes.

    Concentration (LOW, HIGH): raised when the reading is at or above the set point for
    ``repeat_n`` readings in a row or for ``hold_s`` seconds of device time, whichever comes
    first (one-sample spikes from cooking fumes, steam or alcohol raise nothing); updated
    when a reading sets a new peak; cleared when a reading falls below the set point minus
    ``hysteresis_lel`` (readings between the two keep the alarm and raise no new one, so a
    concentration flapping around the set point gives one alarm, not many). HIGH implies
    LOW: a reading above the high set point is above the low one too, so LOW is raised no
    later than HIGH and cleared no later than it; both stay active together.

    Events: fault, tamper and low battery are raised and restored as the device reports;
    the valve's ``closed`` raises VALVE_CLOSED and ``open`` clears it; the device's own
    ``device_alarm`` raises HIGH (and LOW) at once (its own filtering already happened),
    and its restore clears them unless the last reading is still above the set points.

    Messages older than the newest one evaluated (late, out of order) are stored by
    ingestion but change no alarm here; every message still counts as a sign of life.
    """

    def __init__(self, severity: Mapping[AlarmType, Severity] | None = None) -> None:
        self.severity: dict[AlarmType, Severity] = dict(DEFAULT_SEVERITY)
        if severity:
            self.severity.update(severity)
        self.devices: dict[str, DeviceState] = {}

    # -- changes ---------------------------------------------------------------------------

    def _change(
        self,
        state: DeviceState,
        kind: AlarmType,
        action: AlarmAction,
        at: datetime,
        value: float | None = None,
        detail: str | None = None,
    ) -> AlarmChange:
        if action is AlarmAction.RAISED or action is AlarmAction.UPDATED:
            state.active[kind] = value
        else:
            state.active.pop(kind, None)
        return AlarmChange(
            serial=state.serial,
            alarm_type=kind,
            action=action,
            severity=self.severity[kind],
            at=at,
            value=value,
            detail=detail,
        )

    def _raise(
        self,
        state: DeviceState,
        kind: AlarmType,
        at: datetime,
        value: float | None = None,
        detail: str | None = None,
    ) -> list[AlarmChange]:
        if kind in state.active:
            return []
        return [self._change(state, kind, AlarmAction.RAISED, at, value, detail)]

    def _clear(
        self, state: DeviceState, kind: AlarmType, at: datetime, value: float | None = None
    ) -> list[AlarmChange]:
        if kind not in state.active:
            return []
        return [self._change(state, kind, AlarmAction.CLEARED, at, value)]

    # -- messages --------------------------------------------------------------------------

    def feed(self, state: DeviceState, message: DeviceMessage) -> list[AlarmChange]:
        """The alarm changes one message causes (the state is updated in place)."""
        out: list[AlarmChange] = []
        if state.last_heard is None or message.received_at > state.last_heard:
            state.last_heard = message.received_at
        if AlarmType.OFFLINE in state.active:
            out += self._clear(state, AlarmType.OFFLINE, message.received_at)
        if state.last_time is not None and message.device_time < state.last_time:
            return out
        state.last_time = message.device_time
        at = message.device_time
        kind = message.kind
        if kind is MessageKind.READING:
            if message.lel is not None:
                out += self._concentration(state, message.lel, at)
        elif kind is MessageKind.EVENT:
            out += self._event(state, message, at)
        elif kind is MessageKind.VALVE:
            if message.code == ValveState.CLOSED.value:
                out += self._raise(state, AlarmType.VALVE_CLOSED, at)
            elif message.code == ValveState.OPEN.value:
                out += self._clear(state, AlarmType.VALVE_CLOSED, at)
        return out

    def _event(self, state: DeviceState, message: DeviceMessage, at: datetime) -> list[AlarmChange]:
        raised = message.active is not False
        code = message.code or ""
        if code == EventCode.DEVICE_ALARM.value:
            if raised:
                out = self._raise(state, AlarmType.LOW, at, state.last_lel, detail=code)
                return out + self._raise(state, AlarmType.HIGH, at, state.last_lel, detail=code)
            out = []
            for level in reversed(CONCENTRATION):
                threshold = _level(state.set_points, level)
                if state.last_lel is None or state.last_lel < threshold:
                    out += self._clear(state, level, at, state.last_lel)
            return out
        kind = EVENT_ALARMS.get(code)
        if kind is None:
            return []
        return self._raise(state, kind, at) if raised else self._clear(state, kind, at)

    def _concentration(self, state: DeviceState, lel: float, at: datetime) -> list[AlarmChange]:
        state.last_lel = lel
        points = state.set_points
        out: list[AlarmChange] = []
        for kind in CONCENTRATION:
            level = _level(points, kind)
            pending = state.pending[kind]
            if lel >= level:
                if kind in state.active:
                    peak = state.active[kind]
                    if peak is None or lel > peak:
                        out.append(self._change(state, kind, AlarmAction.UPDATED, at, lel))
                    continue
                if pending.since is None:
                    pending.since = at
                pending.n += 1
                held = (at - pending.since).total_seconds()
                if pending.n >= points.repeat_n or held >= points.hold_s:
                    pending.reset()
                    out += self._raise(state, kind, at, lel)
            else:
                pending.reset()
                if kind in state.active and lel < level - points.hysteresis_lel:
                    out += self._clear(state, kind, at, lel)
        return out

    # -- sweeps ----------------------------------------------------------------------------

    def sweep_offline(self, now: datetime) -> list[AlarmChange]:
        """OFFLINE for every device silent longer than its model's offline period, dated when
        the period ran out (the online history's truth, not when the sweep noticed)."""
        out: list[AlarmChange] = []
        for state in self.devices.values():
            if state.offline_after_s is None or state.last_heard is None:
                continue
            if AlarmType.OFFLINE in state.active:
                continue
            due = state.last_heard + timedelta(seconds=state.offline_after_s)
            if now > due:
                out += self._raise(state, AlarmType.OFFLINE, due)
        return out

    def replacement(
        self, state: DeviceState, due: date | None, today: date, now: datetime
    ) -> list[AlarmChange]:
        """REPLACEMENT_OVERDUE raised after the device's replacement date, cleared when the
        date moves on (the device was replaced) or is removed."""
        if due is not None and today > due:
            return self._raise(state, AlarmType.REPLACEMENT_OVERDUE, now, detail=due.isoformat())
        return self._clear(state, AlarmType.REPLACEMENT_OVERDUE, now)
