"""ID numbers: normalising, masking for display, and the birth date of a resident ID."""

from __future__ import annotations

import re
from datetime import date

#: Mainland resident identity card: 17 digits and a check character (digit or X).
_RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")


def normalise_id_number(value: str | None) -> str | None:
    """Upper-case, without spaces; empty becomes None."""
    if value is None:
        return None
    cleaned = re.sub(r"\s+", "", value).upper()
    return cleaned or None


def mask_id_number(value: str | None) -> str:
    """The ID number as every listing shows it, e.g. ``3301**********1234``."""
    if not value:
        return ""
    n = len(value)
    if n >= 10:
        return value[:4] + "*" * (n - 8) + value[-4:]
    if n >= 5:
        return value[:1] + "*" * (n - 3) + value[-2:]
    return "*" * n


def birth_date_from_id(value: str | None) -> date | None:
    """The birth date encoded in an 18-character resident ID, if it is one."""
    if not value or not _RESIDENT_ID.match(value):
        return None
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
