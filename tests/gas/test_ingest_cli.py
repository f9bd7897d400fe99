"""``cunan gas`` ingestion commands on a data dir: credentials, broker files, CSV, purge."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlalchemy import select

from cunan.audit.log import AuditLog
from cunan.authz import local_principal
from cunan.gas.ingest_cli import register
from cunan.gas.registry import GasRegistry
from cunan.registry.datadir import Registry
from cunan.storage.gas_tables import GasDevice
from tests.cli_helpers import invoke_on, registry
from tests.gas.ingest_fixtures import add_devices, stored_count

__all__ = ["registry"]

gas_app = typer.Typer()
register(gas_app)


def test_broker_files_from_the_devices_credentials(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = registry.database
    a, b = add_devices(database, 2)
    devices = GasRegistry(database, AuditLog(database), local_principal("tests"))
    secret = devices.issue_credential(devices.device_id_of(a))
    with database.read() as session:
        device = session.scalar(select(GasDevice).where(GasDevice.serial == a))
    assert device is not None and device.broker_hash and device.broker_hash.startswith("$7$")
    # CunAn's own broker account is needed first.
    code, out = invoke_on(gas_app, registry, "mosquitto-config", str(tmp_path / "b"))
    assert code == 2 and "mqtt_username" in out
    monkeypatch.setenv("CUNAN_GAS__INGEST__MQTT_USERNAME", "cunan-ingest")
    monkeypatch.setenv("CUNAN_GAS__INGEST__MQTT_PASSWORD", "a-long-ingest-password")
    code, out = invoke_on(gas_app, registry, "mosquitto-config", str(tmp_path / "b"))
    assert code == 0, out
    passwd = (tmp_path / "b" / "passwd").read_text()
    assert [line.split(":")[0] for line in passwd.splitlines()] == ["cunan-ingest", a]
    assert secret not in passwd  # b has no credential yet: not listed
    assert "pattern write cunan/gas/%u/#" in (tmp_path / "b" / "acl").read_text()
    # A removed device drops out of the password file.
    devices.remove_device(devices.device_id_of(a))
    assert invoke_on(gas_app, registry, "mosquitto-config", str(tmp_path / "b"))[0] == 0
    passwd = (tmp_path / "b" / "passwd").read_text()
    assert [line.split(":")[0] for line in passwd.splitlines()] == ["cunan-ingest"]
    assert b not in passwd


def test_history_import_and_purge(registry: Registry, tmp_path: Path) -> None:
    (serial,) = add_devices(registry.database, 1)
    path = tmp_path / "h.csv"
    path.write_text(
        f"serial,time,lel\n{serial},2026-03-01T12:00:00+08:00,2\n{serial},bad,2\n",
        encoding="utf-8",
    )
    code, out = invoke_on(gas_app, registry, "import-history", str(path))
    assert code == 1
    assert "row 3 time" in out and "1 stored" in out
    assert stored_count(registry.database, [serial]) == 1
    code, out = invoke_on(gas_app, registry, "purge", "--dry-run")
    # Received just now, measured in March of this year: nothing is old enough yet.
    assert code == 0 and "would delete 0 raw messages, 0 minutes" in out, out
