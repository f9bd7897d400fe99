"""Storing batches: idempotent, unknown devices refused, minutes, device state, purge, CSV."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cunan.audit.log import AuditLog
from cunan.gas.domain import DeviceMessage, MessageKind
from cunan.gas.ingest import GasIngestService
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.simulator import fault_event, normal, out_of_order, with_duplicates
from cunan.storage.audit_tables import AuditEntry
from cunan.storage.database import Database
from cunan.storage.gas_tables import (
    GasDevice,
    GasDeviceStatus,
    GasMessage,
    GasPushInbox,
    GasReadingMinute,
)
from tests.gas.ingest_fixtures import Collected, add_devices, stored_count, stored_keys
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def _service(database: Database, **kw: object) -> tuple[GasIngestService, Collected]:
    collected = Collected()
    return GasIngestService(database, on_stored=collected, **kw), collected  # type: ignore[arg-type]


def _device(database: Database, serial: str) -> GasDevice:
    with database.read() as session:
        device = session.scalar(select(GasDevice).where(GasDevice.serial == serial))
        assert device is not None
        return device


def test_a_batch_is_stored_once_and_handed_on(database: Database) -> None:
    (serial,) = add_devices(database, 1)
    service, collected = _service(database)
    sent = normal(serial, T0, 30)
    first = service.store(with_duplicates(sent, every=3))
    assert (first.received, first.stored, first.duplicates) == (40, 30, 10)
    assert collected.messages == sent  # each once, in the order they came
    again = service.store(sent[:12])
    assert (again.stored, again.duplicates) == (0, 12)
    assert len(collected.batches) == 1  # nothing new: the callback is not called
    assert stored_keys(database, [serial]) == {(serial, m.message_id) for m in sent}
    assert service.counters.get("duplicates") == 22
    assert service.counters.get("stored") == 30


def test_unknown_and_removed_devices_are_counted_not_stored(database: Database) -> None:
    (known,) = add_devices(database, 1)
    (removed,) = add_devices(database, 1, removed=True)
    service, collected = _service(database)
    batch = normal(known, T0, 3) + normal(removed, T0, 2) + normal("NOBODY-1", T0, 4)
    report = service.store(batch)
    assert report.stored == 3 and report.duplicates == 0
    assert report.rejected == {"unknown_device": 4, "removed_device": 2}
    assert report.rejected_serials == {"NOBODY-1": "unknown_device", removed: "removed_device"}
    assert stored_count(database, [known, removed, "NOBODY-1"]) == 3
    assert {m.serial for m in collected.messages} == {known}
    assert service.counters.get("unknown_device") == 4


def test_minutes_aggregate_readings_across_batches(database: Database) -> None:
    (serial,) = add_devices(database, 1)
    service, _ = _service(database)
    values = [1.0, 7.0, 3.0, 10.0, 2.0]
    readings = [
        DeviceMessage(
            serial, f"m{n}", MessageKind.READING, T0 + timedelta(seconds=20 * n), T0, lel=v
        )
        for n, v in enumerate(values)
    ]
    # Minute 04:00 gets readings 0-2, 04:01 gets 3-4; split across batches and out of order.
    service.store([readings[4], readings[0]])
    service.store([readings[2], readings[3], readings[1], readings[0]])
    service.store([fault_event(serial, T0)])  # not a reading: no minute
    with database.read() as session:
        rows = session.execute(
            select(
                GasReadingMinute.minute,
                GasReadingMinute.n,
                GasReadingMinute.lel_min,
                GasReadingMinute.lel_max,
                GasReadingMinute.lel_sum,
            ).order_by(GasReadingMinute.minute)
        ).all()
    assert [tuple(r) for r in rows] == [
        (T0, 3, 1.0, 7.0, 11.0),
        (T0 + timedelta(minutes=1), 2, 2.0, 10.0, 12.0),
    ]


def test_device_state_follows_device_time_not_arrival(database: Database) -> None:
    (serial,) = add_devices(database, 1)
    service, _ = _service(database)
    sent = normal(serial, T0, 50)
    shuffled = out_of_order(sent, seed=3)
    for start in range(0, 50, 7):
        service.store(shuffled[start : start + 7])
    newest = max(sent, key=lambda m: m.device_time)
    device = _device(database, serial)
    assert device.last_device_time == newest.device_time
    assert device.last_lel == newest.lel
    # A late, old reading is stored but moves nothing back.
    late = DeviceMessage(
        serial,
        "late",
        MessageKind.READING,
        T0 - timedelta(hours=1),
        T0 + timedelta(hours=2),
        lel=99.0,
    )
    assert service.store([late]).stored == 1
    device = _device(database, serial)
    assert (device.last_device_time, device.last_lel) == (newest.device_time, newest.lel)
    assert device.last_message_at == late.received_at  # but it was heard from just now
    # A newer heartbeat moves the time, not the concentration.
    beat = DeviceMessage(serial, "hb", MessageKind.HEARTBEAT, T0 + timedelta(hours=1), T0)
    service.store([beat])
    device = _device(database, serial)
    assert (device.last_device_time, device.last_lel) == (beat.device_time, newest.lel)


def test_a_silent_device_coming_back_gets_an_online_row(database: Database) -> None:
    (serial,) = add_devices(database, 1)
    service, _ = _service(database)
    assert service.store(normal(serial, T0, 2)).came_online == 1  # never heard: now online
    assert service.store(normal(serial, T0 + timedelta(minutes=1), 2)).came_online == 0
    # The offline sweep (the alarm side's) marks it offline ...
    with database.transaction() as session:
        session.execute(update(GasDevice).where(GasDevice.serial == serial).values(online=False))
    back = replace(
        normal(serial, T0 + timedelta(hours=3), 1)[0],
        received_at=T0 + timedelta(hours=3, seconds=2),
    )
    assert service.store([back]).came_online == 1
    with database.read() as session:
        history = session.execute(
            select(GasDeviceStatus.state, GasDeviceStatus.at).order_by(GasDeviceStatus.id)
        ).all()
    assert [tuple(h) for h in history] == [("online", T0), ("online", back.received_at)]
    assert _device(database, serial).online is True


def test_a_failing_callback_does_not_undo_the_store(database: Database) -> None:
    (serial,) = add_devices(database, 1)

    def broken(_messages: object) -> None:
        raise RuntimeError("alarm rules down")

    service = GasIngestService(database, on_stored=broken)
    assert service.store(normal(serial, T0, 3)).stored == 3
    assert stored_count(database, [serial]) == 3
    assert service.counters.get("callback_errors") == 1


def test_the_purge_deletes_old_raw_messages_and_minutes_in_chunks(database: Database) -> None:
    (serial,) = add_devices(database, 1)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    settings = GasIngestSettings(raw_days=30, minutes_days=400, purge_chunk=100)
    service = GasIngestService(database, settings=settings, clock=lambda: now)
    old = [replace(m, received_at=now - timedelta(days=31)) for m in normal(serial, T0, 250)]
    ancient = [
        replace(m, received_at=now - timedelta(days=500), device_time=now - timedelta(days=500))
        for m in normal(serial, T0, 5)
    ]
    fresh = [replace(m, received_at=now - timedelta(days=1)) for m in normal(serial, T0, 20)]
    service.store(old + ancient + fresh)
    with database.transaction() as session:
        session.add(
            GasPushInbox(
                source="ctwing",
                delivery_id="d1",
                body=b"{}",
                received_at=now - timedelta(days=40),
                processed_at=now - timedelta(days=40),
            )
        )
        session.add(
            GasPushInbox(
                source="ctwing", delivery_id="d2", body=b"{}", received_at=now - timedelta(days=40)
            )
        )  # never processed: kept
    n_old = len(old) + len(ancient)  # more than two chunks
    assert n_old > 2 * settings.purge_chunk
    assert service.purge(dry_run=True) == {"messages": n_old, "minutes": 1, "push_bodies": 0}
    totals = service.purge(actor="cli:tests")
    assert totals == {"messages": n_old, "minutes": 1, "push_bodies": 1}
    assert stored_count(database, [serial]) == len(fresh)
    with database.read() as session:
        minutes = session.scalars(select(GasReadingMinute.minute)).all()
        inbox = session.scalars(select(GasPushInbox.delivery_id)).all()
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert all(m > now - timedelta(days=400) for m in minutes) and minutes
    assert inbox == ["d2"]
    assert entry is not None and entry.action == "purge" and entry.target_type == "gas_messages"
    assert service.purge() == {"messages": 0, "minutes": 0, "push_bodies": 0}


def test_csv_history_import_reports_rows_and_is_idempotent(
    database: Database, tmp_path: Path
) -> None:
    (serial,) = add_devices(database, 1)
    service, collected = _service(database, audit=AuditLog(database))
    csv_text = (
        "设备编号,时间,浓度\n"
        f"{serial},2026-03-01T12:00:00+08:00,3.5\n"
        f"{serial},1772337660000,4\n"
        f"{serial},2026-03-01T12:02:00,4\n"  # no offset
        f"{serial},2026-03-01T12:03:00+08:00,abc\n"
        "NOBODY-2,2026-03-01T12:04:00+08:00,1\n"
        f"{serial},2026-03-01T12:05:00+08:00,101\n"
        "\n"
        f"{serial},2026-03-01T12:06:00+08:00,6\n"
    )
    path = tmp_path / "history.csv"
    path.write_bytes(csv_text.encode("gb18030"))
    progress: list[tuple[int, int]] = []
    report = service.import_history_csv(
        path, actor="cli:tests", progress=lambda d, t: progress.append((d, t)), batch_size=2
    )
    assert (report.rows, report.stored, report.duplicates) == (7, 3, 0)
    assert [(p.row, p.column) for p in report.problems] == [
        (4, "时间"),
        (5, "浓度"),
        (7, "浓度"),
        (6, "设备编号"),
    ]
    assert "NOBODY-2" in report.problems[-1].reason
    assert progress[-1] == (8, 8)
    assert {m.source for m in collected.messages} == {"csv"}
    again = service.import_history_csv(path, actor="cli:tests")
    assert (again.stored, again.duplicates) == (0, 3)
    with database.read() as session:
        lels = session.scalars(select(GasMessage.lel).order_by(GasMessage.device_time)).all()
    assert lels == [3.5, 4.0, 6.0]


def test_csv_without_the_needed_columns_is_refused(database: Database, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("serial,when,lel\nX,1,2\n", encoding="utf-8")
    service, _ = _service(database)
    report = service.import_history_csv(path, actor="cli:tests")
    assert report.stored == 0
    assert [(p.row, p.column) for p in report.problems] == [(1, "time")]


@pytest.mark.parametrize("size", [1, 777])
def test_batches_of_any_size_store_everything(database: Database, size: int) -> None:
    serials = add_devices(database, 5)
    service, _ = _service(database)
    sent = [m for s in serials for m in normal(s, T0, size)]
    assert service.store(sent).stored == len(sent)
    assert stored_count(database, serials) == len(sent)
