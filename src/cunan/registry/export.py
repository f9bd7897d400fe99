"""Registry export to CSV: people with place and consent, no biometric data, IDs masked."""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
from collections.abc import Iterator
from pathlib import Path

from cunan.audit.log import AuditAction
from cunan.registry.service import RegistryService

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


def write_export_csv(
    service: RegistryService,
    path: Path,
    *,
    village_id: int | None = None,
    encoding: str = "utf-8-sig",
) -> int:
    """Write the export; returns the number of people. UTF-8 with BOM opens in Excel as is.

    The file holds names and phone numbers, so it (and its temporary file) is created with
    mode 0600 whatever the umask; the temporary file is removed if writing fails. The export
    is recorded in the service's audit log (row count only).
    """
    codecs.lookup(encoding)  # an unknown encoding fails here, before any file exists
    count = 0
    tmp = path.with_name(path.name + ".part")
    # O_EXCL: never write into (or through a symlink at) a file someone else left there.
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", newline="", encoding=encoding) as fh:
            if os.name == "posix":
                os.fchmod(fh.fileno(), 0o600)  # the mode given to open() is masked by umask
            writer = csv.writer(fh)
            writer.writerow(EXPORT_COLUMNS)
            for row in export_rows(service, village_id=village_id):
                writer.writerow(row)
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
            details={"rows": count, "village_id": village_id, "format": "csv"},
        )
    except BaseException:
        # An export nobody can account for is not left behind.
        path.unlink(missing_ok=True)
        raise
    return count
