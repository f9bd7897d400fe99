"""Fixtures of the gas ingestion tests: devices in a business, brokers (shared and own), waits."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

import cunan.storage.schema  # noqa: F401 - every table, for the foreign keys and the wipe
from cunan.gas.domain import DeviceMessage
from cunan.storage.database import Database
from cunan.storage.gas_tables import GasBusiness, GasDevice, GasMessage
from cunan.storage.tables import Village

LOCAL_BROKER = ("127.0.0.1", 1883)
MOSQUITTO = Path("/usr/sbin/mosquitto")


def add_devices(
    database: Database, count: int, *, prefix: str | None = None, removed: bool = False
) -> list[str]:
    """``count`` detectors in one new business; their serials."""
    tag = prefix or f"T{uuid.uuid4().hex[:8]}"
    with database.transaction() as session:
        village = session.scalar(select(Village).where(Village.name == "燃气测试村"))
        if village is None:
            village = Village(name="燃气测试村")
            session.add(village)
            session.flush()
        business = GasBusiness(
            village_id=village.id, name=f"测试餐馆{tag}", licence_no=f"L{tag}", category="中餐"
        )
        session.add(business)
        session.flush()
        serials = [f"{tag}-{n:04d}" for n in range(count)]
        for serial in serials:
            session.add(
                GasDevice(
                    business_id=business.id,
                    serial=serial,
                    kind="detector",
                    gas_type="natural_gas",
                    removed_at=datetime.now(UTC) if removed else None,
                )
            )
    return serials


def stored_count(database: Database, serials: Sequence[str] | None = None) -> int:
    with database.read() as session:
        query = select(func.count()).select_from(GasMessage)
        if serials is not None:
            query = query.join(GasDevice, GasDevice.id == GasMessage.device_id).where(
                GasDevice.serial.in_(list(serials))
            )
        return int(session.scalar(query) or 0)


def stored_keys(database: Database, serials: Sequence[str]) -> set[tuple[str, str]]:
    with database.read() as session:
        rows = session.execute(
            select(GasDevice.serial, GasMessage.message_id)
            .join(GasDevice, GasDevice.id == GasMessage.device_id)
            .where(GasDevice.serial.in_(list(serials)))
        )
        return {(str(s), str(m)) for s, m in rows}


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    """Poll until ``condition`` holds (the tests wait for outcomes, never for a time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


@dataclass
class Collected:
    """An ``on_stored`` callback that keeps what it was given."""

    batches: list[list[DeviceMessage]] = field(default_factory=list)

    def __call__(self, messages: Sequence[DeviceMessage]) -> None:
        self.batches.append(list(messages))

    @property
    def messages(self) -> list[DeviceMessage]:
        return [m for b in self.batches for m in b]


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_broker() -> tuple[str, int]:
    try:
        socket.create_connection(LOCAL_BROKER, timeout=2).close()
    except OSError:
        reason = "Mosquitto not reachable at 127.0.0.1:1883"
        if os.environ.get("CUNAN_REQUIRE_DATA") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return LOCAL_BROKER


class OwnBroker:
    """A ``mosquitto`` process of the test's own, on a free port, with a given config."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        if not MOSQUITTO.exists():
            pytest.skip(f"{MOSQUITTO} is not installed")
        self.config = config
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"mosquitto did not start: {self.log.read_text(errors='replace')[-2000:]}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it (Mosquitto saves its persistence file)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def own_broker_factory(tmp_path: Path) -> Iterator[Callable[[Path, int], OwnBroker]]:
    started: list[OwnBroker] = []

    def make(config: Path, port: int) -> OwnBroker:
        broker = OwnBroker(config, port, tmp_path / f"mosquitto-{port}.log")
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


def forget_session(host: str, port: int, client_id: str, **auth: str) -> None:
    """Connect once with a clean start and no expiry: the broker drops the kept session."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    try:
        client.connect(host, port, clean_start=True)
        client.loop_start()
        time.sleep(0.2)
        client.disconnect()
        client.loop_stop()
    except OSError:
        pass
