"""What the gas alarm rules cost per reading: ``GasAlarmService.evaluate`` on stored batches.

Usage: python benchmarks/gas_alarms.py [--devices 1000] [--readings 60000] [--batch 500]
       [--leaking 0.05] [--database-url URL] [--json]

Builds a database (SQLite in a temporary dir unless ``--database-url`` names an empty,
migrated-or-new PostgreSQL database) with ``--devices`` mains detectors in businesses of ten,
stores ``--readings`` readings (a reading per device per second, ``--leaking`` of the devices
ramping through both set points and back) in batches of ``--batch`` the way ingestion does,
and times ``evaluate`` on every batch (the rules on every reading, alarm changes stored).
Storage of the messages themselves is timed separately: it is ingestion's cost, not the
rules'. Prints readings per second of evaluation, the alarms raised and cleared, and the
median and 95th percentile time per batch.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

try:
    from cunan.gas.alarms import GasAlarmService
except ImportError:  # running from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cunan.gas.alarms import GasAlarmService

from sqlalchemy import insert

import cunan.storage.schema  # noqa: F401 - every table known
from cunan.audit.log import AuditLog
from cunan.gas.domain import AlarmAction, DeviceMessage, MessageKind
from cunan.storage.database import Database, sqlite_url
from cunan.storage.gas_tables import GasBusiness, GasDevice, GasDeviceModel, GasMessage
from cunan.storage.migrate import upgrade
from cunan.storage.tables import Village

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _seed(database: Database, devices: int) -> tuple[list[str], dict[str, int]]:
    serials = [f"BENCH-{i:05d}" for i in range(devices)]
    ids: dict[str, int] = {}
    with database.transaction() as session:
        village = Village(name="基准村")
        session.add(village)
        session.flush()
        model = GasDeviceModel(code="BENCH-M", kind="detector", power="mains", offline_after_s=300)
        session.add(model)
        session.flush()
        business_id = 0
        for i, serial in enumerate(serials):
            if i % 10 == 0:
                business = GasBusiness(village_id=village.id, name=f"店{i}", licence_no=f"B{i}")
                session.add(business)
                session.flush()
                business_id = business.id
            device = GasDevice(
                business_id=business_id, serial=serial, kind="detector", model_id=model.id
            )
            session.add(device)
            session.flush()
            ids[serial] = device.id
    return serials, ids


def _leak(second: int) -> float:
    """A leak that ramps to 70 %LEL over a minute, stays, and is fixed two minutes later."""
    phase = second % 240
    if phase < 60:
        return 2.0 + phase
    if phase < 120:
        return 70.0
    return 2.0


def _messages(serials: list[str], total: int, leaking: float) -> list[DeviceMessage]:
    rng = random.Random(7)
    leaky = set(rng.sample(serials, max(1, int(len(serials) * leaking))))
    out: list[DeviceMessage] = []
    second = 0
    while len(out) < total:
        at = T0 + timedelta(seconds=second)
        for serial in serials:
            lel = _leak(second) if serial in leaky else rng.uniform(0.0, 4.0)
            if rng.random() < 0.002:
                lel = rng.uniform(40.0, 90.0)  # a one-sample spike (steam): raises nothing
            out.append(
                DeviceMessage(
                    serial=serial,
                    message_id=f"{second}",
                    kind=MessageKind.READING,
                    device_time=at,
                    received_at=at,
                    lel=lel,
                )
            )
            if len(out) == total:
                break
        second += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=60000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--leaking", type=float, default=0.05)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or sqlite_url(Path(tmp))
        database = Database.open(url)
        upgrade(database)
        serials, ids = _seed(database, args.devices)
        service = GasAlarmService(database, AuditLog(database))
        messages = _messages(serials, args.readings, args.leaking)
        store_s = 0.0
        per_batch: list[float] = []
        raised = cleared = updated = 0
        for start in range(0, len(messages), args.batch):
            batch = messages[start : start + args.batch]
            began = time.perf_counter()
            with database.transaction() as session:
                session.execute(
                    insert(GasMessage),
                    [
                        {
                            "device_id": ids[m.serial],
                            "message_id": m.message_id,
                            "kind": m.kind.value,
                            "device_time": m.device_time,
                            "received_at": m.received_at,
                            "lel": m.lel,
                            "source": "mqtt",
                        }
                        for m in batch
                    ],
                )
            store_s += time.perf_counter() - began
            began = time.perf_counter()
            changes = service.evaluate(batch)
            per_batch.append(time.perf_counter() - began)
            raised += sum(c.action is AlarmAction.RAISED for c in changes)
            cleared += sum(c.action is AlarmAction.CLEARED for c in changes)
            updated += sum(c.action is AlarmAction.UPDATED for c in changes)
        database.dispose()
    evaluate_s = sum(per_batch)
    ordered = sorted(per_batch)
    result = {
        "engine": "postgresql" if args.database_url else "sqlite",
        "devices": args.devices,
        "readings": len(messages),
        "batch": args.batch,
        "evaluate_readings_per_s": round(len(messages) / evaluate_s),
        "store_readings_per_s": round(len(messages) / store_s),
        "batch_median_ms": round(statistics.median(per_batch) * 1000, 1),
        "batch_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "alarms_raised": raised,
        "alarms_updated": updated,
        "alarms_cleared": cleared,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
