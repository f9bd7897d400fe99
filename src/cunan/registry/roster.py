"""Roster files (CSV in UTF-8 or GB18030, XLSX) read into typed rows with every problem listed."""

from __future__ import annotations

import codecs
import csv
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from cunan.registry.identity import (
    DOCUMENT_WORDS,
    IdDocument,
    IdNumberError,
    validate_id_number,
)
from cunan.storage.enums import ConsentMethod, PersonCategory

logger = logging.getLogger(__name__)

#: Cell values as they come out of a file: text from CSV; text, numbers and dates from XLSX.
CellValue = str | int | float | date | datetime | None
_Reporter = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RosterColumn:
    """One roster column: its key, the Chinese header of the template, accepted aliases."""

    key: str
    chinese: str
    english: str
    aliases: tuple[str, ...]
    example: str
    help: str


#: Every column the importer understands, in template order. Headers are matched after
#: lower-casing and dropping spaces, underscores, ``*`` and bracketed notes, so "姓名*",
#: "ID Number", "id_number" and "身份证号(必填)" all work; "姓名/name" matches on either part.
COLUMNS: tuple[RosterColumn, ...] = (
    RosterColumn("name", "姓名", "name", ("名字",), "张三", "required"),
    RosterColumn(
        "id_number",
        "身份证号",
        "id_number",
        ("身份证", "身份证号码", "证件号码", "idno"),
        "110101199003070011",
        "unique in the village; keep the column as text in Excel",
    ),
    RosterColumn(
        "id_type",
        "证件类型",
        "id_type",
        ("证件种类", "idtype", "document"),
        "身份证",
        "身份证/resident_id (default), 护照/passport, 港澳通行证/hk_macao_permit, "
        "台胞证/taiwan_permit",
    ),
    RosterColumn("phone", "电话", "phone", ("手机", "手机号", "联系电话"), "13800138000", ""),
    RosterColumn(
        "category",
        "类别",
        "category",
        ("人员类别", "类型"),
        "外来租住",
        "户籍/resident, 外来租住/tenant, 工作人员/staff, 访客/visitor",
    ),
    RosterColumn(
        "house_address",
        "门牌地址",
        "house_address",
        ("门牌", "地址", "门牌号", "address"),
        "桃源村一组12号",
        "must be a registered house unless --create-places",
    ),
    RosterColumn("room", "房间", "room", ("房间号", "房号"), "201", "needed for a tenancy"),
    RosterColumn(
        "room_capacity",
        "房间容量",
        "room_capacity",
        ("容量", "可住人数", "roomcapacity"),
        "",
        "people the room holds, for rooms the import creates (default: 4, or the roster's "
        "head count if more)",
    ),
    RosterColumn("household", "户", "household", ("户名", "户主"), "", "household at the house"),
    RosterColumn("landlord", "房东", "landlord", ("房东姓名",), "李四", "tenancy's landlord"),
    RosterColumn(
        "move_in", "入住日期", "move_in", ("入住时间", "movein"), "2024-03-01", "tenants: required"
    ),
    RosterColumn(
        "expected_end",
        "预计到期",
        "expected_end",
        ("到期日期", "租期至", "expectedend"),
        "",
        "",
    ),
    RosterColumn(
        "photos",
        "照片",
        "photos",
        ("照片文件", "photo", "照片文件名"),
        "zhangsan.jpg",
        "file names in the --photos folder, several separated by ; or ,",
    ),
    RosterColumn(
        "consent_by",
        "同意采集人",
        "consent_by",
        ("采集人", "consentby"),
        "网格员 王五",
        "who collected the consent; required with photos",
    ),
    RosterColumn(
        "consent_method",
        "同意方式",
        "consent_method",
        ("consentmethod",),
        "纸质",
        "纸质/paper (default) or 电子/digital",
    ),
    RosterColumn(
        "consent_date",
        "同意日期",
        "consent_date",
        ("consentdate",),
        "2024-03-01",
        "required with photos",
    ),
    RosterColumn(
        "guardian",
        "监护人",
        "guardian",
        ("监护人姓名",),
        "",
        "guardian who consented; required under 14",
    ),
    RosterColumn(
        "non_face",
        "非人脸核验",
        "non_face",
        ("nonface", "非人脸核验方式"),
        "",
        "how a person without photos (refused consent) is checked instead",
    ),
)

