"""Importing businesses and devices: GBK CSV and XLSX, dry run, a row-level error report."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest

from cunan.errors import Forbidden
from cunan.gas.registry import BusinessFilter, DeviceFilter
from cunan.gas.registry_import import ImportKind, RowStatus, import_gas_file
from cunan.registry.importer import write_problems
from cunan.registry.roster import RosterFileError
from cunan.storage.query_repository import Page
from tests.gas.registry_fixtures import GasWorld, database, db_url, gas_world

__all__ = ["database", "db_url", "gas_world"]

ALL = Page(0, 100)

BUSINESS_ROWS = [
    ["商户名称*", "许可证号", "地址", "类别", "负责人", "负责人电话", "维保人员A", "备注"],
    ["川味小馆", "LIC-001", "幸福路1号", "中餐", "陈老板", "13800000011", "维保甲", "x"],
    ["面馆", "LIC-002", "村东头", "快餐", "", "13800000012", "", ""],  # phone without a name
    ["", "LIC-003", "", "", "", "", "", ""],  # no name
    ["老王火锅", "91330100A", "", "", "", "", "", ""],  # already registered
    ["烧烤摊", "LIC-004", "", "烧烤", "", "", "", ""],
]


def _gbk_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def test_businesses_from_gbk_csv_dry_run_then_import(gas_world: GasWorld, tmp_path: Path) -> None:
    w = gas_world
    staff = w.registry("staff")
    path = _gbk_csv(tmp_path / "商户.csv", BUSINESS_ROWS)
    before = staff.list_businesses(BusinessFilter(), ALL)[1]

    checked = import_gas_file(staff, path, ImportKind.BUSINESSES, dry_run=True)
    assert [(o.row, o.status) for o in checked.outcomes] == [
        (2, RowStatus.VALID),
        (3, RowStatus.FAILED),
        (4, RowStatus.FAILED),
        (5, RowStatus.UNCHANGED),
        (6, RowStatus.VALID),
    ]
    # Each problem names the row and the column as the file spells it.
    assert {(p.row, p.column) for p in checked.problems} == {(3, "负责人"), (4, "商户名称*")}
    assert checked.ignored_headers == ["备注"]
    assert checked.exit_code == 1
    assert staff.list_businesses(BusinessFilter(), ALL)[1] == before

    seen: list[tuple[int, int]] = []
    done = import_gas_file(
        staff, path, ImportKind.BUSINESSES, progress=lambda n, total: seen.append((n, total))
    )
    assert done.count(RowStatus.IMPORTED) == 2 and done.count(RowStatus.FAILED) == 2
    assert seen[-1] == (5, 5)
    [new] = staff.list_businesses(BusinessFilter(licence_no="LIC-001"), ALL)[0]
    detail = staff.get_business(new.id)
    # The address on the house registry is linked; contacts came along.
    assert (detail.house_id, detail.address, detail.category) == (w.house_id, "幸福路1号", "中餐")
    assert {c.role: c.name for c in detail.contacts} == {
        "owner": "陈老板",
        "maintainer_a": "维保甲",
    }
    report = tmp_path / "problems.csv"
    write_problems(done.problems, report)
    text = report.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "row,column,reason" and "3,负责人," in text
    entry = w.audit.recent(limit=1)[0]
    assert entry.action == "gas.import"
    assert entry.details["imported"] == 2 and entry.details["file_type"] == "csv"

    # Again: nothing new, the registered rows are left alone.
    again = import_gas_file(staff, path, ImportKind.BUSINESSES)
    assert again.count(RowStatus.IMPORTED) == 0 and again.count(RowStatus.UNCHANGED) == 3


def test_devices_from_xlsx_with_bad_rows(gas_world: GasWorld, tmp_path: Path) -> None:
    w = gas_world
    staff = w.registry("staff")
    path = _xlsx(
        tmp_path / "devices.xlsx",
        [
            [
                "设备编号",
                "商户许可证号",
                "设备类型",
                "型号",
                "气体类型",
                "安装日期",
                "低报值",
                "高报值",
            ],
            ["D-1", "91330100A", "探测器", "JT-100", "液化石油气", "2025/3/1", 20, 40],
            ["D-2", "91330100B", "紧急切断阀", "", "", "2025年3月1日", "", ""],
            ["D-3", "NO-SUCH", "探测器", "", "天然气", "", "", ""],
            ["D-4", "91330100A", "喇叭", "NOPE", "煤气", "2025-13-01", "120", "x"],
            ["D-1", "91330100A", "探测器", "", "", "", "", ""],  # repeated in the file
            ["SN-a", "91330100A", "detector", "", "", "", "", ""],  # already registered
        ],
    )
    report = import_gas_file(staff, path, ImportKind.DEVICES)
    assert [o.status for o in report.outcomes] == [
        RowStatus.IMPORTED,
        RowStatus.IMPORTED,
        RowStatus.FAILED,
        RowStatus.FAILED,
        RowStatus.FAILED,
        RowStatus.UNCHANGED,
    ]
    problems = {(p.row, p.column) for p in report.problems}
    assert (4, "商户许可证号") in problems
    assert {
        (5, c) for c in ("设备类型", "型号", "气体类型", "安装日期", "低报值", "高报值")
    } <= problems
    assert (6, "设备编号") in problems
    devices = {
        d.serial: d
        for d in staff.list_devices(DeviceFilter(), ALL)[0]
        if d.serial in ("D-1", "D-2")
    }
    assert (devices["D-1"].gas_type, devices["D-1"].low_lel, devices["D-1"].high_lel) == (
        "lpg",
        20.0,
        40.0,
    )
    assert devices["D-1"].replacement_due is not None
    assert devices["D-1"].replacement_due.isoformat() == "2028-03-01"
    assert devices["D-2"].kind == "valve" and devices["D-2"].replacement_due is not None
    assert devices["D-2"].replacement_due.isoformat() == "2035-03-01"


def test_unusable_files_and_roles(gas_world: GasWorld, tmp_path: Path) -> None:
    w = gas_world
    staff = w.registry("staff")
    missing = _gbk_csv(tmp_path / "x.csv", [["名称"], ["a"]])
    with pytest.raises(RosterFileError, match="许可证号"):
        import_gas_file(staff, missing, ImportKind.BUSINESSES)
    text = tmp_path / "x.txt"
    text.write_text("名称,许可证号\n", encoding="utf-8")
    with pytest.raises(RosterFileError, match="unsupported"):
        import_gas_file(staff, text, ImportKind.BUSINESSES)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\xfa\x00\x81")
    with pytest.raises(RosterFileError, match=r"UTF-8|GBK"):
        import_gas_file(staff, bad, ImportKind.BUSINESSES)
    for who in ("auditor", "owner_a", "fixer"):
        with pytest.raises(Forbidden):
            import_gas_file(w.registry(who), missing, ImportKind.BUSINESSES, dry_run=True)
