"""Queries of gas ingestion: batched message inserts, minute aggregates, device state, inbox."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cunan.storage.database import rowcount
from cunan.storage.gas_tables import (
    GasDevice,
    GasDeviceStatus,
    GasMessage,
    GasPushInbox,
    GasReadingMinute,
)
from cunan.storage.tables import UTCDateTime

_MESSAGES: Table = GasMessage.__table__  # type: ignore[assignment]
_MINUTES: Table = GasReadingMinute.__table__  # type: ignore[assignment]
_STATUS: Table = GasDeviceStatus.__table__  # type: ignore[assignment]
_INBOX: Table = GasPushInbox.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class DeviceRef:
    id: int
    removed: bool


@dataclass(frozen=True, slots=True)
class DeviceAdvance:
    """The newest message of one device in a batch (and its newest reading, if any)."""

    device_id: int
    device_time: datetime
    received_at: datetime
    lel: float | None = None
    lel_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    source: str
    body: bytes
    received_at: datetime
    attempts: int


class GasIngestRepository:
    """Reads and writes of the ingestion path, on one session (one transaction per batch)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _insert(self, table: Table) -> Any:
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    # -- devices -------------------------------------------------------------------------------

    def devices_by_serial(self, serials: Iterable[str]) -> dict[str, DeviceRef]:
        wanted = sorted(set(serials))
        found: dict[str, DeviceRef] = {}
        for start in range(0, len(wanted), 500):
            rows = self.session.execute(
                select(GasDevice.serial, GasDevice.id, GasDevice.removed_at).where(
                    GasDevice.serial.in_(wanted[start : start + 500])
                )
            )
            for serial, device_id, removed_at in rows:
                found[serial] = DeviceRef(device_id, removed_at is not None)
        return found

    def advance_devices(self, advances: Sequence[DeviceAdvance]) -> None:
        """Move each device's last_* forward; an older message never moves them back.

        One UPDATE per device: every SET expression reads the row as it was (standard SQL,
        both engines), so the reading's test sees the old ``last_device_time``.
        """
        t = bindparam("t", type_=UTCDateTime())
        lt = bindparam("lt", type_=UTCDateTime())
        recv = bindparam("r", type_=UTCDateTime())
        old_time = GasDevice.last_device_time
        self.session.connection().execute(
            update(GasDevice)
            .where(GasDevice.id == bindparam("b_id"))
            .values(
                last_lel=case(
                    (
                        and_(lt.is_not(None), or_(old_time.is_(None), old_time <= lt)),
                        bindparam("lel", type_=Float()),
                    ),
                    else_=GasDevice.last_lel,
                ),
                last_device_time=case((or_(old_time.is_(None), old_time < t), t), else_=old_time),
                last_message_at=case(
                    (
                        or_(GasDevice.last_message_at.is_(None), GasDevice.last_message_at < recv),
                        recv,
                    ),
                    else_=GasDevice.last_message_at,
                ),
            ),
            [
                {
                    "b_id": a.device_id,
                    "t": a.device_time,
                    "r": a.received_at,
                    "lel": a.lel,
                    "lt": a.lel_time,
                }
                for a in advances
            ],
        )

    def mark_online(self, device_ids: Sequence[int], at: datetime) -> list[int]:
        """Mark the devices online; the ones that were not (offline, or never heard from)
        get an ``online`` row in their history, and are returned."""
        if not device_ids:
            return []
        came_back = list(
            self.session.scalars(
                update(GasDevice)
                .where(GasDevice.id.in_(sorted(device_ids)))
                .where(or_(GasDevice.online.is_(None), GasDevice.online != true()))
                .values(online=True)
                .returning(GasDevice.id)
            )
        )
        if came_back:
            self.session.connection().execute(
                _STATUS.insert(),
                [{"device_id": i, "state": "online", "at": at} for i in sorted(came_back)],
            )
        return sorted(came_back)

    # -- messages ------------------------------------------------------------------------------

    def insert_messages(self, rows: Sequence[dict[str, Any]]) -> set[tuple[int, str]]:
        """Insert the rows, skipping (device, message id) pairs already stored; returns the
        pairs inserted now."""
        if not rows:
            return set()
        stmt = (
            self._insert(_MESSAGES)
            .on_conflict_do_nothing(index_elements=["device_id", "message_id"])
            .returning(_MESSAGES.c.device_id, _MESSAGES.c.message_id)
        )
        result = self.session.connection().execute(stmt, list(rows))
        return {(int(d), str(m)) for d, m in result}

    def upsert_minutes(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add per-minute aggregates (device_id, minute, n, lel_min, lel_max, lel_sum)."""
        if not rows:
            return
        stmt = self._insert(_MINUTES)
        least = func.least if self._postgres else func.min
        greatest = func.greatest if self._postgres else func.max
        stmt = stmt.on_conflict_do_update(
            index_elements=["device_id", "minute"],
            set_={
                "n": _MINUTES.c.n + stmt.excluded.n,
                "lel_min": least(_MINUTES.c.lel_min, stmt.excluded.lel_min),
                "lel_max": greatest(_MINUTES.c.lel_max, stmt.excluded.lel_max),
                "lel_sum": _MINUTES.c.lel_sum + stmt.excluded.lel_sum,
            },
        )
        self.session.connection().execute(stmt, list(rows))

    # -- retention -----------------------------------------------------------------------------

    def delete_messages_before(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` raw messages received before ``before`` (oldest first)."""
        ids = (
            select(GasMessage.id)
            .where(GasMessage.received_at < before)
            .order_by(GasMessage.received_at)
            .limit(limit)
        )
        return rowcount(
            self.session.execute(delete(GasMessage).where(GasMessage.id.in_(ids.scalar_subquery())))
        )

    def delete_minutes_before(self, before: datetime, limit: int) -> int:
        keys = (
            select(GasReadingMinute.device_id, GasReadingMinute.minute)
            .where(GasReadingMinute.minute < before)
            .limit(limit)
            .subquery()
        )
        return rowcount(
            self.session.execute(
                delete(GasReadingMinute).where(
                    GasReadingMinute.minute < before,
                    select(keys.c.device_id)
                    .where(
                        and_(
                            keys.c.device_id == GasReadingMinute.device_id,
                            keys.c.minute == GasReadingMinute.minute,
                        )
                    )
                    .exists(),
                )
            )
        )

    def delete_inbox_before(self, before: datetime, limit: int) -> int:
        """Delete processed push bodies processed before ``before``."""
        ids = (
            select(GasPushInbox.id)
            .where(GasPushInbox.processed_at.is_not(None), GasPushInbox.processed_at < before)
            .limit(limit)
        )
        return rowcount(
            self.session.execute(
                delete(GasPushInbox).where(GasPushInbox.id.in_(ids.scalar_subquery()))
            )
        )

    def count_before(self, messages_before: datetime, minutes_before: datetime) -> tuple[int, int]:
        messages = self.session.scalar(
            select(func.count())
            .select_from(GasMessage)
            .where(GasMessage.received_at < messages_before)
        )
        minutes = self.session.scalar(
            select(func.count())
            .select_from(GasReadingMinute)
            .where(GasReadingMinute.minute < minutes_before)
        )
        return int(messages or 0), int(minutes or 0)

    # -- push inbox ----------------------------------------------------------------------------

    def inbox_add(self, source: str, delivery_id: str | None, body: bytes, at: datetime) -> bool:
        """Queue a push body; False when this (source, delivery id) was queued before."""
        stmt = (
            self._insert(_INBOX)
            .values(
                source=source,
                delivery_id=delivery_id,
                body=body,
                received_at=at,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
            .returning(_INBOX.c.id)
        )
        return self.session.connection().execute(stmt).first() is not None

    def inbox_pending(self, limit: int, max_attempts: int) -> list[InboxRow]:
        query = (
            select(
                GasPushInbox.id,
                GasPushInbox.source,
                GasPushInbox.body,
                GasPushInbox.received_at,
                GasPushInbox.attempts,
            )
            .where(GasPushInbox.processed_at.is_(None), GasPushInbox.attempts < max_attempts)
            .order_by(GasPushInbox.id)
            .limit(limit)
        )
        return [InboxRow(*row) for row in self.session.execute(query)]

    def inbox_done(self, row_id: int, at: datetime, error: str | None) -> None:
        self.session.execute(
            update(GasPushInbox)
            .where(GasPushInbox.id == row_id)
            .values(processed_at=at, error=error, attempts=GasPushInbox.attempts + 1)
        )

    def inbox_retry(self, row_ids: Sequence[int], error: str) -> None:
        self.session.execute(
            update(GasPushInbox)
            .where(GasPushInbox.id.in_(list(row_ids)))
            .values(error=error, attempts=GasPushInbox.attempts + 1)
        )

    def inbox_backlog(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(GasPushInbox)
                .where(GasPushInbox.processed_at.is_(None))
            )
            or 0
        )

    # -- broker credentials --------------------------------------------------------------------

    def broker_accounts(self) -> list[tuple[str, str]]:
        """(serial, broker hash) of every device in service that has an MQTT credential."""
        rows = self.session.execute(
            select(GasDevice.serial, GasDevice.broker_hash)
            .where(GasDevice.removed_at.is_(None), GasDevice.broker_hash.is_not(None))
            .order_by(GasDevice.serial)
        )
        return [(str(s), str(h)) for s, h in rows]