COLUMN_BY_KEY = {c.key: c for c in COLUMNS}

_CATEGORY_WORDS: dict[str, PersonCategory] = {
    **dict.fromkeys(
        ("户籍", "户籍人口", "本地", "常住", "村民", "resident"), PersonCategory.RESIDENT
    ),
    **dict.fromkeys(
        ("外来租住", "外来", "租住", "租户", "流动人口", "外来人口", "tenant"),
        PersonCategory.TENANT,
    ),
    **dict.fromkeys(("工作人员", "员工", "职工", "staff"), PersonCategory.STAFF),
    **dict.fromkeys(("访客", "来访", "visitor"), PersonCategory.VISITOR),
}

_METHOD_WORDS: dict[str, ConsentMethod] = {
    **dict.fromkeys(("纸质", "书面", "纸质签字", "签字", "paper"), ConsentMethod.PAPER),
    **dict.fromkeys(("电子", "线上", "数字", "电子签名", "digital"), ConsentMethod.DIGITAL),
}

_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
#: CSV files are checked for their encoding this many bytes at a time.
_CHUNK_BYTES = 1 << 20
_PHOTO_SEPARATORS = re.compile(r"[;,；，、]")
#: Excel stores dates as days since 1899-12-30; serials in this range are 1954..2119.
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_SERIALS = range(20_000, 80_000)
#: Excel keeps 15 significant digits: a longer ID number typed as a number is already wrong.
_EXCEL_DIGITS = 15


