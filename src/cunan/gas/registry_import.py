"""Bulk import of gas businesses and devices from XLSX/CSV, checked row by row like rosters."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path

from cunan.audit.log import AuditAction
from cunan.authz import Permission, require
from cunan.errors import CunanError
from cunan.gas.domain import ContactRole, DeviceKind, GasType
from cunan.gas.registry import (
    BusinessInput,
    ContactInput,
    DeviceInput,
    GasRegistry,
)
from cunan.registry.roster import (
    CellValue,
    RosterFileError,
    RowProblem,
    cell_text,
    is_blank,
    normalise_header,
    parse_date,
    read_table,
)
from cunan.storage.gas_registry_repository import GasRegistryRepository

__all__ = [
    "BUSINESS_COLUMNS",
    "DEVICE_COLUMNS",
    "GasImportReport",
    "ImportKind",
    "import_gas_file",
    "import_gas_upload",
]


class ImportKind(StrEnum):
    BUSINESSES = "businesses"
    DEVICES = "devices"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its key, the Chinese header of the template, accepted aliases."""

    key: str
    chinese: str
    aliases: tuple[str, ...] = ()
    required: bool = False


#: Business columns (headers matched like rosters': case, spaces, ``*`` and bracketed notes
#: ignored; Chinese or English).
BUSINESS_COLUMNS: tuple[Column, ...] = (
    Column("name", "商户名称", ("名称", "店名", "单位名称", "business"), required=True),
    Column(
        "licence_no",
        "许可证号",
        ("营业执照号", "统一社会信用代码", "信用代码", "licence", "license", "license_no"),
        required=True,
    ),
    Column("village", "村", ("村庄", "所属村", "village_name")),
    Column("address", "地址", ("门牌", "门牌地址", "经营地址")),
    Column("category", "类别", ("业态", "经营类别", "类型")),
    Column("status", "状态"),
    Column("owner_name", "负责人", ("负责人姓名", "业主", "owner")),
    Column("owner_phone", "负责人电话", ("业主电话", "ownerphone")),
    Column("safety_officer_name", "安全员", ("安全员姓名", "safety_officer")),
    Column("safety_officer_phone", "安全员电话", ("safetyofficerphone",)),
    Column("maintainer_a_name", "维保人员A", ("维保A", "maintainer_a")),
    Column("maintainer_a_phone", "维保人员A电话", ("维保A电话", "maintaineraphone")),
    Column("maintainer_b_name", "维保人员B", ("维保B", "maintainer_b")),
    Column("maintainer_b_phone", "维保人员B电话", ("维保B电话", "maintainerbphone")),
)

DEVICE_COLUMNS: tuple[Column, ...] = (
    Column("serial", "设备编号", ("设备号", "IMEI", "序列号", "编号"), required=True),
    Column(
        "licence_no",
        "商户许可证号",
        ("许可证号", "营业执照号", "统一社会信用代码", "licence", "license", "license_no"),
        required=True,
    ),
    Column("kind", "设备类型", ("类型", "种类", "device_kind"), required=True),
    Column("model", "型号", ("设备型号", "model_code")),
    Column("gas_type", "气体类型", ("气源", "燃气类型", "gas")),
    Column("location", "安装位置", ("位置",)),
    Column("installed_on", "安装日期", ("installed", "install_date")),
    Column("replacement_due", "更换日期", ("到期更换日期", "replacement")),
    Column("low_lel", "低报值", ("低报", "low", "低报警值")),
    Column("high_lel", "高报值", ("高报", "high", "高报警值")),
)

_KIND_WORDS: dict[str, DeviceKind] = {
    "探测器": DeviceKind.DETECTOR,
    "可燃气体探测器": DeviceKind.DETECTOR,
    "报警器": DeviceKind.DETECTOR,
    "控制器": DeviceKind.CONTROLLER,
    "报警控制器": DeviceKind.CONTROLLER,
    "切断阀": DeviceKind.VALVE,
    "紧急切断阀": DeviceKind.VALVE,
    "电磁阀": DeviceKind.VALVE,
    "排风扇": DeviceKind.FAN,
    "风机": DeviceKind.FAN,
    **{k.value: k for k in DeviceKind},
}
_GAS_WORDS: dict[str, GasType] = {
    "天然气": GasType.NATURAL_GAS,
    "管道天然气": GasType.NATURAL_GAS,
    "液化气": GasType.LPG,
    "液化石油气": GasType.LPG,
    "lpg": GasType.LPG,
    **{k.value: k for k in GasType},
}
_STATUS_WORDS = {"营业": "active", "在营": "active", "停业": "closed", "关闭": "closed"} | {
    "active": "active",
    "closed": "closed",
}
_CONTACTS = (
    (ContactRole.OWNER, "owner"),
    (ContactRole.SAFETY_OFFICER, "safety_officer"),
    (ContactRole.MAINTAINER_A, "maintainer_a"),
    (ContactRole.MAINTAINER_B, "maintainer_b"),
)


