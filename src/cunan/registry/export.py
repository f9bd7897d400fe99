"""Registry export to CSV or XLSX: people with place and consent, no biometric data, IDs masked."""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cunan.audit.log import AuditAction
from cunan.registry.service import RegistryService
from cunan.security.spreadsheet import check_output_file, neutralise_row

#: Audit action of an export (details: row count and filter, never the file's content).
REGISTRY_EXPORT = AuditAction.REGISTRY_EXPORT

EXPORT_COLUMNS = (
    "person_id",
    "name",
    "id_number_masked",
    "phone",
    "category",
    "status",
    "minor",
    "household_id",
    "room_id",
    "move_in",
    "expected_end",
    "move_out",
    "consent_valid",
    "face_templates",
    "non_face_alternative",
)


def export_rows(service: RegistryService, *, village_id: int | None = None) -> Iterator[list[str]]:
    page = 500
    offset = 0
    while people := service.list_people(village_id=village_id, limit=page, offset=offset):
        for p in people:
            tenancies = service.tenancies_of(p.id)
            current = next((t for t in reversed(tenancies) if t.move_out is None), None)
            latest = current or (tenancies[-1] if tenancies else None)
            yield [
                str(p.id),
                p.name,
                p.id_number_masked,
                p.phone or "",
                p.category.value,
                p.status.value,
                "yes" if p.is_minor else "no",
                "" if p.household_id is None else str(p.household_id),
                "" if latest is None else str(latest.room_id),
                "" if latest is None else latest.move_in.isoformat(),
                ""
                if latest is None or latest.expected_end is None
                else latest.expected_end.isoformat(),
                "" if latest is None or latest.move_out is None else latest.move_out.isoformat(),
                "yes" if p.has_valid_consent else "no",
                str(p.template_count),
                p.non_face_note or ("yes" if p.non_face_alternative else ""),
            ]
        offset += page


def write_export(
    service: RegistryService,
    path: Path,
    *,
    village_id: int | None = None,
    encoding: str = "utf-8-sig",
) -> int:
    """Write the export as CSV or, for ``FILE.xlsx``, as a real XLSX workbook; returns the
    number of people. CSV is UTF-8 with BOM by default, which opens in Excel as is.

    The path is checked first (a directory, a missing folder or another type is refused
    before anything is read). Every cell goes through :func:`neutralise_cell`, so a formula
    typed into a roster is exported as text. The file holds names and phone numbers, so it
    (and its temporary file) is created with mode 0600 whatever the umask; the temporary
    file is removed if writing fails. The export is recorded in the service's audit log
    (row count only).
    """
    check_output_file(path)
    as_xlsx = path.suffix.lower() == ".xlsx"
    codecs.lookup(encoding)  # an unknown encoding fails here, before any file exists
    count = 0
    tmp = path.with_name(path.name + ".part")
    # O_EXCL: never write into (or through a symlink at) a file someone else left there.
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)  # the mode given to open() is masked by umask
        rows = export_rows(service, village_id=village_id)
        if as_xlsx:
            with os.fdopen(fd, "wb") as raw:
                count = _write_xlsx(raw, rows)
                raw.flush()
                os.fsync(raw.fileno())
        else:
            with os.fdopen(fd, "w", newline="", encoding=encoding) as fh:
                writer = csv.writer(fh)
                writer.writerow(EXPORT_COLUMNS)
                for row in rows:
                    writer.writerow(neutralise_row(row))
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
        tmp.replace(path)  # never leave half an export under the final name
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    try:
        service.record_audit(
            REGISTRY_EXPORT,
            details={
                "rows": count,
                "village_id": village_id,
                "format": "xlsx" if as_xlsx else "csv",
            },
        )
    except BaseException:
        # An export nobody can account for is not left behind.
        path.unlink(missing_ok=True)
        raise
    return count


def _write_xlsx(handle: BinaryIO, rows: Iterator[list[str]]) -> int:
    """Stream rows into a write-only workbook (constant memory); every cell a string."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("people")
    sheet.append(list(EXPORT_COLUMNS))
    count = 0
    for row in rows:
        cells = []
        for value in neutralise_row(row):
            cell = WriteOnlyCell(sheet, value=value)
            # openpyxl reads a leading "=" as a formula; the neutraliser already prefixed
            # it, and the explicit type keeps every cell plain text in any case.
            cell.data_type = "s"
            cells.append(cell)
        sheet.append(cells)
        count += 1
    workbook.save(handle)
    return count