class RosterFileError(ValueError):
    """The file cannot be used as a roster at all (unreadable, no header, missing columns)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One problem of one row: the spreadsheet's own row number (header = 1), the column's
    header as written in the file, and the reason in words staff understand."""

    row: int
    column: str
    reason: str


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One person of a roster. Values that did not parse are None (with a problem listed)."""

    row: int
    name: str | None
    id_number: str | None = None
    id_document: IdDocument = IdDocument.RESIDENT_ID
    phone: str | None = None
    category: PersonCategory | None = None
    house_address: str | None = None
    room: str | None = None
    room_capacity: int | None = None
    household: str | None = None
    landlord: str | None = None
    move_in: date | None = None
    expected_end: date | None = None
    photos: tuple[str, ...] = ()
    consent_by: str | None = None
    consent_method: ConsentMethod = ConsentMethod.PAPER
    consent_date: date | None = None
    guardian: str | None = None
    non_face: str | None = None


@dataclass(slots=True)
class Roster:
    """A parsed roster: its rows, the problems found in them, and how its headers mapped."""

    path: Path
    rows: list[RosterRow]
    problems: list[RowProblem] = field(default_factory=list)
    #: Column key -> header as written in the file (for problem reports).
    headers: dict[str, str] = field(default_factory=dict)
    ignored_headers: list[str] = field(default_factory=list)
    #: One copy of each repeated value (addresses, rooms, landlords, dates): a roster of
    #: hundreds of thousands of rows names a few thousand places, and every row is kept
    #: until it is written (file order), so each row points at the shared copy.
    shared_text: dict[str, str] = field(default_factory=dict, repr=False)
    shared_dates: dict[date, date] = field(default_factory=dict, repr=False)

    def share_text(self, value: str | None) -> str | None:
        return None if value is None else self.shared_text.setdefault(value, value)

    def share_date(self, value: date | None) -> date | None:
        return None if value is None else self.shared_dates.setdefault(value, value)

    def header(self, key: str) -> str:
        return self.headers.get(key, COLUMN_BY_KEY[key].chinese if key in COLUMN_BY_KEY else key)


# -- reading files ---------------------------------------------------------------------------


def read_roster(path: Path) -> Roster:
    """Read and check a roster file; raises RosterFileError when the file is unusable."""
    return parse_table(path, read_table(path))


def read_table(path: Path) -> Iterator[tuple[int, list[CellValue]]]:
    """The rows of a CSV (UTF-8 or GBK/GB18030, detected) or XLSX file (its first sheet,
    merged cells filled in) as (row number users see, cells); RosterFileError when the
    file cannot be read. Other bulk imports (the gas registry's) read their files here too."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise RosterFileError(f"{path}: file not found")
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(path)
    raise RosterFileError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx")


def decode_csv_bytes(data: bytes, source: str) -> str:
    """UTF-8 (with or without BOM) when the bytes are valid UTF-8, else GB18030 (GBK's superset,
    what Excel on a Chinese Windows writes); both strictly, so mojibake never gets in."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise RosterFileError(
            f"{source}: text is neither UTF-8 nor GBK/GB18030 (byte {exc.start}); save the file "
            "as 'CSV UTF-8' or as .xlsx"
        ) from None


def csv_encoding(path: Path) -> str:
    """``utf-8-sig`` when the whole file is valid UTF-8, else ``gb18030`` (GBK's superset,
    what Excel on a Chinese Windows writes), checked strictly and in chunks, so a large
    file is never held in memory and mojibake never gets in."""
    try:
        bad_utf8 = _invalid_at(path, "utf-8-sig")
        if bad_utf8 is None:
            return "utf-8-sig"
        if _invalid_at(path, "gb18030") is None:
            return "gb18030"
    except OSError as exc:
        raise RosterFileError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    raise RosterFileError(
        f"{path}: text is neither UTF-8 nor GBK/GB18030 (byte {bad_utf8}); save the file "
        "as 'CSV UTF-8' or as .xlsx"
    )


def _invalid_at(path: Path, encoding: str) -> int | None:
    """About where the file stops being valid in ``encoding`` (a byte offset), or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None


def _csv_rows(path: Path) -> Iterator[tuple[int, list[CellValue]]]:
    """The file's records one at a time (a 50 MB roster is never held whole as cells)."""
    encoding = csv_encoding(path)
    try:
        with path.open(encoding=encoding, newline="") as handle:
            try:
                dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                    handle.read(4096), ",;\t"
                )
            except csv.Error:
                dialect = csv.excel
            handle.seek(0)
            try:
                # Excel numbers CSV records as rows, so the record index is the row users see.
                for number, record in enumerate(csv.reader(handle, dialect), 1):
                    yield number, list(record)
            except csv.Error as exc:
                raise RosterFileError(f"{path}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise RosterFileError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[CellValue]]]:
    import openpyxl
    from openpyxl.utils.cell import range_boundaries

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise RosterFileError(f"{path}: not a readable .xlsx workbook ({exc})") from None
    try:
        if not workbook.worksheets:
            raise RosterFileError(f"{path}: the workbook has no sheets")
        sheet = workbook.worksheets[0]
        # Read-only mode does not expose merged ranges; read them from the sheet's XML.
        merges = [range_boundaries(ref) for ref in _merged_ranges(path)]
        fill: dict[tuple[int, int], CellValue] = {}
        grid: list[tuple[int, list[CellValue]]] = []
        for number, raw in enumerate(sheet.iter_rows(values_only=True), 1):
            grid.append((number, [_xlsx_value(v) for v in raw]))
        by_number = dict(grid)
        for min_col, min_row, max_col, max_row in merges:
            if min_col is None or min_row is None or max_col is None or max_row is None:
                continue
            top = by_number.get(min_row, [])
            value = top[min_col - 1] if len(top) >= min_col else None
            for r in range(min_row, max_row + 1):
                for c in range(min_col, max_col + 1):
                    fill[(r, c)] = value
        for number, values in grid:
            if _blank(values):
                # Empty apart from a merged range passing through it: still an empty row.
                yield number, values
                continue
            width = max([len(values)] + [c for (r, c) in fill if r == number])
            row = values + [None] * (width - len(values))
            for (r, c), value in fill.items():
                if r == number:
                    row[c - 1] = value
            yield number, row
    finally:
        workbook.close()


def _xlsx_value(value: object) -> CellValue:
    if value is None or isinstance(value, str | int | float | date | datetime):
        return value
    return str(value)


_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_NS_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _merged_ranges(path: Path) -> list[str]:
    """The merged ranges (``A2:A4``) of the workbook's first sheet."""
    with zipfile.ZipFile(path) as archive:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        first = workbook.find(f"{_NS_MAIN}sheets/{_NS_MAIN}sheet")
        if first is None:
            return []
        rel_id = first.get(f"{_NS_REL}id")
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        target = next(
            (
                r.get("Target")
                for r in rels.iter(f"{_NS_PKG_REL}Relationship")
                if r.get("Id") == rel_id
            ),
            None,
        )
        if not target:
            return []
        member = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
        sheet = ElementTree.fromstring(archive.read(member))
        return [
            ref
            for cell in sheet.iter(f"{_NS_MAIN}mergeCell")
            if (ref := cell.get("ref")) is not None
        ]


# -- headers and rows ------------------------------------------------------------------------


def normalise_header(text: str) -> str:
    cleaned = re.sub(r"[（(【\[].*?[）)】\]]", "", text)
    return re.sub(r"[\s_*＊:：\-]+", "", cleaned).lower()


_ALIASES: dict[str, str] = {}
for _column in COLUMNS:
    for _word in (_column.key, _column.chinese, _column.english, *_column.aliases):
        _ALIASES[normalise_header(_word)] = _column.key


def header_key(text: str) -> str | None:
    """The column key a header names, or None."""
    whole = normalise_header(text)
    if whole in _ALIASES:
        return _ALIASES[whole]
    for part in re.split(r"[/|｜]", text):
        key = _ALIASES.get(normalise_header(part))
        if key is not None:
            return key
    return None


def _blank(values: Sequence[CellValue]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def parse_table(path: Path, table: Iterable[tuple[int, list[CellValue]]]) -> Roster:
    """Rows of cells (first non-empty row = headers) into a roster, one row at a time."""
    rows = ((n, values) for n, values in table if not _blank(values))
    first = next(rows, None)
    if first is None:
        raise RosterFileError(f"{path}: the roster is empty (no header row)")
    header_number, header_cells = first
    columns: dict[int, str] = {}
    headers: dict[str, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(header_cells):
        text = _text(cell)
        if not text:
            continue
        key = header_key(text)
        if key is None:
            ignored.append(text)
            continue
        if key in headers:
            raise RosterFileError(
                f"{path}: columns {headers[key]!r} and {text!r} both mean {key}; keep one"
            )
        columns[index] = key
        headers[key] = text
    if "name" not in headers:
        found = ", ".join(repr(_text(c)) for c in header_cells if _text(c)) or "nothing"
        raise RosterFileError(
            f"{path}: row {header_number} must be the header row with at least 姓名/name "
            f"(found {found}); write an empty roster with 'cunan registry template'"
        )
    roster = Roster(path=path, rows=[], headers=headers, ignored_headers=ignored)
    for index, (number, values) in enumerate(rows):
        # The template carries English keys in a second header row; skip such a row.
        if index == 0 and _is_header_row(values, columns):
            continue
        cells = {key: values[i] if i < len(values) else None for i, key in columns.items()}
        roster.rows.append(_parse_row(number, cells, roster))
    return roster


def _is_header_row(values: Sequence[CellValue], columns: dict[int, str]) -> bool:
    named = [(i, _text(values[i])) for i in columns if i < len(values) and _text(values[i])]
    return bool(named) and all(header_key(text) == columns[i] for i, text in named)


def cell_text(value: CellValue) -> str:
    """A cell as trimmed text (whole numbers without ``.0``, dates as ISO dates)."""
    return _text(value)


def is_blank(values: Sequence[CellValue]) -> bool:
    return _blank(values)


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _parse_row(number: int, cells: dict[str, CellValue], roster: Roster) -> RosterRow:
    problems = roster.problems

    def problem(key: str, reason: str) -> None:
        problems.append(RowProblem(number, roster.header(key), reason))

    def text(key: str) -> str | None:
        return _text(cells.get(key)) or None

    name = text("name")
    if name is None:
        problem("name", "missing required field: name")
    document = IdDocument.RESIDENT_ID
    raw_document = text("id_type")
    if raw_document is not None:
        found_document = DOCUMENT_WORDS.get(normalise_header(raw_document))
        if found_document is None:
            problem(
                "id_type",
                f"unknown document type {raw_document!r}; use 身份证, 护照, 港澳通行证 or 台胞证",
            )
        else:
            document = found_document
    id_number = _id_number(
        cells.get("id_number"), document, lambda reason: problem("id_number", reason)
    )
    category: PersonCategory | None = None
    raw_category = text("category")
    if raw_category is None:
        problem("category", "missing required field: category")
    else:
        category = _CATEGORY_WORDS.get(normalise_header(raw_category))
        if category is None:
            problem(
                "category",
                f"unknown category {raw_category!r}; use 户籍/resident, 外来租住/tenant, "
                "工作人员/staff or 访客/visitor",
            )
    method = ConsentMethod.PAPER
    raw_method = text("consent_method")
    if raw_method is not None:
        found = _METHOD_WORDS.get(normalise_header(raw_method))
        if found is None:
            problem(
                "consent_method",
                f"unknown consent method {raw_method!r}; use 纸质/paper or 电子/digital",
            )
        else:
            method = found
    dates: dict[str, date | None] = {}
    for key in ("move_in", "expected_end", "consent_date"):
        dates[key] = roster.share_date(_date(cells.get(key), _bind(problem, key)))
    room_capacity: int | None = None
    raw_capacity = text("room_capacity")
    if raw_capacity is not None:
        try:
            room_capacity = int(raw_capacity)
        except ValueError:
            room_capacity = 0
        if room_capacity < 1:
            problem(
                "room_capacity", f"room capacity must be a whole number >= 1, got {raw_capacity!r}"
            )
            room_capacity = None
    photos = tuple(
        part.strip() for part in _PHOTO_SEPARATORS.split(text("photos") or "") if part.strip()
    )
    return RosterRow(
        row=number,
        name=name,
        id_number=id_number,
        id_document=document,
        phone=text("phone"),
        category=category,
        house_address=roster.share_text(text("house_address")),
        room=roster.share_text(text("room")),
        room_capacity=room_capacity,
        household=roster.share_text(text("household")),
        landlord=roster.share_text(text("landlord")),
        move_in=dates["move_in"],
        expected_end=dates["expected_end"],
        photos=photos,
        consent_by=roster.share_text(text("consent_by")),
        consent_method=method,
        consent_date=dates["consent_date"],
        guardian=text("guardian"),
        non_face=roster.share_text(text("non_face")),
    )


def _id_number(value: CellValue, document: IdDocument, report: _Reporter) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raw = _text(value)
        if len(raw) > _EXCEL_DIGITS:
            report(
                f"ID number was stored as a number and Excel kept only {_EXCEL_DIGITS} digits; "
                "format the column as text and type it again"
            )
            return None
    else:
        raw = _text(value)
    try:
        return validate_id_number(raw or None, document)
    except IdNumberError as exc:
        report(str(exc))
        return None


def _bind(report: Callable[[str, str], None], key: str) -> _Reporter:
    return lambda reason: report(key, reason)


def parse_date(value: CellValue) -> date:
    """A date from a cell: an Excel date or serial, or text like 2024-03-01, 2024/3/1,
    2024.3.1, 2024年3月1日 or 20240301. Raises ValueError saying what was wrong."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if int(value) in _EXCEL_SERIALS:
            return _EXCEL_EPOCH + timedelta(days=int(value))
        if isinstance(value, int) or value.is_integer():
            value = str(int(value))  # 20240301 typed as a number
        else:
            raise ValueError(f"bad date {value!r}")
    text = str(value).strip()
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month, day = (int(g) for g in match.groups())
            try:
                return date(year, month, day)
            except ValueError:
                raise ValueError(f"bad date {text!r}: no such day") from None
    raise ValueError(f"bad date {text!r}; write it like 2024-03-01, 2024/3/1 or 2024年3月1日")


def _date(value: CellValue, report: _Reporter) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        report(str(exc))
        return None


# -- writing the template --------------------------------------------------------------------


def write_template(path: Path) -> None:
    """An empty roster: Chinese headers in row 1, English keys in row 2 (the importer skips
    that row), one example row; CSV as UTF-8 with BOM so Excel shows the Chinese correctly."""
    header = [c.chinese for c in COLUMNS]
    english = [c.english for c in COLUMNS]
    example = [c.example for c in COLUMNS]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerows([header, english, example])
        return
    if suffix != ".xlsx":
        raise RosterFileError(f"{path}: write the template as .csv or .xlsx")
    import openpyxl
    from openpyxl.comments import Comment
    from openpyxl.styles import Font

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook always has one sheet
    sheet.title = "roster"
    sheet.append(header)
    sheet.append(english)
    sheet.append(example)
    for index, column in enumerate(COLUMNS, 1):
        cell = sheet.cell(row=1, column=index)
        cell.font = Font(bold=True)
        if column.help:
            cell.comment = Comment(column.help, "CunAn")
        # ID numbers, phones and rooms are text: as numbers Excel would round or trim them.
        if column.key in ("id_number", "phone", "room"):
            for row in range(3, 1001):
                sheet.cell(row=row, column=index).number_format = "@"
    workbook.save(path)
