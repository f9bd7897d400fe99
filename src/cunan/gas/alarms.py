"""Gas alarms: the rules run on stored messages and their changes stored; lists, acknowledgement."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cunan.audit.log import AuditAction, AuditLog
from cunan.authz import Permission, Principal, gas_scope, hidden, require
from cunan.duties.clock import Clock, local_date, start_of_day, system_clock
from cunan.errors import Conflict, InvalidInput
from cunan.gas.alarm_settings import GasAlarmSettings
from cunan.gas.domain import (
    AlarmAction,
    AlarmChange,
    AlarmType,
    DeviceMessage,
    GasCaseStage,
    MessageKind,
)
from cunan.gas.rules import CONCENTRATION, AlarmRules, DeviceState
from cunan.storage.database import Database
from cunan.storage.gas_alarm_repository import (
    AlarmFilter,
    DeviceRow,
    GasAlarmRepository,
    ScopeRows,
)
from cunan.storage.gas_tables import GasAlarm, GasAlarmEvent

logger = logging.getLogger(__name__)

#: What staff read for each alarm type.
ALARM_LABELS: dict[str, str] = {
    AlarmType.LOW.value: "低浓度报警",
    AlarmType.HIGH.value: "高浓度报警",
    AlarmType.FAULT.value: "设备故障",
    AlarmType.TAMPER.value: "防拆报警",
    AlarmType.VALVE_CLOSED.value: "切断阀关闭",
    AlarmType.LOW_BATTERY.value: "电量低",
    AlarmType.OFFLINE.value: "设备离线",
    AlarmType.REPLACEMENT_OVERDUE.value: "超期未更换",
}

#: The actor of changes the rules make (alarm events, gas cases opened).
RULES_ACTOR = "system:gas-alarms"


def scope_rows(principal: Principal) -> ScopeRows | None:
    """The storage form of :func:`cunan.authz.gas_scope`."""
    scope = gas_scope(principal)
    return None if scope is None else ScopeRows(scope.user_id, scope.contact_roles)


@dataclass(frozen=True, slots=True)
class AlarmView:
    id: int
    business_id: int
    business_name: str
    device_id: int
    serial: str
    location: str | None
    alarm_type: str
    label: str
    severity: str
    state: str
    raised_at: datetime
    last_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    first_lel: float | None
    peak_lel: float | None
    last_lel: float | None
    updates: int
    escalation_level: int
    next_escalation_at: datetime | None
    case_id: int | None

    @classmethod
    def of(cls, row: GasAlarm, serial: str, location: str | None, business: str) -> AlarmView:
        return cls(
            id=row.id,
            business_id=row.business_id,
            business_name=business,
            device_id=row.device_id,
            serial=serial,
            location=location,
            alarm_type=row.alarm_type,
            label=ALARM_LABELS.get(row.alarm_type, row.alarm_type),
            severity=row.severity,
            state=row.state,
            raised_at=row.raised_at,
            last_at=row.last_at,
            cleared_at=row.cleared_at,
            acknowledged_at=row.acknowledged_at,
            acknowledged_by=row.acknowledged_by,
            first_lel=row.first_lel,
            peak_lel=row.peak_lel,
            last_lel=row.last_lel,
            updates=row.updates,
            escalation_level=row.escalation_level,
            next_escalation_at=row.next_escalation_at,
            case_id=row.case_id,
        )


@dataclass(frozen=True, slots=True)
class AlarmEventView:
    at: datetime
    action: str
    actor: str | None
    lel: float | None
    detail: str | None

    @classmethod
    def of(cls, row: GasAlarmEvent) -> AlarmEventView:
        return cls(at=row.at, action=row.action, actor=row.actor, lel=row.lel, detail=row.detail)


@dataclass(frozen=True, slots=True)
class AlarmDetail:
    alarm: AlarmView
    events: list[AlarmEventView]


@dataclass(frozen=True, slots=True)
class AlarmPage:
    items: list[AlarmView]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    """One device's month: how long it was watched, online, and its offline spells."""

    device_id: int
    serial: str
    observed_s: float
    online_s: float
    offline_spells: int
    longest_offline_s: float


