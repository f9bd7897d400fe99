"""Identity documents: validating, normalising, masking, and the birth date of a resident ID."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum

#: Mainland resident identity card (and the 港澳台居民居住证, same format): 17 digits and a
#: check character (digit or X), GB 11643-1999.
_RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")
_CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
#: Nobody registered today was born before this year (and the ID card dates from 1984).
_EARLIEST_BIRTH_YEAR = 1900


class IdDocument(StrEnum):
    """The kind of identity document an ID number comes from; resident ID unless stated."""

    RESIDENT_ID = "resident_id"
    PASSPORT = "passport"
    #: 港澳居民来往内地通行证 (回乡证).
    HK_MACAO_PERMIT = "hk_macao_permit"
    #: 台湾居民来往大陆通行证 (台胞证).
    TAIWAN_PERMIT = "taiwan_permit"


#: Words a roster or a command line may use for each document.
DOCUMENT_WORDS: dict[str, IdDocument] = {
    **dict.fromkeys(
        ("身份证", "居民身份证", "居住证", "港澳台居民居住证", "resident_id", "id", "idcard"),
        IdDocument.RESIDENT_ID,
    ),
    **dict.fromkeys(("护照", "passport"), IdDocument.PASSPORT),
    **dict.fromkeys(
        ("港澳通行证", "回乡证", "港澳居民来往内地通行证", "hk_macao_permit", "hkmacaopermit"),
        IdDocument.HK_MACAO_PERMIT,
    ),
    **dict.fromkeys(
        ("台胞证", "台湾通行证", "台湾居民来往大陆通行证", "taiwan_permit", "taiwanpermit"),
        IdDocument.TAIWAN_PERMIT,
    ),
}

_OTHER_PATTERNS: dict[IdDocument, tuple[re.Pattern[str], str]] = {
    # Chinese passports are E/G + 8 characters; foreign ones vary, so any 5-20 letters and
    # digits with at least one digit.
    IdDocument.PASSPORT: (
        re.compile(r"^(?=.*\d)[A-Z0-9]{5,20}$"),
        "5-20 letters and digits",
    ),
    IdDocument.HK_MACAO_PERMIT: (re.compile(r"^[HM]\d{8}(\d{2})?$"), "H or M and 8 or 10 digits"),
    IdDocument.TAIWAN_PERMIT: (re.compile(r"^\d{8}(\d{2})?$"), "8 or 10 digits"),
}


class IdNumberError(ValueError):
    """An ID number that cannot be right; the message says why, Chinese first."""


def normalise_id_number(value: str | None) -> str | None:
    """Upper-case, without spaces; empty becomes None."""
    if value is None:
        return None
    cleaned = re.sub(r"\s+", "", value).upper()
    return cleaned or None


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _CHECK_WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def validate_id_number(
    value: str | None,
    document: IdDocument = IdDocument.RESIDENT_ID,
    *,
    today: date | None = None,
) -> str | None:
    """The normalised ID number, or IdNumberError saying why it cannot be right.

    A resident ID must have 18 characters, a real birth date (not in the future) and the
    GB 11643 check character. Other documents are allowed only when stated, and a number
    shaped like a resident ID is never accepted as another document: that would skip the
    birth-date checks (and with them the guardian rule for children).
    """
    number = normalise_id_number(value)
    if number is None:
        return None
    if document is IdDocument.RESIDENT_ID:
        _check_resident_id(number, today or date.today())
        return number
    if _RESIDENT_ID.match(number):
        raise IdNumberError(
            "证件号码是身份证格式，请将证件类型写为身份证: an 18-character number is a resident "
            f"ID, not a {document.value}"
        )
    pattern, shape = _OTHER_PATTERNS[document]
    if not pattern.match(number):
        raise IdNumberError(f"证件号码格式不对: a {document.value} number is {shape}")
    return number


def _check_resident_id(number: str, today: date) -> None:
    if len(number) == 15 and number.isdigit():
        raise IdNumberError(
            "15位旧身份证已停用，请填写18位号码: 15-digit ID numbers are no longer valid; "
            "give the 18-character number"
        )
    if not _RESIDENT_ID.match(number):
        raise IdNumberError(
            f"身份证号码应为18位: a resident ID number has 18 characters (17 digits and a digit "
            f"or X), got {len(number)}; for a passport or 港澳台 permit give the document type"
        )
    birth = _birth_date(number)
    if birth is None or birth.year < _EARLIEST_BIRTH_YEAR:
        # The digits are not repeated: reports and logs never show ID numbers.
        raise IdNumberError(
            "身份证号码中的出生日期无效: the birth date in the ID number (digits 7-14) does "
            "not exist"
        )
    if birth > today:
        raise IdNumberError(
            "身份证号码中的出生日期在未来: the birth date in the ID number is in the future"
        )
    expected = resident_id_check_char(number[:17])
    if number[17] != expected:
        raise IdNumberError(
            "身份证号码校验位不对，请核对: the check character does not match the other 17 "
            "digits (a digit was mistyped)"
        )


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
    return _birth_date(value)


def _birth_date(number: str) -> date | None:
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
