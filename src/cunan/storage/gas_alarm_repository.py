"""SQL of gas alarms, their events, devices' online history, escalation and gas cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, insert, literal, select, update
from sqlalchemy.orm import Session

from cunan.storage.case_tables import Case
from cunan.storage.gas_tables import (
    GasAlarm,
    GasAlarmEvent,
    GasBusiness,
    GasCasePhoto,
    GasCaseStep,
    GasContact,
    GasDevice,
    GasDeviceModel,
    GasDeviceStatus,
    GasMessage,
)

#: ``cases.model_id`` of gas cases: no face model (face grouping filters by kind anyway).
GAS_CASE_MODEL = "gas"


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """What the alarm rules need of one device: its set points, silence limit and status."""

    id: int
    serial: str
    business_id: int
    village_id: int
    offline_after_s: float | None
    low_lel: float | None
    high_lel: float | None
    online: bool | None
    created_at: datetime
    replacement_due: date | None
    #: When ingestion last heard from the device (None: never, or not recorded).
    last_message_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    id: int
    device_id: int
    alarm_type: str
    peak_lel: float | None


@dataclass(frozen=True, slots=True)
class RecentMessage:
    device_id: int
    message_id: str
    kind: str
    device_time: datetime
    received_at: datetime
    lel: float | None


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Filters of the alarm list (all optional); ``since``/``until`` bound ``raised_at``."""

    business_id: int | None = None
    device_id: int | None = None
    alarm_types: Sequence[str] = ()
    states: Sequence[str] = ()
    severities: Sequence[str] = ()
    acknowledged: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScopeRows:
    """The businesses a scoped account sees: contacts naming ``user_id`` in ``roles``."""

    user_id: int
    roles: tuple[str, ...]


def _scoped(business_column: Any, scope: ScopeRows | None) -> ColumnElement[bool] | None:
    if scope is None:
        return None
    condition: ColumnElement[bool] = business_column.in_(
        select(GasContact.business_id).where(
            GasContact.user_id == scope.user_id, GasContact.role.in_(list(scope.roles))
        )
    )
    return condition