@dataclass(frozen=True, slots=True)
class OnlineRate:
    """A business's online rate for one month of the village calendar (None: no device
    was installed during it)."""

    business_id: int
    year: int
    month: int
    rate: float | None
    devices: list[DeviceOnline]


def device_online(
    device_id: int,
    serial: str,
    history: Sequence[tuple[str, datetime]],
    start: datetime,
    stop: datetime,
) -> DeviceOnline:
    """Online time of one device in [``start``, ``stop``) from its status changes (oldest
    first). Before its first change a device counts as offline: installed but never heard
    from is not "in normal use"."""
    online = False
    moment = start
    online_s = 0.0
    spells = 0
    longest = 0.0
    spell_start: datetime | None = start
    for state, at in history:
        now_online = state == "online"
        if at <= start:
            online = now_online
            spell_start = None if online else start
            continue
        if at >= stop:
            break
        if online:
            online_s += (at - moment).total_seconds()
        if online and not now_online:
            spell_start = at
        elif not online and now_online and spell_start is not None:
            spells += 1
            longest = max(longest, (at - spell_start).total_seconds())
            spell_start = None
        online = now_online
        moment = at
    if online:
        online_s += (stop - moment).total_seconds()
    elif spell_start is not None:
        spells += 1
        longest = max(longest, (stop - spell_start).total_seconds())
    return DeviceOnline(
        device_id=device_id,
        serial=serial,
        observed_s=(stop - start).total_seconds(),
        online_s=online_s,
        offline_spells=spells,
        longest_offline_s=longest,
    )


@dataclass(frozen=True, slots=True)
class _Known:
    device_id: int
    business_id: int
    village_id: int