class RowStatus(StrEnum):
    IMPORTED = "imported"
    #: Already registered (same licence number / serial): left alone.
    UNCHANGED = "unchanged"
    FAILED = "failed"
    #: Dry run: the row passed every check and would be imported.
    VALID = "valid"


@dataclass(frozen=True, slots=True)
class RowOutcome:
    row: int
    status: RowStatus
    record_id: int | None = None


@dataclass(slots=True)
class GasImportReport:
    kind: ImportKind
    dry_run: bool
    outcomes: list[RowOutcome] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored_headers: list[str] = field(default_factory=list)

    def count(self, status: RowStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def exit_code(self) -> int:
        """0: every row imported, unchanged or valid; 1: some rows failed."""
        return 1 if self.count(RowStatus.FAILED) else 0


@dataclass(slots=True)
class _Row:
    number: int
    values: dict[str, CellValue]


@dataclass(slots=True)
class _Table:
    headers: dict[str, str]
    rows: list[_Row]
    ignored: list[str]


def _aliases(columns: Sequence[Column]) -> dict[str, str]:
    out: dict[str, str] = {}
    for column in columns:
        for word in (column.key, column.chinese, *column.aliases):
            out[normalise_header(word)] = column.key
    return out


def _header_key(text: str, aliases: dict[str, str]) -> str | None:
    whole = normalise_header(text)
    if whole in aliases:
        return aliases[whole]
    for part in re.split(r"[/|｜]", text):
        key = aliases.get(normalise_header(part))
        if key is not None:
            return key
    return None


def _read(path: Path, columns: Sequence[Column]) -> _Table:
    aliases = _aliases(columns)
    rows = ((n, v) for n, v in read_table(path) if not is_blank(v))
    first = next(rows, None)
    if first is None:
        raise RosterFileError(f"{path}: the file is empty (no header row)")
    header_number, cells = first
    by_index: dict[int, str] = {}
    headers: dict[str, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        text = cell_text(cell)
        if not text:
            continue
        key = _header_key(text, aliases)
        if key is None:
            ignored.append(text)
            continue
        if key in headers:
            raise RosterFileError(
                f"{path}: columns {headers[key]!r} and {text!r} both mean {key}; keep one"
            )
        by_index[index] = key
        headers[key] = text
    missing = [f"{c.chinese}/{c.key}" for c in columns if c.required and c.key not in headers]
    if missing:
        raise RosterFileError(
            f"{path}: row {header_number} must be the header row; missing column(s) "
            + ", ".join(missing)
        )
    table = _Table(headers=headers, rows=[], ignored=ignored)
    for number, values in rows:
        table.rows.append(
            _Row(number, {k: values[i] if i < len(values) else None for i, k in by_index.items()})
        )
    return table


class _Checker:
    """Parses one row's cells, collecting a problem (row, header as written, reason) each."""

    def __init__(self, row: _Row, table: _Table, columns: Sequence[Column]) -> None:
        self.row = row
        self.table = table
        self.chinese = {c.key: c.chinese for c in columns}
        self.problems: list[RowProblem] = []

    def header(self, key: str) -> str:
        return self.table.headers.get(key, self.chinese.get(key, key))

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(RowProblem(self.row.number, self.header(key), reason))

    def text(self, key: str, limit: int, *, required: bool = False) -> str | None:
        text = cell_text(self.row.values.get(key))
        if not text:
            if required:
                self.problem(key, "必填 (required)")
            return None
        if len(text) > limit:
            self.problem(key, f"过长 (longer than {limit} characters)")
            return None
        return text

    def word(self, key: str, words: dict[str, str]) -> str | None:
        text = cell_text(self.row.values.get(key))
        if not text:
            return None
        found = words.get(text.lower()) or words.get(text)
        if found is None:
            self.problem(key, f"无法识别 {text!r} (use one of {', '.join(sorted(words))})")
        return found

    def day(self, key: str) -> date | None:
        value = self.row.values.get(key)
        if not cell_text(value):
            return None
        try:
            return parse_date(value)
        except ValueError as exc:
            self.problem(key, str(exc))
            return None

    def lel(self, key: str) -> float | None:
        text = cell_text(self.row.values.get(key)).rstrip("%").strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            self.problem(key, f"应为 %LEL 数值 (not a number: {text!r})")
            return None
        if not 0 < value <= 100:
            self.problem(key, f"须在 0-100 %LEL 之间 (got {value:g})")
            return None
        return value


def import_gas_file(
    registry: GasRegistry,
    path: Path,
    kind: ImportKind,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GasImportReport:
    """Check every row of ``path`` and (unless ``dry_run``) register the rows that passed,
    one audited change per record; rows already registered are left unchanged. Raises
    RosterFileError when the file cannot be used at all."""
    require(registry.principal, Permission.EDIT_GAS)
    columns = BUSINESS_COLUMNS if kind is ImportKind.BUSINESSES else DEVICE_COLUMNS
    table = _read(path, columns)
    report = GasImportReport(kind=kind, dry_run=dry_run, ignored_headers=table.ignored)
    if kind is ImportKind.BUSINESSES:
        _import_businesses(registry, table, report, progress)
    else:
        _import_devices(registry, table, report, progress)
    if not dry_run:
        registry.audit.record(
            AuditAction.GAS_IMPORT,
            actor=registry.principal.actor,
            details={
                "kind": kind.value,
                "file_type": path.suffix.lower().lstrip("."),
                **{s.value: report.count(s) for s in RowStatus},
            },
        )
    return report


def _finish(
    report: GasImportReport,
    number: int,
    problems: list[RowProblem],
    write: Callable[[], int] | None,
    existing: int | None,
) -> None:
    if problems:
        report.problems.extend(problems)
        report.outcomes.append(RowOutcome(number, RowStatus.FAILED))
    elif existing is not None:
        report.outcomes.append(RowOutcome(number, RowStatus.UNCHANGED, existing))
    elif write is None:
        report.outcomes.append(RowOutcome(number, RowStatus.VALID))
    else:
        try:
            record_id = write()
        except CunanError as exc:
            report.problems.append(RowProblem(number, "", str(exc)))
            report.outcomes.append(RowOutcome(number, RowStatus.FAILED))
        else:
            report.outcomes.append(RowOutcome(number, RowStatus.IMPORTED, record_id))


def _lookups(registry: GasRegistry, licences: Iterable[str], serials: Iterable[str]) -> _Known:
    with registry.database.read() as session:
        repo = GasRegistryRepository(session)
        return _Known(
            licences=repo.licences(sorted({t for t in licences if t})),
            serials=repo.serials(sorted({t for t in serials if t})),
            default_village=registry.principal.village_id or repo.first_village_id(),
        )


@dataclass(slots=True)
class _Known:
    """Licence numbers and serials already registered (ids by value), the default village."""

    licences: dict[str, int]
    serials: dict[str, int]
    default_village: int | None


def _import_businesses(
    registry: GasRegistry,
    table: _Table,
    report: GasImportReport,
    progress: Callable[[int, int], None] | None,
) -> None:
    licences = [cell_text(r.values.get("licence_no")) for r in table.rows]
    known = _lookups(registry, licences, [])
    seen: dict[str, int] = {}
    total = len(table.rows)
    for done, row in enumerate(table.rows, 1):
        check = _Checker(row, table, BUSINESS_COLUMNS)
        name = check.text("name", 200, required=True)
        licence = check.text("licence_no", 64, required=True)
        if licence is not None and licence in seen:
            check.problem(
                "licence_no", f"与第 {seen[licence]} 行重复 (same as row {seen[licence]})"
            )
        elif licence is not None:
            seen[licence] = row.number
        village_name = check.text("village", 200)
        village_id, house_id = known.default_village, None
        address = check.text("address", 300)
        category = check.text("category", 64)
        status = check.word("status", _STATUS_WORDS) or "active"
        contacts: list[tuple[ContactRole, ContactInput]] = []
        for role, prefix in _CONTACTS:
            person = check.text(f"{prefix}_name", 100)
            phone = check.text(f"{prefix}_phone", 32)
            if person is not None:
                contacts.append((role, ContactInput(name=person, phone=phone)))
            elif phone is not None:
                check.problem(f"{prefix}_name", "有电话但无姓名 (a phone without a name)")
        with registry.database.read() as session:
            repo = GasRegistryRepository(session)
            if village_name is not None:
                village = repo.village_by_name(village_name)
                if village is None:
                    check.problem("village", f"村庄 {village_name!r} 未登记 (no such village)")
                village_id = village.id if village is not None else None
            if village_id is None and not check.problems:
                check.problem("village", "尚无村庄 (no village registered yet)")
            if address is not None and village_id is not None:
                house = repo.house_by_address(village_id, address)
                # On the house registry: linked; otherwise kept as a free address.
                house_id = house.id if house is not None else None
        existing = known.licences.get(licence) if licence is not None else None
        data = BusinessInput(
            name=name or "",
            licence_no=licence or "",
            village_id=village_id,
            house_id=house_id,
            address=None if house_id is not None else address,
            category=category,
            status=status,
        )

        def write(
            data: BusinessInput = data,
            contacts: list[tuple[ContactRole, ContactInput]] = contacts,
        ) -> int:
            return registry.create_business(data, contacts)

        _finish(report, row.number, check.problems, None if report.dry_run else write, existing)
        if progress is not None:
            progress(done, total)


def _import_devices(
    registry: GasRegistry,
    table: _Table,
    report: GasImportReport,
    progress: Callable[[int, int], None] | None,
) -> None:
    licences = [cell_text(r.values.get("licence_no")) for r in table.rows]
    serials = [cell_text(r.values.get("serial")) for r in table.rows]
    known = _lookups(registry, licences, serials)
    models: dict[str, tuple[int, str] | None] = {}
    seen: dict[str, int] = {}
    total = len(table.rows)
    for done, row in enumerate(table.rows, 1):
        check = _Checker(row, table, DEVICE_COLUMNS)
        serial = check.text("serial", 64, required=True)
        if serial is not None and serial in seen:
            check.problem("serial", f"与第 {seen[serial]} 行重复 (same as row {seen[serial]})")
        elif serial is not None:
            seen[serial] = row.number
        licence = check.text("licence_no", 64, required=True)
        business_id = known.licences.get(licence) if licence is not None else None
        if licence is not None and business_id is None:
            check.problem(
                "licence_no", f"商户 {licence} 未登记 (no business with this licence number)"
            )
        kind_word = check.word("kind", dict(_KIND_WORDS))
        if kind_word is None and not cell_text(row.values.get("kind")):
            check.problem("kind", "必填 (required)")
        kind = DeviceKind(kind_word) if kind_word is not None else None
        model_code = check.text("model", 100)
        model_id = None
        if model_code is not None:
            if model_code not in models:
                with registry.database.read() as session:
                    model = GasRegistryRepository(session).model_by_code(model_code)
                    models[model_code] = (model.id, model.kind) if model is not None else None
            found = models[model_code]
            if found is None:
                check.problem("model", f"型号 {model_code} 未登记 (no such device model)")
            else:
                model_id = found[0]
                if kind is not None and found[1] != kind.value:
                    check.problem(
                        "model", f"型号 {model_code} 是 {found[1]} (the model is a {found[1]})"
                    )
        gas_word = check.word("gas_type", dict(_GAS_WORDS))
        location = check.text("location", 200)
        installed = check.day("installed_on")
        due = check.day("replacement_due")
        low, high = check.lel("low_lel"), check.lel("high_lel")
        if low is not None and high is not None and low >= high:
            check.problem("high_lel", f"高报值须高于低报值 (high {high:g} <= low {low:g})")
        existing = known.serials.get(serial) if serial is not None else None
        data = DeviceInput(
            business_id=business_id or 0,
            serial=serial or "",
            kind=kind or DeviceKind.DETECTOR,
            model_id=model_id,
            gas_type=GasType(gas_word) if gas_word is not None else None,
            location=location,
            installed_on=installed,
            replacement_due=due,
            low_lel=low,
            high_lel=high,
        )

        def write(data: DeviceInput = data) -> int:
            return registry.create_device(data)

        _finish(report, row.number, check.problems, None if report.dry_run else write, existing)
        if progress is not None:
            progress(done, total)


def import_gas_upload(
    registry: GasRegistry,
    data: bytes,
    filename: str,
    kind: ImportKind,
    *,
    dry_run: bool = True,
) -> GasImportReport:
    """:func:`import_gas_file` of an uploaded file (XLSX told from CSV by its content when
    the name does not say); an unusable file is :class:`~cunan.errors.InvalidInput`."""
    import tempfile

    from cunan.errors import InvalidInput
    from cunan.registry.import_jobs import _roster_suffix

    require(registry.principal, Permission.EDIT_GAS)
    if not data:
        raise InvalidInput("上传的文件为空 (the uploaded file is empty)")
    # Judged by the content, never the name alone, exactly as roster uploads are.
    suffix = _roster_suffix(data, filename or "upload")
    with tempfile.TemporaryDirectory(prefix="cunan-gas-import-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return import_gas_file(registry, path, kind, dry_run=dry_run)
        except RosterFileError as exc:
            # The temporary path means nothing to the uploader: name their file instead.
            raise InvalidInput(str(exc).replace(str(path), filename or "upload")) from None
