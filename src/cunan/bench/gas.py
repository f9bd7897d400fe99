"""Gas ingestion throughput: readings/s from MQTT publish to stored (SQLite, PostgreSQL), latency.

Usage: cunan bench gas [--engines sqlite,postgresql] [--devices 200] [--seconds 20]
[--rate 6000] [--broker 127.0.0.1:1883] [--postgres-url URL] [--callback module:factory] [--json]
(or python -m cunan.bench.gas)

Devices are registered in a fresh database; a simulated fleet publishes readings over the real
broker at ``--rate`` messages/s (QoS 1; 0: as fast as the publisher can) for ``--seconds``;
CunAn's real ingestion path takes them (MQTT subscription, batches, the store, acknowledgement
after commit) and hands each stored batch to the ``on_stored`` callback. The callback is
pluggable: ``--callback pkg.module:factory`` names a function ``factory(database) ->
callable(messages)`` run on every batch (the alarm rules, once wired), timed with the rest.

Reported per engine: readings published and stored, sustained stored/s (stored / time from
the first publish to the last store), the publisher's own rate, latency publish -> stored
(p50, p95, max; the callback's time included), messages lost (published and acknowledged by
the broker but never stored within 30 s of the end).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import multiprocessing
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from cunan.gas.domain import DeviceMessage, MessageKind
from cunan.gas.ingest import GasIngestService, OnStored
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.mqtt_ingest import MqttIngestor
from cunan.gas.simulator import MqttDevice
from cunan.storage.database import Database, sqlite_url
from cunan.storage.gas_tables import GasBusiness, GasDevice
from cunan.storage.migrate import upgrade
from cunan.storage.tables import Village

DEFAULT_POSTGRES = os.environ.get(
    "CUNAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

CallbackFactory = Callable[[Database], OnStored]


def _seed(database: Database, devices: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    with database.transaction() as session:
        village = Village(name=f"bench-{tag}")
        session.add(village)
        session.flush()
        serials: list[str] = []
        for b in range(0, devices, 4):
            business = GasBusiness(
                village_id=village.id, name=f"bench {b}", licence_no=f"B{tag}{b}"
            )
            session.add(business)
            session.flush()
            for d in range(b, min(b + 4, devices)):
                serial = f"BENCH{tag}-{d:05d}"
                serials.append(serial)
                session.add(GasDevice(business_id=business.id, serial=serial, kind="detector"))
    return serials


class _Recorder:
    """The bench's on_stored: the plugged callback, then each message's publish -> stored
    latency (the publisher writes its monotonic clock, system-wide on Linux, into the id)."""

    def __init__(self, plugged: OnStored | None) -> None:
        self.latencies: list[float] = []
        self.keys: set[tuple[str, str]] = set()
        self.stored = 0
        self.last_stored = 0.0
        self.plugged = plugged
        self.lock = threading.Lock()

    def __call__(self, messages: Sequence[DeviceMessage]) -> None:
        if self.plugged is not None:
            self.plugged(messages)
        now = time.monotonic_ns()
        with self.lock:
            for m in messages:
                sent_ns = int(m.message_id.rpartition(".")[2])
                self.latencies.append((now - sent_ns) / 1e9)
                self.keys.add((m.serial, m.message_id))
            self.stored += len(messages)
            self.last_stored = now / 1e9


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _publish(
    broker: tuple[str, int],
    serials: list[str],
    seconds: float,
    rate: float,
    go: Any,
    out: Any,
) -> None:
    """The device fleet, in a process of its own (its CPU is not the ingestion's)."""
    publisher = MqttDevice(*broker, max_inflight=5000)
    if not publisher.wait_connected():
        out.put({"error": "the broker refused the publisher"})
        return
    go.wait(60)
    start_time = datetime.now(UTC)
    t0 = time.monotonic()
    n = 0
    while True:
        elapsed = time.monotonic() - t0
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1 if rate else n + 200
        while n < due:
            at = start_time + timedelta(milliseconds=n)
            publisher.send(
                DeviceMessage(
                    serials[n % len(serials)],
                    f"{n}.{time.monotonic_ns()}",
                    MessageKind.READING,
                    at,
                    at,
                    lel=float(n % 20),
                )
            )
            n += 1
        if rate:
            time.sleep(max(0.0, (n / rate) - (time.monotonic() - t0)))
    publish_s = time.monotonic() - t0
    # Until the broker answered every publish, or 30 s went by without a new answer.
    seen, idle_since = -1, time.monotonic()
    while not publisher.wait_acknowledged(1.0) and time.monotonic() - idle_since < 30:
        answered = len(publisher.truth.acknowledged)
        if answered != seen:
            seen, idle_since = answered, time.monotonic()
    publisher.close()
    out.put(
        {
            "published": n,
            "publish_s": publish_s,
            "acknowledged": sorted(publisher.truth.acknowledged),
            "t0": t0,
        }
    )


def run_engine(
    database: Database,
    *,
    engine: str,
    broker: tuple[str, int],
    devices: int,
    seconds: float,
    rate: float,
    batch_size: int = 500,
    callback: CallbackFactory | None = None,
) -> dict[str, Any]:
    """One measurement on an upgraded, empty ``database``."""
    serials = _seed(database, devices)
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    out = context.Queue()
    fleet = context.Process(
        target=_publish, args=(broker, serials, seconds, rate, go, out), daemon=True
    )
    fleet.start()
    recorder = _Recorder(callback(database) if callback else None)
    client_id = f"cunan-bench-{uuid.uuid4().hex[:8]}"
    settings = GasIngestSettings(
        mqtt_host=broker[0],
        mqtt_port=broker[1],
        mqtt_client_id=client_id,
        mqtt_session_expiry_s=60,
        batch_size=batch_size,
    )
    # With the alarm rules plugged in, they keep the online history (as in the installation).
    service = GasIngestService(
        database, on_stored=recorder, settings=settings, record_online=callback is not alarm_rules
    )
    ingestor = MqttIngestor(service, settings)
    ingestor.start()
    try:
        if not ingestor.wait_connected(10):
            raise RuntimeError(f"broker {broker[0]}:{broker[1]} refused the bench's session")
        cpu0 = time.process_time()
        go.set()
        # The fleet reports once the broker answered all it sent (it gives up after 30 s
        # without an answer), however long a flood takes to drain.
        while True:
            try:
                fleet_report = out.get(timeout=5)
                break
            except queue.Empty:
                if not fleet.is_alive():
                    raise RuntimeError("the publisher fleet died") from None
        if "error" in fleet_report:
            raise RuntimeError(fleet_report["error"])
        # Wait for the backlog to drain; give up only after 30 s without progress.
        seen, idle_since = -1, time.monotonic()
        wanted = {tuple(k) for k in fleet_report["acknowledged"]}
        while time.monotonic() - idle_since < 30:
            with recorder.lock:
                stored_now = recorder.stored
                if wanted <= recorder.keys:
                    break
            if stored_now != seen:
                seen, idle_since = stored_now, time.monotonic()
            time.sleep(0.1)
        cpu_s = time.process_time() - cpu0
    finally:
        ingestor.stop()
        fleet.join(10)
        _forget(broker, client_id)
    with recorder.lock:
        stored, latencies, last = recorder.stored, list(recorder.latencies), recorder.last_stored
        lost = len({tuple(k) for k in fleet_report["acknowledged"]} - recorder.keys)
    span = last - fleet_report["t0"]
    return {
        "engine": engine,
        "devices": devices,
        "target_rate": rate,
        "published": fleet_report["published"],
        "publish_rate": round(fleet_report["published"] / fleet_report["publish_s"], 1),
        "stored": stored,
        "stored_per_s": round(stored / span, 1) if span > 0 else 0.0,
        "latency_p50_ms": round(_pct(latencies, 0.50) * 1000, 1),
        "latency_p95_ms": round(_pct(latencies, 0.95) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "acknowledged": len(fleet_report["acknowledged"]),
        # Acknowledged by the broker to the publisher, never stored.
        "lost": lost,
        # The ingesting process's CPU (MQTT client, parsing, the store's client side and the
        # callback; PostgreSQL's own server CPU is not in it) per reading, and what one
        # free core could take at that cost.
        "cpu_us_per_reading": round(cpu_s / stored * 1e6, 1) if stored else 0.0,
        "per_free_core_per_s": round(stored / cpu_s, 0) if cpu_s else 0.0,
        "callback": "plugged" if callback else "none",
    }


def _forget(broker: tuple[str, int], client_id: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    try:
        client.connect(*broker, clean_start=True)
        client.loop_start()
        time.sleep(0.2)
        client.disconnect()
        client.loop_stop()
    except OSError:
        pass


@contextmanager
def _broker(spec: str) -> Iterator[tuple[str, int]]:
    if spec != "own":
        host, _, number = spec.rpartition(":")
        yield host, int(number)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="cunan-bench-broker-") as tmp:
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n",
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("could not start mosquitto for the bench") from None
                    time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            process.terminate()
            process.wait(10)


def alarm_rules(database: Database) -> OnStored:
    """The installation's own callback (``--alarms``): the alarm rules on every stored batch,
    storing what they change, as ``cunan serve`` wires ingestion."""
    from cunan.audit.log import AuditLog
    from cunan.gas.alarms import GasAlarmService

    service = GasAlarmService(database, AuditLog(database))

    def evaluate(messages: Sequence[DeviceMessage]) -> None:
        service.evaluate(messages)

    return evaluate


def _load_callback(spec: str | None) -> CallbackFactory | None:
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    if not callable(factory):
        raise SystemExit(f"--callback {spec}: not a callable")
    return factory  # type: ignore[no-any-return]


def run(
    *,
    engines: Sequence[str],
    devices: int,
    seconds: float,
    rate: float,
    broker: tuple[str, int],
    postgres_url: str,
    callback: CallbackFactory | None = None,
    batch_size: int = 500,
) -> list[dict[str, Any]]:
    results = []
    for engine in engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="cunan-bench-gas-") as tmp:
                database = Database.open(sqlite_url(Path(tmp)))
                try:
                    upgrade(database)
                    results.append(
                        run_engine(
                            database,
                            engine=engine,
                            broker=broker,
                            devices=devices,
                            seconds=seconds,
                            rate=rate,
                            batch_size=batch_size,
                            callback=callback,
                        )
                    )
                finally:
                    database.dispose()
        elif engine == "postgresql":
            admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
            name = f"cunan_bench_gas_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            database = Database.open(admin.url.set(database=name).render_as_string(False))
            try:
                upgrade(database)
                results.append(
                    run_engine(
                        database,
                        engine=engine,
                        broker=broker,
                        devices=devices,
                        seconds=seconds,
                        rate=rate,
                        batch_size=batch_size,
                        callback=callback,
                    )
                )
            finally:
                database.dispose()
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            raise SystemExit(f"unknown engine {engine!r}: sqlite or postgresql")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=6000.0, help="messages/s; 0: flat out")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--broker",
        default="own",
        help="host:port of a broker; 'own' (default): start mosquitto on a free port, set up "
        "as docs/gas-ingest.md asks (no queue limit), and stop it after",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--callback", help="module:factory, factory(database) -> on_stored")
    parser.add_argument(
        "--alarms",
        action="store_true",
        help="evaluate the alarm rules on every reading, as the installation does "
        "(same as --callback cunan.bench.gas:alarm_rules)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with _broker(args.broker) as (host, port):
        results = run(
            engines=[e.strip() for e in args.engines.split(",") if e.strip()],
            devices=args.devices,
            seconds=args.seconds,
            rate=args.rate,
            broker=(host, port),
            postgres_url=args.postgres_url,
            callback=alarm_rules if args.alarms else _load_callback(args.callback),
            batch_size=args.batch_size,
        )
    with open("/proc/loadavg", encoding="ascii") as f:
        load = f.read().split()[:3]
    if args.json:
        print(json.dumps({"results": results, "loadavg": load}))
        return 0
    columns = [
        "engine",
        "target_rate",
        "published",
        "publish_rate",
        "acknowledged",
        "stored",
        "stored_per_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_max_ms",
        "lost",
        "cpu_us_per_reading",
        "per_free_core_per_s",
    ]
    print(" | ".join(columns))
    for r in results:
        print(" | ".join(str(r[c]) for c in columns))
    print(f"load average: {' '.join(load)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
