"""The gas module's vocabulary: device messages, alarm types and changes, case stages (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class DeviceKind(StrEnum):
    DETECTOR = "detector"  # 可燃气体探测器
    CONTROLLER = "controller"  # 报警控制器
    VALVE = "valve"  # 紧急切断阀
    FAN = "fan"  # 排风扇联动


class GasType(StrEnum):
    #: Natural gas (methane) is lighter than air: detectors go near the ceiling.
    NATURAL_GAS = "natural_gas"
    #: LPG is heavier than air: detectors go near the floor.
    LPG = "lpg"


class PowerSupply(StrEnum):
    #: Mains-powered, usually MQTT over the shop's network: silent for minutes is offline.
    MAINS = "mains"
    #: Battery NB-IoT devices report about once a day: offline only after ~25 h of silence.
    BATTERY = "battery"


class ContactRole(StrEnum):
    OWNER = "owner"  # 负责人
    SAFETY_OFFICER = "safety_officer"  # 安全员
    MAINTAINER_A = "maintainer_a"  # 维保人员A
    MAINTAINER_B = "maintainer_b"  # 维保人员B (added when an alarm is not acknowledged in time)


class MessageKind(StrEnum):
    READING = "reading"  # a concentration reading in %LEL
    EVENT = "event"  # fault, tamper, low battery ... raised or restored
    HEARTBEAT = "heartbeat"  # alive, nothing to report
    VALVE = "valve"  # the shut-off valve's state: open / closed


class EventCode(StrEnum):
    FAULT = "fault"
    TAMPER = "tamper"
    LOW_BATTERY = "low_battery"
    #: The device's own alarm output, for devices that decide on their own as well.
    DEVICE_ALARM = "device_alarm"


class ValveState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class AlarmType(StrEnum):
    LOW = "low"  # concentration above the low set point (default 25 %LEL)
    HIGH = "high"  # concentration above the high set point (default 50 %LEL)
    FAULT = "fault"
    TAMPER = "tamper"
    VALVE_CLOSED = "valve_closed"
    LOW_BATTERY = "low_battery"
    OFFLINE = "offline"
    REPLACEMENT_OVERDUE = "replacement_overdue"


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    NOTICE = "notice"


#: Severity per alarm type (configurable per site later; these are the defaults).
DEFAULT_SEVERITY: dict[AlarmType, Severity] = {
    AlarmType.HIGH: Severity.CRITICAL,
    AlarmType.LOW: Severity.MAJOR,
    AlarmType.VALVE_CLOSED: Severity.MAJOR,
    AlarmType.TAMPER: Severity.MAJOR,
    AlarmType.FAULT: Severity.MINOR,
    AlarmType.OFFLINE: Severity.MINOR,
    AlarmType.LOW_BATTERY: Severity.NOTICE,
    AlarmType.REPLACEMENT_OVERDUE: Severity.NOTICE,
}


class AlarmState(StrEnum):
    ACTIVE = "active"
    CLEARED = "cleared"


class AlarmAction(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"


class GasCaseStage(StrEnum):
    """The on-site verification of a gas alarm, as a case in the shared case system."""

    UNRESPONDED = "unresponded"  # 未响应
    RESPONDED = "responded"  # 已响应 (someone is on the way / on site)
    FALSE_ALARM = "false_alarm"  # 误报
    RESOLVED = "resolved"  # 已处置
    REPAIR = "repair"  # 需维修
    IN_PROGRESS = "in_progress"  # 维修中
    DONE = "done"  # 维修完成


#: The stages a case may move to from each stage; the final ones move nowhere.
GAS_STAGE_MOVES: dict[GasCaseStage, frozenset[GasCaseStage]] = {
    GasCaseStage.UNRESPONDED: frozenset({GasCaseStage.RESPONDED}),
    GasCaseStage.RESPONDED: frozenset(
        {GasCaseStage.FALSE_ALARM, GasCaseStage.RESOLVED, GasCaseStage.REPAIR}
    ),
    GasCaseStage.REPAIR: frozenset({GasCaseStage.IN_PROGRESS}),
    GasCaseStage.IN_PROGRESS: frozenset({GasCaseStage.DONE}),
    GasCaseStage.FALSE_ALARM: frozenset(),
    GasCaseStage.RESOLVED: frozenset(),
    GasCaseStage.DONE: frozenset(),
}


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """One message from one device, whatever transport brought it (MQTT, HTTP push, CSV).

    ``serial`` is the device's own identifier (what it puts in its MQTT topic or push body),
    ``message_id`` its own id for the message: (serial, message_id) is the idempotency key.
    Times are aware UTC; ``device_time`` orders a device's messages (they may arrive out of
    order), ``received_at`` is when CunAn got it.
    """

    serial: str
    message_id: str
    kind: MessageKind
    device_time: datetime
    received_at: datetime
    #: READING: the concentration in %LEL.
    lel: float | None = None
    #: EVENT: an :class:`EventCode` value; VALVE: a :class:`ValveState` value.
    code: str | None = None
    #: EVENT: True when the condition is raised, False when the device reports it restored.
    active: bool | None = None
    battery_pct: float | None = None
    #: ``mqtt``, ``http`` or ``csv``.
    source: str = "mqtt"


@dataclass(frozen=True, slots=True)
class SetPoints:
    """When a detector's concentration raises an alarm (per device, else per model, else these).

    A concentration alarm is raised only when the condition holds for ``hold_s`` seconds of
    device time or for ``repeat_n`` readings in a row (cooking fumes, steam and alcohol give
    one-sample spikes), and cleared when the concentration falls below the set point minus
    ``hysteresis_lel``.
    """

    low_lel: float = 25.0
    high_lel: float = 50.0
    hysteresis_lel: float = 5.0
    hold_s: float = 10.0
    repeat_n: int = 3


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What the alarm rules decided for one device: raise, update or clear one alarm."""

    serial: str
    alarm_type: AlarmType
    action: AlarmAction
    severity: Severity
    at: datetime
    #: The concentration (%LEL) for concentration alarms, else None.
    value: float | None = None
    detail: str | None = None


class MessageSink(Protocol):
    """Where transports hand parsed messages (storage, then the alarm rules)."""

    def __call__(self, messages: Sequence[DeviceMessage]) -> None: ...
