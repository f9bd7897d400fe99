from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from cunan.registry.roster import (
    RosterFileError,
    RowProblem,
    header_key,
    parse_date,
    read_roster,
    write_template,
)
from cunan.storage.enums import ConsentMethod, PersonCategory

HEADER = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期\n"


def write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_csv_encodings(tmp_path: Path, encoding: str) -> None:
    text = (
        HEADER
        + "王小明,110101199003070011,外来租住,桃源村1号,101,2024/3/1,a.jpg;b.jpg,"
        + "网格员,2024年3月1日\n"
    )
    roster = read_roster(write(tmp_path / "r.csv", text, encoding))
    assert roster.problems == []
    (row,) = roster.rows
    assert row.row == 2 and row.name == "王小明"
    assert row.category is PersonCategory.TENANT
    assert row.move_in == date(2024, 3, 1) == row.consent_date
    assert row.photos == ("a.jpg", "b.jpg")
    assert row.consent_method is ConsentMethod.PAPER


def test_problems_name_row_and_header(tmp_path: Path) -> None:
    text = (
        "name,id_number,category,move_in,consent_method\n"
        ",110101199003070011,外星人,2024-02-30,飞鸽\n"
        "\n"
        "李四,,resident,yesterday,digital\n"
    )
    roster = read_roster(write(tmp_path / "r.csv", text, "utf-8"))
    assert [r.row for r in roster.rows] == [2, 4]  # empty row 3 skipped, numbering kept
    assert roster.problems == [
        RowProblem(2, "name", "missing required field: name"),
        RowProblem(
            2,
            "category",
            "unknown category '外星人'; use 户籍/resident, 外来租住/tenant, 工作人员/staff or "
            "访客/visitor",
        ),
        RowProblem(
            2, "consent_method", "unknown consent method '飞鸽'; use 纸质/paper or 电子/digital"
        ),
        RowProblem(2, "move_in", "bad date '2024-02-30': no such day"),
        RowProblem(
            4, "move_in", "bad date 'yesterday'; write it like 2024-03-01, 2024/3/1 or 2024年3月1日"
        ),
    ]


def test_unusable_files(tmp_path: Path) -> None:
    with pytest.raises(RosterFileError, match="姓名/name"):
        read_roster(write(tmp_path / "a.csv", "foo,bar\n1,2\n", "utf-8"))
    with pytest.raises(RosterFileError, match="empty"):
        read_roster(write(tmp_path / "b.csv", "\n\n", "utf-8"))
    with pytest.raises(RosterFileError, match="unsupported file type"):
        read_roster(write(tmp_path / "c.txt", "姓名\n", "utf-8"))
    (tmp_path / "e.csv").write_bytes("姓名\n".encode() + b"\xff\xff\xff\n")
    with pytest.raises(RosterFileError, match="neither UTF-8 nor GBK"):
        read_roster(tmp_path / "e.csv")
    with pytest.raises(RosterFileError, match=r"not a readable \.xlsx"):
        read_roster(write(tmp_path / "f.xlsx", "not a zip", "utf-8"))


def test_xlsx_merged_cells_empty_rows_and_dates(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["姓名", "身份证号", "类别", "门牌地址", "入住日期"])
    ws.append(["甲", 11010119900307, "户籍", "桃源村1号", datetime(2024, 3, 1)])
    ws.append(["乙", None, "户籍", None, 45352])
    ws.append([None, None, None, None, None])
    ws.append(["丙", 110101199003071234, "户籍", None, "2024.3.5"])
    ws.merge_cells("D2:D5")
    wb.save(tmp_path / "r.xlsx")
    roster = read_roster(tmp_path / "r.xlsx")
    assert [(r.row, r.house_address) for r in roster.rows] == [
        (2, "桃源村1号"),
        (3, "桃源村1号"),
        (5, "桃源村1号"),
    ]
    assert [r.move_in for r in roster.rows] == [
        date(2024, 3, 1),
        date(2024, 3, 1),
        date(2024, 3, 5),
    ]
    # A number-typed ID short enough to survive Excel is still checked like typed text.
    assert roster.rows[0].id_number is None
    assert roster.problems == [
        RowProblem(
            2,
            "身份证号",
            "身份证号码应为18位: a resident ID number has 18 characters (17 digits and a digit "
            "or X), got 14; for a passport or 港澳台 permit give the document type",
        ),
        RowProblem(
            5,
            "身份证号",
            "ID number was stored as a number and Excel kept only 15 digits; format the column "
            "as text and type it again",
        ),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_template_reads_back(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"template{suffix}"
    write_template(path)
    roster = read_roster(path)
    assert roster.problems == [] and roster.ignored_headers == []
    (row,) = roster.rows  # the English header row is skipped
    assert row.row == 3 and row.name == "张三" and row.category is PersonCategory.TENANT


def test_headers_and_dates() -> None:
    assert header_key("身份证号(必填)") == "id_number"
    assert header_key("姓名*") == "name"
    assert header_key("ID Number") == "id_number"
    assert header_key("照片/photos") == "photos"
    assert header_key("备注") is None
    assert parse_date("20240301") == date(2024, 3, 1)
    assert parse_date("2024年3月1日") == date(2024, 3, 1)
    with pytest.raises(ValueError, match="bad date"):
        parse_date("3/1/2024")
