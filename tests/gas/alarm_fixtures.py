"""Fixtures of the gas alarm tests: a small site (two businesses, contacts, devices), messages
stored as ingestion stores them, and a clock the tests move."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

import cunan.storage.schema  # noqa: F401 - every table known, so tests can wipe them all
from cunan.gas.alarms import GasAlarmService
from cunan.gas.domain import AlarmChange, DeviceMessage, MessageKind
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from cunan.storage.gas_tables import (
    GasAlarm,
    GasBusiness,
    GasContact,
    GasDevice,
    GasDeviceModel,
    GasMessage,
)
from cunan.storage.tables import User, Village

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in the village (Asia/Shanghai)


@dataclass
class FrozenClock:
    """Now is whatever the test says; ``advance`` moves it."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Site:
    village_id: int
    business: dict[str, int]
    device: dict[str, int]
    users: dict[str, int]
    serial: dict[str, str] = field(default_factory=dict)


#: The contacts of each business: role -> (name, phone, user key or None).
CONTACTS = {
    "a": {
        "owner": ("张老板", "13800000001", "owner_a"),
        "safety_officer": ("李安全", "13800000002", None),
        "maintainer_a": ("王维保", "13800000003", "maint_1"),
        "maintainer_b": ("赵维保", "13800000004", "maint_2"),
    },
    "b": {
        "owner": ("陈老板", "13900000001", "owner_b"),
        "maintainer_a": ("王维保", "13800000003", "maint_2"),
    },
}


def seed(
    database: Database, *, replacement_due: date | None = None, village_id: int | None = None
) -> Site:
    """Two businesses ("a" 川味小馆, "b" 老王烧烤); "a" has a mains detector (offline after
    5 min), a battery detector (25 h) and a valve; "b" one mains detector. In a new village,
    or the one given."""
    with database.transaction() as session:
        if village_id is None:
            village = Village(name="桃源村")
            session.add(village)
            session.flush()
            village_id = village.id
        users = {}
        for key in ("owner_a", "owner_b", "maint_1", "maint_2"):
            # Stored as staff: the stored role CHECK is widened by the registry work; the
            # tests build business/maintainer principals around these ids.
            user = User(username=key, role=UserRole.STAFF, password_hash="x")
            session.add(user)
            session.flush()
            users[key] = user.id
        mains = GasDeviceModel(code="JT-M1", kind="detector", power="mains", offline_after_s=300)
        battery = GasDeviceModel(
            code="NB-B1", kind="detector", power="battery", offline_after_s=25 * 3600
        )
        valve = GasDeviceModel(code="V-1", kind="valve", power="mains", offline_after_s=300)
        session.add_all([mains, battery, valve])
        session.flush()
        business = {}
        for key, name in (("a", "川味小馆"), ("b", "老王烧烤")):
            row = GasBusiness(
                village_id=village_id,
                name=name,
                licence_no=f"LIC-{key}",
                address=f"幸福路{key}号",
            )
            session.add(row)
            session.flush()
            business[key] = row.id
            for role, (person, phone, user) in CONTACTS[key].items():
                session.add(
                    GasContact(
                        business_id=row.id,
                        role=role,
                        name=person,
                        phone=phone,
                        user_id=users[user] if user else None,
                    )
                )
        devices = {}
        for serial, key, model, kind in (
            ("DET-A1", "a", mains, "detector"),
            ("DET-A2", "a", battery, "detector"),
            ("VAL-A1", "a", valve, "valve"),
            ("DET-B1", "b", mains, "detector"),
        ):
            device = GasDevice(
                business_id=business[key],
                serial=serial,
                kind=kind,
                model_id=model.id,
                gas_type="natural_gas",
                location="后厨灶台上方",
                replacement_due=replacement_due,
                created_at=T0 - timedelta(days=30),
            )
            session.add(device)
            session.flush()
            devices[serial] = device.id
    return Site(village_id=village_id, business=business, device=devices, users=users)


_ids = itertools.count(1)


def message(
    serial: str,
    at: datetime,
    *,
    lel: float | None = None,
    kind: MessageKind | None = None,
    code: str | None = None,
    active: bool | None = None,
    received_at: datetime | None = None,
) -> DeviceMessage:
    if kind is None:
        kind = MessageKind.READING if lel is not None else MessageKind.HEARTBEAT
    return DeviceMessage(
        serial=serial,
        message_id=f"m{next(_ids)}",
        kind=kind,
        device_time=at,
        received_at=received_at or at,
        lel=lel,
        code=code,
        active=active,
    )


def readings(
    serial: str, start: datetime, values: Sequence[float], step_s: float = 2.0
) -> list[DeviceMessage]:
    return [
        message(serial, start + timedelta(seconds=i * step_s), lel=v) for i, v in enumerate(values)
    ]


def store(database: Database, messages: Sequence[DeviceMessage]) -> None:
    """Store messages as ingestion does (before it hands them to the alarm rules)."""
    with database.transaction() as session:
        rows = session.execute(select(GasDevice.serial, GasDevice.id)).all()
        devices = {str(row[0]): int(row[1]) for row in rows}
        for m in messages:
            session.add(
                GasMessage(
                    device_id=devices[m.serial],
                    message_id=m.message_id,
                    kind=m.kind.value,
                    device_time=m.device_time,
                    received_at=m.received_at,
                    lel=m.lel,
                    code=m.code,
                    active=m.active,
                    battery_pct=m.battery_pct,
                    source=m.source,
                )
            )


def ingest(service: GasAlarmService, messages: Sequence[DeviceMessage]) -> list[AlarmChange]:
    """Store, then evaluate: what ingestion's ``on_stored`` callback does."""
    store(service.database, messages)
    return service.evaluate(messages)


def alarms(database: Database, serial: str | None = None) -> list[GasAlarm]:
    with database.read() as session:
        query = select(GasAlarm).order_by(GasAlarm.id)
        if serial is not None:
            query = query.join(GasDevice, GasDevice.id == GasAlarm.device_id).where(
                GasDevice.serial == serial
            )
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def summary(database: Database, serial: str | None = None) -> list[tuple[str, str]]:
    """(type, state) of the stored alarms, oldest first."""
    return [(a.alarm_type, a.state) for a in alarms(database, serial)]
