"""The people listing: each person once, with the room, house and landlord they live in today."""

from __future__ import annotations

from datetime import date, timedelta

from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from cunan.storage.enums import PersonCategory
from cunan.storage.query_repository import Page, PeopleFilter, PersonRow, QueryRepository

TODAY = date(2025, 6, 1)


def _village(database: Database) -> dict[str, int]:
    """Two landlords' houses; 王一 moved from A's room to B's, 王二 left A's room, 王三 lives
    in A's room and 李四 in B's, 王五 is a resident without a room."""
    service = RegistryService(database, FieldCipher(KeyRing.generate()))
    village = service.add_village("桃源村")
    ids: dict[str, int] = {}
    for key in ("a", "b"):
        ids[f"landlord_{key}"] = service.add_landlord(village, f"房东{key}")
        ids[f"house_{key}"] = service.add_house(
            village, f"幸福路{key}号", landlord_id=ids[f"landlord_{key}"]
        )
        ids[f"room_{key}"] = service.add_room(ids[f"house_{key}"], "101", capacity=3)
    long_ago = TODAY - timedelta(days=300)
    for name in ("王一", "王二", "王三", "李四", "王五"):
        category = PersonCategory.RESIDENT if name == "王五" else PersonCategory.TENANT
        ids[name] = service.add_person(
            NewPerson(name=name, village_id=village, category=category, non_face_note="ID card")
        )

    def rent(name: str, room: str, move_in: date, move_out: date | None = None) -> None:
        service.add_tenancy(
            ids[name], ids[room], move_in=move_in, move_out=move_out, reported_by="tests"
        )

    rent("王一", "room_a", long_ago, TODAY - timedelta(days=100))
    rent("王一", "room_b", TODAY - timedelta(days=99))
    rent("王二", "room_a", long_ago, TODAY - timedelta(days=10))
    rent("王三", "room_a", long_ago)
    rent("李四", "room_b", TODAY - timedelta(days=5))
    return ids


def _listing(
    database: Database,
    filters: PeopleFilter,
    page: Page | None = None,
    landlord: int | None = None,
) -> tuple[list[tuple[str, str | None, str | None]], int]:
    with database.read() as session:
        rows, total = QueryRepository(session).people(
            filters, page or Page(), today=TODAY, landlord_id=landlord
        )
        return [_place(r) for r in rows], total


def _place(row: PersonRow) -> tuple[str, str | None, str | None]:
    return row.person.name, row.address, row.landlord_name


def test_name_search_shows_where_each_person_lives_today(database: Database) -> None:
    _village(database)
    listed, total = _listing(database, PeopleFilter(name="王"))
    assert total == 4
    assert listed == [
        ("王一", "幸福路b号", "房东b"),  # the current tenancy, not the one they left
        ("王二", None, None),  # moved out: listed, without a room
        ("王三", "幸福路a号", "房东a"),
        ("王五", None, None),  # a resident without a rented room
    ]
    # A page of it, with the same total.
    assert _listing(database, PeopleFilter(name="王"), Page(offset=1, limit=2)) == (
        listed[1:3],
        4,
    )


def test_house_filter_agrees_with_the_plain_listing(database: Database) -> None:
    ids = _village(database)
    everyone, total = _listing(database, PeopleFilter())
    assert total == 5
    in_b, n_b = _listing(database, PeopleFilter(house_id=ids["house_b"]))
    assert n_b == 2
    assert in_b == [row for row in everyone if row[1] == "幸福路b号"]


def test_landlord_sees_current_and_past_tenants_only(database: Database) -> None:
    ids = _village(database)
    listed, total = _listing(database, PeopleFilter(), landlord=ids["landlord_a"])
    assert total == 3
    assert [name for name, _, _ in listed] == ["王一", "王二", "王三"]
    assert _listing(database, PeopleFilter(name="李"), landlord=ids["landlord_a"]) == ([], 0)
