"""ID numbers: GB 11643 resident IDs and the other documents a roster may name."""

from __future__ import annotations

from datetime import date

import pytest

from cunan.registry.identity import (
    IdDocument,
    IdNumberError,
    birth_date_from_id,
    resident_id_check_char,
    validate_id_number,
)

TODAY = date(2025, 6, 1)


def test_check_character_of_a_published_example() -> None:
    # The worked example of GB 11643-1999 (11010519491231002X).
    assert resident_id_check_char("11010519491231002") == "X"
    assert validate_id_number("11010519491231002x", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("123", "18 characters"),
        ("110101199003071235", "check character"),
        ("110101201513010019", "does not exist"),  # month 13: would skip the guardian rule
        ("110101203001010014", "in the future"),
        ("110101180001010012", "does not exist"),  # before 1900
        ("110101900307123", "15-digit"),
        ("11010119900307123Y", "18 characters"),
    ],
)
def test_bad_resident_ids_are_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(IdNumberError, match=reason):
        validate_id_number(value, today=TODAY)


def test_a_valid_resident_id_gives_its_birth_date() -> None:
    number = "11010119900307" + "003"
    number += resident_id_check_char(number)
    assert validate_id_number(f" {number} ", today=TODAY) == number
    assert birth_date_from_id(number) == date(1990, 3, 7)


@pytest.mark.parametrize(
    ("value", "document"),
    [
        ("E12345678", IdDocument.PASSPORT),
        ("h12345678", IdDocument.HK_MACAO_PERMIT),
        ("M1234567801", IdDocument.HK_MACAO_PERMIT),
        ("12345678", IdDocument.TAIWAN_PERMIT),
    ],
)
def test_other_documents_are_accepted_when_stated(value: str, document: IdDocument) -> None:
    assert validate_id_number(value, document, today=TODAY) == value.upper()
    with pytest.raises(IdNumberError):
        validate_id_number(value, today=TODAY)  # not silently as a resident ID


def test_a_resident_id_shape_is_never_another_document() -> None:
    # Calling an impossible resident ID a passport must not skip the birth-date checks.
    with pytest.raises(IdNumberError, match="resident ID"):
        validate_id_number("110101201513010019", IdDocument.PASSPORT, today=TODAY)
    with pytest.raises(IdNumberError, match="8 or 10 digits"):
        validate_id_number("1234", IdDocument.TAIWAN_PERMIT, today=TODAY)