class GasAlarmRepository:
    """Reads and writes of the alarm module, inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- devices -----------------------------------------------------------------------------

    def devices(self, serials: Sequence[str] | None = None) -> list[DeviceRow]:
        """Devices by serial (None: every device not removed), with their model's limits."""
        d = GasDevice.__table__.c
        m = GasDeviceModel.__table__.c
        b = GasBusiness.__table__.c
        query = (
            select(
                d.id,
                d.serial,
                d.business_id,
                b.village_id,
                m.offline_after_s,
                func.coalesce(d.low_lel, m.low_lel),
                func.coalesce(d.high_lel, m.high_lel),
                d.online,
                d.created_at,
                d.replacement_due,
                d.last_message_at,
            )
            .join(GasBusiness.__table__, b.id == d.business_id)
            .outerjoin(GasDeviceModel.__table__, m.id == d.model_id)
            .where(d.removed_at.is_(None))
        )
        if serials is not None:
            query = query.where(d.serial.in_(list(serials)))
        return [
            DeviceRow(
                id=int(row[0]),
                serial=str(row[1]),
                business_id=int(row[2]),
                village_id=int(row[3]),
                offline_after_s=None if row[4] is None else float(row[4]),
                low_lel=row[5],
                high_lel=row[6],
                online=row[7],
                created_at=row[8],
                replacement_due=row[9],
                last_message_at=row[10],
            )
            for row in self.session.execute(query)
        ]

    def active_alarms(self, device_ids: Sequence[int] | None = None) -> list[ActiveAlarm]:
        a = GasAlarm.__table__.c
        query = select(a.id, a.device_id, a.alarm_type, a.peak_lel).where(a.state == "active")
        if device_ids is not None:
            query = query.where(a.device_id.in_(list(device_ids)))
        return [ActiveAlarm(*row) for row in self.session.execute(query)]

    def recent_messages(self, device_ids: Sequence[int], per_device: int) -> list[RecentMessage]:
        """The newest ``per_device`` messages of each device (by device time), newest first.

        One small query per device on the (device, device time) index: a window over all of
        a device's stored messages would read every raw message still kept."""
        g = GasMessage.__table__.c
        out: list[RecentMessage] = []
        for device_id in device_ids:
            rows = self.session.execute(
                select(g.device_id, g.message_id, g.kind, g.device_time, g.received_at, g.lel)
                .where(g.device_id == device_id)
                .order_by(g.device_time.desc(), g.id.desc())
                .limit(per_device)
            )
            out += [RecentMessage(*row) for row in rows]
        return out

    def set_online(self, changes: Sequence[tuple[int, bool, datetime]]) -> None:
        """Devices going online or offline: the flag and the history row, in one go each."""
        if not changes:
            return
        self.session.execute(
            insert(GasDeviceStatus),
            [
                {"device_id": device_id, "state": "online" if online else "offline", "at": at}
                for device_id, online, at in changes
            ],
        )
        latest: dict[int, bool] = {}
        for device_id, online, _ in changes:
            latest[device_id] = online
        for online in (True, False):
            ids = [d for d, value in latest.items() if value is online]
            if ids:
                self.session.execute(
                    update(GasDevice).where(GasDevice.id.in_(ids)).values(online=online)
                )

    def business_visible(self, business_id: int, scope: ScopeRows | None) -> bool:
        query = select(GasBusiness.id).where(GasBusiness.id == business_id)
        condition = _scoped(GasBusiness.id, scope)
        if condition is not None:
            query = query.where(condition)
        return self.session.scalar(query) is not None

    def business_devices(
        self, business_id: int
    ) -> list[tuple[int, str, datetime, datetime | None]]:
        """(id, serial, created at, removed at) of every device a business has had."""
        d = GasDevice.__table__.c
        rows = self.session.execute(
            select(d.id, d.serial, d.created_at, d.removed_at)
            .where(d.business_id == business_id)
            .order_by(d.id)
        ).all()
        return [(int(i), str(s), c, r) for i, s, c, r in rows]

    def status_history(
        self, device_ids: Sequence[int], until: datetime
    ) -> list[tuple[int, str, datetime]]:
        """(device id, state, at) of the devices' online/offline changes before ``until``."""
        if not device_ids:
            return []
        g = GasDeviceStatus.__table__.c
        rows = self.session.execute(
            select(g.device_id, g.state, g.at)
            .where(g.device_id.in_(list(device_ids)), g.at < until)
            .order_by(g.device_id, g.at, g.id)
        ).all()
        return [(int(i), str(state), at) for i, state, at in rows]

    # -- alarms ------------------------------------------------------------------------------

    def insert_alarm(
        self,
        *,
        device_id: int,
        business_id: int,
        alarm_type: str,
        severity: str,
        at: datetime,
        lel: float | None,
        next_escalation_at: datetime | None,
    ) -> int:
        alarm_id = self.session.execute(
            insert(GasAlarm)
            .values(
                device_id=device_id,
                business_id=business_id,
                alarm_type=alarm_type,
                severity=severity,
                state="active",
                raised_at=at,
                last_at=at,
                updates=0,
                first_lel=lel,
                peak_lel=lel,
                last_lel=lel,
                escalation_level=0,
                next_escalation_at=next_escalation_at,
            )
            .returning(GasAlarm.id)
        ).scalar_one()
        return int(alarm_id)

    def update_alarm(self, alarm_id: int, at: datetime, lel: float | None) -> None:
        a = GasAlarm.__table__.c
        values: dict[str, Any] = {"last_at": at, "updates": a.updates + 1}
        if lel is not None:
            values["last_lel"] = lel
            values["peak_lel"] = _greatest(a.peak_lel, lel)
        self.session.execute(update(GasAlarm).where(a.id == alarm_id).values(**values))

    def clear_alarm(self, alarm_id: int, at: datetime, lel: float | None) -> None:
        a = GasAlarm.__table__.c
        values: dict[str, Any] = {
            "state": "cleared",
            "cleared_at": at,
            "last_at": at,
            "next_escalation_at": None,
        }
        if lel is not None:
            values["last_lel"] = lel
        self.session.execute(update(GasAlarm).where(a.id == alarm_id).values(**values))

    def clear_device_alarms(self, device_id: int, at: datetime, actor: str, detail: str) -> int:
        """Clear every active alarm of a device taken out of service (no more escalation
        rounds for it), each with a ``cleared`` event naming who and why; the count."""
        a = GasAlarm.__table__.c
        ids = list(
            self.session.scalars(
                select(GasAlarm.id).where(a.device_id == device_id, a.state == "active")
            )
        )
        for alarm_id in ids:
            self.clear_alarm(alarm_id, at, None)
        self.add_events(
            [
                {
                    "alarm_id": i,
                    "at": at,
                    "action": "cleared",
                    "actor": actor,
                    "lel": None,
                    "detail": detail,
                }
                for i in ids
            ]
        )
        return len(ids)

    def add_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Alarm events (``alarm_id``, ``at``, ``action``, ``actor``, ``lel``, ``detail``)."""
        if rows:
            self.session.execute(insert(GasAlarmEvent), list(rows))

    def set_case(self, alarm_id: int, case_id: int) -> None:
        self.session.execute(
            update(GasAlarm).where(GasAlarm.id == alarm_id).values(case_id=case_id)
        )

    def alarm(
        self, alarm_id: int, scope: ScopeRows | None = None, *, for_update: bool = False
    ) -> GasAlarm | None:
        query = select(GasAlarm).where(GasAlarm.id == alarm_id)
        condition = _scoped(GasAlarm.business_id, scope)
        if condition is not None:
            query = query.where(condition)
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def _listing(
        self, where: AlarmFilter, scope: ScopeRows | None
    ) -> Select[GasAlarm, str, str | None, str]:
        a = GasAlarm
        query = (
            select(a, GasDevice.serial, GasDevice.location, GasBusiness.name)
            .join(GasDevice, GasDevice.id == a.device_id)
            .join(GasBusiness, GasBusiness.id == a.business_id)
        )
        condition = _scoped(a.business_id, scope)
        if condition is not None:
            query = query.where(condition)
        if where.business_id is not None:
            query = query.where(a.business_id == where.business_id)
        if where.device_id is not None:
            query = query.where(a.device_id == where.device_id)
        if where.alarm_types:
            query = query.where(a.alarm_type.in_(list(where.alarm_types)))
        if where.states:
            query = query.where(a.state.in_(list(where.states)))
        if where.severities:
            query = query.where(a.severity.in_(list(where.severities)))
        if where.acknowledged is not None:
            ack = a.acknowledged_at.is_not(None)
            query = query.where(ack if where.acknowledged else a.acknowledged_at.is_(None))
        if where.since is not None:
            query = query.where(a.raised_at >= where.since)
        if where.until is not None:
            query = query.where(a.raised_at < where.until)
        return query

    def list_alarms(
        self, where: AlarmFilter, scope: ScopeRows | None, *, offset: int, limit: int
    ) -> tuple[list[tuple[GasAlarm, str, str | None, str]], int]:
        """Alarms (with device serial, location and business name), newest first."""
        query = self._listing(where, scope)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.execute(
            query.order_by(GasAlarm.raised_at.desc(), GasAlarm.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows], int(total)

    def labels(self, alarm: GasAlarm) -> tuple[str, str | None, str, str | None]:
        """(device serial, location, business name, business address) of an alarm."""
        row = self.session.execute(
            select(GasDevice.serial, GasDevice.location, GasBusiness.name, GasBusiness.address)
            .join(GasBusiness, GasBusiness.id == GasDevice.business_id)
            .where(GasDevice.id == alarm.device_id)
        ).one()
        return row[0], row[1], row[2], row[3]

    def events(self, alarm_id: int) -> list[GasAlarmEvent]:
        return list(
            self.session.scalars(
                select(GasAlarmEvent)
                .where(GasAlarmEvent.alarm_id == alarm_id)
                .order_by(GasAlarmEvent.at, GasAlarmEvent.id)
            )
        )

    # -- escalation --------------------------------------------------------------------------

    def due_escalations(self, now: datetime, *, limit: int = 100) -> list[tuple[int, int]]:
        """(alarm id, escalation level) of active, unacknowledged alarms due a round."""
        a = GasAlarm.__table__.c
        rows = self.session.execute(
            select(a.id, a.escalation_level)
            .where(
                a.next_escalation_at.is_not(None),
                a.next_escalation_at <= now,
                a.state == "active",
                a.acknowledged_at.is_(None),
            )
            .order_by(a.next_escalation_at, a.id)
            .limit(limit)
        ).all()
        return [(int(i), int(level)) for i, level in rows]

    def next_escalation(self) -> datetime | None:
        moment: datetime | None = self.session.scalar(
            select(func.min(GasAlarm.next_escalation_at)).where(
                GasAlarm.state == "active", GasAlarm.acknowledged_at.is_(None)
            )
        )
        return moment

    def claim_escalation(self, alarm_id: int, level: int, next_at: datetime) -> bool:
        """Take round ``level`` of an alarm (only one process sends it): False when another
        took it first, or the alarm was acknowledged or cleared meanwhile."""
        a = GasAlarm.__table__.c
        result = self.session.execute(
            update(GasAlarm)
            .where(
                a.id == alarm_id,
                a.escalation_level == level,
                a.state == "active",
                a.acknowledged_at.is_(None),
            )
            .values(escalation_level=level + 1, next_escalation_at=next_at)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def contacts(self, business_id: int) -> list[GasContact]:
        return list(
            self.session.scalars(
                select(GasContact)
                .where(GasContact.business_id == business_id)
                .order_by(GasContact.id)
            )
        )

    def acknowledge(self, alarm_id: int, by: str, at: datetime) -> None:
        self.session.execute(
            update(GasAlarm)
            .where(GasAlarm.id == alarm_id)
            .values(acknowledged_at=at, acknowledged_by=by, next_escalation_at=None)
        )

    # -- gas cases ---------------------------------------------------------------------------

    def open_case(self, *, village_id: int, at: datetime, stage: str) -> int:
        case_id = self.session.execute(
            insert(Case)
            .values(
                kind="gas",
                gas_stage=stage,
                status="open",
                model_id=GAS_CASE_MODEL,
                village_id=village_id,
                opened_at=at,
                first_seen_at=at,
                last_seen_at=at,
                sightings_count=0,
                version=0,
                updated_at=at,
            )
            .returning(Case.id)
        ).scalar_one()
        return int(case_id)

    def gas_case(self, case_id: int, *, for_update: bool = False) -> Case | None:
        query = select(Case).where(Case.id == case_id, Case.kind == "gas")
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def case_alarm(self, case_id: int, scope: ScopeRows | None) -> GasAlarm | None:
        """The alarm that opened a gas case (None: no such case, or not the caller's)."""
        query = select(GasAlarm).where(GasAlarm.case_id == case_id)
        condition = _scoped(GasAlarm.business_id, scope)
        if condition is not None:
            query = query.where(condition)
        return self.session.scalars(query.order_by(GasAlarm.id).limit(1)).one_or_none()

    def add_step(
        self,
        case_id: int,
        *,
        at: datetime,
        actor: str,
        from_stage: str | None,
        to_stage: str,
        note: str | None,
    ) -> None:
        self.session.add(
            GasCaseStep(
                case_id=case_id,
                at=at,
                actor=actor,
                from_stage=from_stage,
                to_stage=to_stage,
                note=note,
            )
        )

    def steps(self, case_id: int) -> list[GasCaseStep]:
        return list(
            self.session.scalars(
                select(GasCaseStep)
                .where(GasCaseStep.case_id == case_id)
                .order_by(GasCaseStep.at, GasCaseStep.id)
            )
        )

    def add_photo(
        self,
        case_id: int,
        *,
        content_type: str,
        size: int,
        key_id: str,
        added_by: str,
        added_at: datetime,
    ) -> GasCasePhoto:
        """A photo row without its ciphertext yet: the id is part of what is encrypted."""
        photo = GasCasePhoto(
            case_id=case_id,
            ciphertext=b"",
            key_id=key_id,
            content_type=content_type,
            size=size,
            added_by=added_by,
            added_at=added_at,
        )
        self.session.add(photo)
        self.session.flush()
        return photo

    def photos(self, case_id: int) -> list[tuple[int, str, int, str, datetime]]:
        """(id, content type, size, added by, added at) of a case's photos."""
        p = GasCasePhoto.__table__.c
        rows = self.session.execute(
            select(p.id, p.content_type, p.size, p.added_by, p.added_at)
            .where(p.case_id == case_id)
            .order_by(p.id)
        ).all()
        return [(int(i), str(t), int(s), str(b), at) for i, t, s, b, at in rows]

    def photo_batch(self, *, after_id: int, limit: int) -> list[GasCasePhoto]:
        """Site photos by id, for key rotation and checks (``after_id`` pages on)."""
        return list(
            self.session.scalars(
                select(GasCasePhoto)
                .where(GasCasePhoto.id > after_id)
                .order_by(GasCasePhoto.id)
                .limit(limit)
            )
        )

    def photo(self, case_id: int, photo_id: int) -> GasCasePhoto | None:
        return self.session.scalars(
            select(GasCasePhoto).where(GasCasePhoto.id == photo_id, GasCasePhoto.case_id == case_id)
        ).one_or_none()


def _greatest(column: Any, value: float) -> Any:
    """The larger of a column and a value, NULL-safe, on both engines (SQLite has no
    GREATEST)."""
    return case(
        (column.is_(None), literal(value)),
        (column < value, literal(value)),
        else_=column,
    )


__all__ = [
    "GAS_CASE_MODEL",
    "ActiveAlarm",
    "AlarmFilter",
    "DeviceRow",
    "GasAlarmRepository",
    "RecentMessage",
    "ScopeRows",
]
