"""Values the registry refuses on both engines: ID numbers, field lengths, consent dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cunan.registry.errors import GuardianConsentRequiredError, InvalidRecordError
from cunan.registry.identity import IdDocument
from cunan.registry.records import ConsentInput, NewPerson
from cunan.registry.service import RegistryService
from cunan.storage.database import Database
from tests.registry.helpers import consent, template
from tests.registry.tables import row_counts


def test_bad_id_numbers_are_refused(
    service: RegistryService, village: int, database: Database
) -> None:
    before = row_counts(database)
    for bad in ("123", "110101199003071235"):
        with pytest.raises(InvalidRecordError, match="ID number"):
            service.add_person(NewPerson(name="甲", village_id=village, id_number=bad))
    # An impossible birth date cannot make a child an adult: the row is refused outright.
    with pytest.raises(InvalidRecordError, match="does not exist") as refused:
        service.add_person(
            NewPerson(name="乙", village_id=village, id_number="110101201513010019"),
            consent=consent(),
            templates=[template(1)],
        )
    # The message names the record masked and never repeats the number's digits.
    assert "1101**********0019" in str(refused.value)
    assert "201513" not in str(refused.value) and "2015-13" not in str(refused.value)
    assert row_counts(database) == before


def test_passport_is_accepted_when_stated_and_a_child_still_needs_a_guardian(
    service: RegistryService, village: int
) -> None:
    pid = service.add_person(
        NewPerson(
            name="John", village_id=village, id_number="E12345678", id_document=IdDocument.PASSPORT
        )
    )
    assert service.get_person(pid).id_number_masked == "E******78"
    with pytest.raises(GuardianConsentRequiredError):
        service.add_person(
            NewPerson(name="小红", village_id=village, id_number="330102201801051234"),
            consent=consent(),
            templates=[template(2)],
        )


def test_overlong_fields_are_refused_with_a_clear_error(
    service: RegistryService, village: int, database: Database
) -> None:
    before = row_counts(database)
    # SQLite would store 5,000 characters in a VARCHAR(200); PostgreSQL would fail inside.
    too_long = r"过长 \(too long\): 5000 characters, at most 200"
    with pytest.raises(InvalidRecordError, match=too_long):
        service.add_person(NewPerson(name="张" * 5000, village_id=village, non_face_note="x"))
    with pytest.raises(InvalidRecordError, match="同意采集人"):
        service.add_person(
            NewPerson(name="甲", village_id=village),
            consent=ConsentInput(collected_by="王" * 201, collected_at=consent().collected_at),
            templates=[template(3)],
        )
    with pytest.raises(InvalidRecordError, match="门牌地址"):
        service.add_house(village, "路" * 301)
    with pytest.raises(InvalidRecordError, match="电话"):
        service.add_person(NewPerson(name="甲", village_id=village, phone="1" * 33))
    assert row_counts(database) == before


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (datetime(2099, 1, 1, 12, tzinfo=UTC), "in the future"),
        (datetime(1900, 1, 1, 12, tzinfo=UTC), "before 2000-01-01"),
    ],
)
def test_implausible_consent_dates_are_refused(
    service: RegistryService, village: int, database: Database, when: datetime, reason: str
) -> None:
    before = row_counts(database)
    with pytest.raises(InvalidRecordError, match=reason):
        service.add_person(
            NewPerson(name="甲", village_id=village),
            consent=ConsentInput(collected_by="网格员 王", collected_at=when),
            templates=[template(4)],
        )
    pid = service.add_person(NewPerson(name="乙", village_id=village, non_face_note="x"))
    with pytest.raises(InvalidRecordError, match=reason):
        service.record_consent(pid, ConsentInput(collected_by="网格员 王", collected_at=when))
    assert row_counts(database) == {**before, "people": before["people"] + 1}
