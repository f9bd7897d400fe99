"""``cunan gas business|model|device|import``: the registry from the shell, with exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer

from cunan.gas.registry import verify_device_credential
from cunan.gas.registry_cli import PASSWORD_ENV, mount
from cunan.registry.datadir import Registry
from tests.cli_helpers import invoke_on, registry

__all__ = ["registry"]


@pytest.fixture
def app() -> typer.Typer:
    gas = typer.Typer()
    mount(gas)
    root = typer.Typer()
    root.add_typer(gas, name="gas")
    return root


def _id(out: str) -> int:
    return int(out.strip().split()[-1])


def test_register_a_business_and_its_devices(
    app: typer.Typer, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = invoke_on(app, registry, "gas", "business", "add", "老王火锅", "LIC-9")
    assert code == 0, out
    business = _id(out)
    code, out = invoke_on(app, registry, "gas", "business", "add", "重复", "LIC-9")
    assert code == 4 and "LIC-9" in out  # a conflict, naming the licence
    code, out = invoke_on(
        app, registry, "gas", "business", "contact", "LIC-9", "owner", "王老板", "--phone", "138"
    )
    assert code == 0, out
    monkeypatch.setenv(PASSWORD_ENV, "Correct-horse-battery-5")
    code, out = invoke_on(app, registry, "gas", "business", "account", "LIC-9", "owner", "wang")
    assert code == 0, out
    code, out = invoke_on(
        app, registry, "gas", "model", "add", "NB-1", "--kind", "detector", "--power", "battery"
    )
    assert code == 0, out
    code, out = invoke_on(app, registry, "gas", "model", "list", "--json")
    [model] = json.loads(out)["items"]
    assert (model["offline_after_s"], model["service_months"]) == (90000, 36)
    code, out = invoke_on(
        app,
        registry,
        "gas",
        "device",
        "add",
        "IMEI-1",
        "--business",
        "LIC-9",
        "--model",
        str(model["id"]),
        "--installed",
        "2025-06-30",
        "--gas",
        "lpg",
    )
    assert code == 0, out
    code, out = invoke_on(app, registry, "gas", "device", "show", "IMEI-1")
    device = json.loads(out)
    assert device["replacement_due"] == "2028-06-30" and device["gas_type"] == "lpg"
    code, out = invoke_on(app, registry, "gas", "device", "credential", "IMEI-1")
    assert code == 0, out
    secret = out.strip()
    assert verify_device_credential(registry.database, "IMEI-1", secret) == device["id"]
    code, out = invoke_on(app, registry, "gas", "business", "show", str(business), "--json")
    detail = json.loads(out)
    assert detail["devices"] == 1 and detail["contacts"][0]["user_id"] is not None
    code, out = invoke_on(app, registry, "gas", "device", "show", "NO-SUCH")
    assert code == 3  # not found
    code, out = invoke_on(app, registry, "gas", "device", "set", "IMEI-1", "--low", "70")
    assert code == 2 and "IMEI-1" in out
    code, out = invoke_on(app, registry, "gas", "device", "remove", "IMEI-1")
    assert code == 0, out
    assert verify_device_credential(registry.database, "IMEI-1", secret) is None
    code, out = invoke_on(app, registry, "gas", "device", "list", "--removed", "--json")
    assert json.loads(out)["items"][0]["removed_at"] is not None


def test_import_with_progress_problems_and_exit_codes(
    app: typer.Typer, registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "商户.csv"
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows(
            [["商户名称", "许可证号", "类别"], ["一号店", "C-1", "快餐"], ["二号店", "", ""]]
        )
    report = tmp_path / "problems.csv"
    code, out = invoke_on(
        app,
        registry,
        "gas",
        "import",
        "businesses",
        str(path),
        "--dry-run",
        "--report",
        str(report),
    )
    assert code == 1, out
    assert "row 3, 许可证号: 必填" in out and "dry run: 1 valid" in out
    assert "rows 2/2 (100 %)" in out  # progress, outside a terminal a line per 10 %
    assert "3,许可证号" in report.read_text(encoding="utf-8-sig")
    code, out = invoke_on(app, registry, "gas", "import", "businesses", str(path))
    assert code == 1 and "1 imported" in out
    code, out = invoke_on(app, registry, "gas", "business", "list", "--name", "一号")
    assert "C-1" in out and "1 of 1" in out
    bad = tmp_path / "x.csv"
    bad.write_text("名称\n一\n", encoding="utf-8")
    code, out = invoke_on(app, registry, "gas", "import", "businesses", str(bad))
    assert code == 2 and "许可证号" in out