class GasAlarmService:
    """Runs the alarm rules on every batch of stored messages and keeps their state.

    The rules' state lives in memory (it is consulted on every reading) and is rebuilt from
    the database when a device is first seen after a start: its active alarms, its newest
    message time and its last readings. One lock serialises evaluation, the sweeps and that
    rebuild; a batch whose transaction fails forgets its devices' state, so it is reloaded
    from what was committed.
    """

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        settings: GasAlarmSettings | None = None,
        *,
        clock: Clock = system_clock,
        on_escalate: Callable[[], None] | None = None,
        zone: ZoneInfo | None = None,
    ) -> None:
        self.database = database
        self.audit = audit
        self.settings = settings or GasAlarmSettings()
        self.clock = clock
        self.zone = zone
        self.on_escalate = on_escalate
        self.rules = AlarmRules(self.settings.severity)
        self._lock = threading.RLock()
        self._known: dict[str, _Known] = {}
        self._alarm_ids: dict[tuple[str, AlarmType], int] = {}
        self._escalate = {s.value for s in self.settings.escalate_severities}
        self._case_types = {t.value for t in self.settings.case_types}

    # -- state -------------------------------------------------------------------------------

    def _forget(self, serials: Iterable[str]) -> None:
        for serial in serials:
            self.rules.devices.pop(serial, None)
            self._known.pop(serial, None)
            for kind in AlarmType:
                self._alarm_ids.pop((serial, kind), None)

    def _load(
        self,
        repo: GasAlarmRepository,
        rows: Sequence[DeviceRow],
        batch: set[tuple[int, str]] | None = None,
    ) -> None:
        """Rules state for devices not known yet, from storage. ``batch``: (device id,
        message id) of the messages about to be fed, left out of the rebuilt history."""
        rows = [r for r in rows if r.serial not in self.rules.devices]
        if not rows:
            return
        ids = [r.id for r in rows]
        by_id = {r.id: r for r in rows}
        states: dict[int, DeviceState] = {}
        for row in rows:
            states[row.id] = DeviceState(
                serial=row.serial,
                set_points=self.settings.set_points(row.low_lel, row.high_lel),
                offline_after_s=row.offline_after_s,
                # Raw messages are kept briefly: what ingestion noted survives them.
                last_heard=max(row.created_at, row.last_message_at or row.created_at),
                online=row.online,
            )
        for alarm in repo.active_alarms(ids):
            kind = AlarmType(alarm.alarm_type)
            serial = by_id[alarm.device_id].serial
            peak = alarm.peak_lel if kind in CONCENTRATION else None
            states[alarm.device_id].active[kind] = peak
            self._alarm_ids[(serial, kind)] = alarm.id
        extra = 0
        if batch:
            counts: dict[int, int] = {}
            for device_id, _ in batch:
                counts[device_id] = counts.get(device_id, 0) + 1
            extra = max(counts.values())
        window = self.settings.repeat_n + extra + 1
        history: dict[int, list[tuple[datetime, float]]] = {}
        for message in repo.recent_messages(ids, window):
            if batch and (message.device_id, message.message_id) in batch:
                continue
            state = states[message.device_id]
            if state.last_time is None or message.device_time > state.last_time:
                state.last_time = message.device_time
            if state.last_heard is None or message.received_at > state.last_heard:
                state.last_heard = message.received_at
            if message.kind == MessageKind.READING.value and message.lel is not None:
                history.setdefault(message.device_id, []).append((message.device_time, message.lel))
        for device_id, state in states.items():
            state.resume_run(reversed(history.get(device_id, [])))
            row = by_id[device_id]
            self.rules.devices[row.serial] = state
            self._known[row.serial] = _Known(row.id, row.business_id, row.village_id)

    def _refresh_all(self, repo: GasAlarmRepository) -> list[DeviceRow]:
        """Every device's state loaded, set points and silence limits as stored now
        (registry edits reach the rules within one sweep); removed devices dropped."""
        rows = repo.devices(None)
        present = {r.serial for r in rows}
        self._forget([s for s in self.rules.devices if s not in present])
        for row in rows:
            state = self.rules.devices.get(row.serial)
            if state is not None:
                state.set_points = self.settings.set_points(row.low_lel, row.high_lel)
                state.offline_after_s = row.offline_after_s
        self._load(repo, rows)
        return rows

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self, messages: Sequence[DeviceMessage]) -> list[AlarmChange]:
        """Run the rules on newly stored messages and store the alarm changes, all in one
        transaction; returns the changes. Messages of unknown devices are skipped.

        A batch that changes nothing (the usual case: readings below the set points of
        devices already online) writes nothing, so it never waits for SQLite's writer lock
        that ingestion itself needs."""
        if not messages:
            return []
        # Device-time order within the batch (a stable sort keeps arrival order on ties).
        ordered = sorted(messages, key=lambda m: m.device_time)
        serials = {m.serial for m in ordered}
        escalate = False
        with self._lock:
            try:
                missing = [s for s in serials if s not in self.rules.devices]
                if missing:
                    with self.database.read() as session:
                        repo = GasAlarmRepository(session)
                        rows = repo.devices(missing)
                        known = {r.serial: r.id for r in rows}
                        batch = {
                            (known[m.serial], m.message_id) for m in ordered if m.serial in known
                        }
                        self._load(repo, rows, batch)
                changes: list[AlarmChange] = []
                online: list[tuple[int, bool, datetime]] = []
                devices = self.rules.devices
                feed = self.rules.feed
                for message in ordered:
                    state = devices.get(message.serial)
                    if state is None:
                        continue
                    changes += feed(state, message)
                    if state.online is not True:
                        state.online = True
                        online.append(
                            (self._known[message.serial].device_id, True, message.received_at)
                        )
                if changes or online:
                    with self.database.transaction() as session:
                        repo = GasAlarmRepository(session)
                        escalate = self._store(repo, changes)
                        repo.set_online(online)
            except BaseException:
                # Whatever the rules decided was not stored: start again from storage.
                self._forget(serials)
                raise
        if escalate and self.on_escalate is not None:
            self.on_escalate()
        return changes

    def _store(self, repo: GasAlarmRepository, changes: Sequence[AlarmChange]) -> bool:
        """Write the changes; True when a new alarm wants its contacts notified."""
        now = self.clock()
        events: list[dict[str, Any]] = []
        escalate = False
        for change in changes:
            known = self._known.get(change.serial)
            if known is None:
                continue
            key = (change.serial, change.alarm_type)
            if change.action is AlarmAction.RAISED:
                # History (a CSV import, a long-buffered backlog) is recorded, not acted on.
                fresh = (now - change.at).total_seconds() <= self.settings.max_age_s
                notify = fresh and change.severity.value in self._escalate
                escalate = escalate or notify
                alarm_id = repo.insert_alarm(
                    device_id=known.device_id,
                    business_id=known.business_id,
                    alarm_type=change.alarm_type.value,
                    severity=change.severity.value,
                    at=change.at,
                    lel=change.value,
                    next_escalation_at=now if notify else None,
                )
                self._alarm_ids[key] = alarm_id
                if fresh and change.alarm_type.value in self._case_types:
                    self._open_case(repo, alarm_id, known.village_id, now)
            else:
                found = self._alarm_ids.get(key)
                if found is None:
                    logger.warning(
                        "gas alarm %s of device %s: no active alarm to %s",
                        change.alarm_type.value,
                        known.device_id,
                        change.action.value,
                    )
                    continue
                alarm_id = found
                if change.action is AlarmAction.UPDATED:
                    repo.update_alarm(alarm_id, change.at, change.value)
                else:
                    repo.clear_alarm(alarm_id, change.at, change.value)
                    del self._alarm_ids[key]
            events.append(
                {
                    "alarm_id": alarm_id,
                    "at": change.at,
                    "action": change.action.value,
                    "actor": RULES_ACTOR,
                    "lel": change.value,
                    "detail": change.detail,
                }
            )
        repo.add_events(events)
        return escalate

    @staticmethod
    def _open_case(repo: GasAlarmRepository, alarm_id: int, village_id: int, now: datetime) -> None:
        stage = GasCaseStage.UNRESPONDED.value
        case_id = repo.open_case(village_id=village_id, at=now, stage=stage)
        repo.add_step(
            case_id, at=now, actor=RULES_ACTOR, from_stage=None, to_stage=stage, note=None
        )
        repo.set_case(alarm_id, case_id)

    # -- sweeps ------------------------------------------------------------------------------

    def sweep_offline(self, now: datetime | None = None) -> list[AlarmChange]:
        """OFFLINE for every device silent longer than its model allows; the devices'
        online flag and history follow."""
        moment = now or self.clock()
        with self._lock:
            try:
                with self.database.transaction() as session:
                    repo = GasAlarmRepository(session)
                    self._refresh_all(repo)
                    changes = self.rules.sweep_offline(moment)
                    offline = []
                    for change in changes:
                        state = self.rules.devices[change.serial]
                        state.online = False
                        offline.append((self._known[change.serial].device_id, False, change.at))
                    escalate = self._store(repo, changes)
                    repo.set_online(offline)
            except BaseException:
                self._forget(list(self.rules.devices))
                raise
        if escalate and self.on_escalate is not None:
            self.on_escalate()
        return changes

    def check_replacements(self, today: date | None = None) -> list[AlarmChange]:
        """The daily check: REPLACEMENT_OVERDUE raised for devices past their replacement
        date (village calendar), cleared for those replaced since."""
        now = self.clock()
        day = today or (local_date(now, self.zone) if self.zone is not None else now.date())
        with self._lock:
            try:
                with self.database.transaction() as session:
                    repo = GasAlarmRepository(session)
                    changes: list[AlarmChange] = []
                    for row in self._refresh_all(repo):
                        state = self.rules.devices[row.serial]
                        changes += self.rules.replacement(state, row.replacement_due, day, now)
                    escalate = self._store(repo, changes)
            except BaseException:
                self._forget(list(self.rules.devices))
                raise
        if escalate and self.on_escalate is not None:
            self.on_escalate()
        return changes

    # -- reading and acknowledging -----------------------------------------------------------

    def list_alarms(
        self, principal: Principal, where: AlarmFilter, *, offset: int = 0, limit: int = 50
    ) -> AlarmPage:
        require(principal, Permission.READ_GAS)
        with self.database.read() as session:
            rows, total = GasAlarmRepository(session).list_alarms(
                where, scope_rows(principal), offset=offset, limit=limit
            )
            items = [AlarmView.of(a, serial, loc, name) for a, serial, loc, name in rows]
        return AlarmPage(items=items, total=total, offset=offset, limit=limit)

    def _detail(self, repo: GasAlarmRepository, alarm: GasAlarm) -> AlarmDetail:
        serial, location, business, _ = repo.labels(alarm)
        return AlarmDetail(
            alarm=AlarmView.of(alarm, serial, location, business),
            events=[AlarmEventView.of(e) for e in repo.events(alarm.id)],
        )

    def detail(self, principal: Principal, alarm_id: int) -> AlarmDetail:
        require(principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasAlarmRepository(session)
            alarm = repo.alarm(alarm_id, scope_rows(principal))
            if alarm is None:
                raise hidden("gas alarm", alarm_id)
            return self._detail(repo, alarm)

    def acknowledge(self, principal: Principal, alarm_id: int) -> AlarmDetail:
        """Someone took the alarm in hand: escalation stops; who and when are kept."""
        require(principal, Permission.HANDLE_GAS)
        now = self.clock()
        with self.database.transaction() as session:
            repo = GasAlarmRepository(session)
            alarm = repo.alarm(alarm_id, scope_rows(principal), for_update=True)
            if alarm is None:
                raise hidden("gas alarm", alarm_id)
            if alarm.acknowledged_at is not None:
                raise Conflict(
                    f"燃气报警 {alarm_id} 已于 {alarm.acknowledged_at.isoformat()} 由 "
                    f"{alarm.acknowledged_by} 确认 (gas alarm {alarm_id} already acknowledged)"
                )
            repo.acknowledge(alarm_id, principal.actor, now)
            repo.add_events(
                [
                    {
                        "alarm_id": alarm_id,
                        "at": now,
                        "action": "acknowledged",
                        "actor": principal.actor,
                        "lel": None,
                        "detail": None,
                    }
                ]
            )
            self.audit.record(
                AuditAction.GAS_ALARM_ACKNOWLEDGE,
                actor=principal.actor,
                target_type="gas_alarm",
                target_id=alarm_id,
                details={
                    "alarm_type": alarm.alarm_type,
                    "state": alarm.state,
                    "business_id": alarm.business_id,
                    "escalation_level": alarm.escalation_level,
                },
                session=session,
            )
            session.expire(alarm)
            return self._detail(repo, alarm)

    # -- online history ----------------------------------------------------------------------

    def online_rate(
        self, principal: Principal, business_id: int, year: int, month: int
    ) -> OnlineRate:
        """The business's online rate in a month of the village calendar: the share of the
        time its devices were installed (up to now) that they were online, from the
        online/offline history; each device's offline spells and the longest one."""
        require(principal, Permission.READ_GAS)
        if not 1 <= month <= 12:
            raise InvalidInput(f"月份 {month} 无效 (month must be 1-12)")
        zone = self.zone or ZoneInfo("UTC")
        first = date(year, month, 1)
        after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        start, end = start_of_day(first, zone), start_of_day(after, zone)
        now = self.clock()
        with self.database.read() as session:
            repo = GasAlarmRepository(session)
            if not repo.business_visible(business_id, scope_rows(principal)):
                raise hidden("gas business", business_id)
            devices = repo.business_devices(business_id)
            history: dict[int, list[tuple[str, datetime]]] = {}
            for device_id, state, at in repo.status_history([d[0] for d in devices], end):
                history.setdefault(device_id, []).append((state, at))
        rows = []
        for device_id, serial, created_at, removed_at in devices:
            begin = max(start, created_at)
            stop = min(end, now, removed_at or end)
            if stop > begin:
                rows.append(
                    device_online(device_id, serial, history.get(device_id, []), begin, stop)
                )
        observed = sum(r.observed_s for r in rows)
        rate = sum(r.online_s for r in rows) / observed if observed > 0 else None
        return OnlineRate(business_id, year, month, rate, rows)
