"""Registry export: formula cells neutralised in every format, real XLSX, paths checked first."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest

from cunan.registry.export import write_export
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.spreadsheet import OutputPathError, neutralise_cell

EVIL_NAME = '=HYPERLINK("http://evil.example/x","点我")'
EVIL_PHONE = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("张三", "张三"),
        ("a=b", "a=b"),
        (None, ""),
        (12, "12"),
    ],
)
def test_neutralise_cell(cell: object, expected: str) -> None:
    assert neutralise_cell(cell) == expected


@pytest.fixture
def evil(service: RegistryService, village: int) -> int:
    return service.add_person(
        NewPerson(name=EVIL_NAME, village_id=village, phone=EVIL_PHONE, non_face_note="@note")
    )


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_export_neutralises_formulas(
    service: RegistryService, evil: int, tmp_path: Path, encoding: str
) -> None:
    target = tmp_path / "people.csv"
    assert write_export(service, target, encoding=encoding) == 1
    [row] = list(csv.DictReader(target.open(encoding=encoding, newline="")))
    assert row["name"] == "'" + EVIL_NAME
    assert row["phone"] == "'" + EVIL_PHONE
    assert row["non_face_alternative"] == "'@note"


def test_xlsx_export_is_a_real_workbook_without_formulas(
    service: RegistryService, evil: int, tmp_path: Path
) -> None:
    target = tmp_path / "people.xlsx"
    assert write_export(service, target) == 1
    workbook = openpyxl.load_workbook(target)
    sheet = workbook.active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    values = dict(zip(header, sheet[2], strict=True))
    assert values["name"].value == "'" + EVIL_NAME and values["name"].data_type == "s"
    assert values["phone"].value == "'" + EVIL_PHONE
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    assert target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "reason"),
    [(".", "is a directory"), ("people.xls", "unsupported file type"), ("no/x.csv", "not exist")],
)
def test_export_refuses_a_bad_path_before_reading(
    service: RegistryService, evil: int, tmp_path: Path, name: str, reason: str
) -> None:
    target = tmp_path / name
    with pytest.raises(OutputPathError, match=reason):
        write_export(service, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
