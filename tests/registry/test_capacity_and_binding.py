"""Room capacity on any day of a tenancy, and a photo's ciphertext bound to its own row."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from cunan.registry.errors import RoomCapacityError
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import DecryptionError
from cunan.storage.database import Database
from tests.registry.helpers import consent, template


def tenant(service: RegistryService, village: int, name: str) -> int:
    return service.add_person(NewPerson(name=name, village_id=village, non_face_note="x"))


@pytest.fixture
def room(service: RegistryService, village: int) -> int:
    return service.add_room(service.add_house(village, "桃源村1号"), "101", capacity=1)


def test_move_in_on_the_day_another_moves_out(
    service: RegistryService, village: int, room: int
) -> None:
    first = tenant(service, village, "甲")
    service.add_tenancy(
        first, room, move_in=date(2024, 1, 1), move_out=date(2024, 3, 1), reported_by="网格员"
    )
    # The move-out day is free: the next tenant may move in that day.
    second = tenant(service, village, "乙")
    service.add_tenancy(second, room, move_in=date(2024, 3, 1), reported_by="网格员")
    # ... but not the day before.
    third = tenant(service, village, "丙")
    with pytest.raises(RoomCapacityError):
        service.add_tenancy(
            third, room, move_in=date(2023, 12, 1), move_out=date(2024, 1, 2), reported_by="网格员"
        )


def test_double_booking_against_a_later_move_in_is_refused(
    service: RegistryService, village: int, room: int
) -> None:
    later = tenant(service, village, "甲")
    service.add_tenancy(later, room, move_in=date(2024, 6, 1), reported_by="网格员")
    earlier = tenant(service, village, "乙")
    # Moving in before the other tenant and never out would overlap from 2024-06-01.
    with pytest.raises(RoomCapacityError):
        service.add_tenancy(earlier, room, move_in=date(2024, 3, 1), reported_by="网格员")
    # Moving out by then fits.
    service.add_tenancy(
        earlier, room, move_in=date(2024, 3, 1), move_out=date(2024, 6, 1), reported_by="网格员"
    )


def test_swapped_photo_ciphertexts_do_not_decrypt(
    service: RegistryService, village: int, database: Database
) -> None:
    a = service.add_person(
        NewPerson(name="甲", village_id=village),
        consent=consent(),
        templates=[template(1, photo=b"photo of A")],
    )
    b = service.add_person(
        NewPerson(name="乙", village_id=village),
        consent=consent(),
        templates=[template(2, photo=b"photo of B")],
    )
    [pa], [pb] = service.photo_ids_of(a), service.photo_ids_of(b)
    assert service.photo(pa).data == b"photo of A"
    with database.engine.begin() as conn:
        blobs = dict(conn.execute(text("SELECT id, ciphertext FROM enrolment_photos")).all())
        for photo_id, other in ((pa, pb), (pb, pa)):
            conn.execute(
                text("UPDATE enrolment_photos SET ciphertext = :c WHERE id = :i"),
                {"c": blobs[other], "i": photo_id},
            )
    for photo_id in (pa, pb):
        with pytest.raises(DecryptionError):
            service.photo(photo_id)
