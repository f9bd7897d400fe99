"""Places by address for bulk work: find houses, find or create rooms, households, landlords."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cunan.registry.errors import InvalidRecordError
from cunan.registry.service import RegistryService
from cunan.registry.validation import Stay
from cunan.storage.repositories import RegistryRepository
from cunan.storage.tables import House, Household, Landlord, Person, Room, Tenancy, Village

logger = logging.getLogger(__name__)


def person_key(name: str, house_address: str | None, place: str | None) -> tuple[str, str, str]:
    """How a person without an ID number is recognised again: name + house + room (or
    household). Without a room or household the registry stores no link to a house, so
    such a person is recognised by name alone among the people without one."""
    place = (place or "").strip()
    house = (house_address or "").strip() if place else ""
    return (" ".join(name.split()), house, place)


@dataclass(slots=True)
class VillageDirectory:
    """The places and people of one village, loaded once, kept current as rows are written.

    Loading everything up front (a few queries) lets an import of thousands of rows check
    houses and find already-registered people without a query per row. It is a snapshot:
    another import running at the same time is caught where it matters, when a person is
    written (see ``lock_and_find``), and a place another run created first is looked up
    again instead of failing.
    """

    service: RegistryService
    village_id: int
    houses: dict[str, int] = field(default_factory=dict)
    #: Normalised ID number -> (person id, name).
    by_id_number: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: person_key(...) -> person id, for people registered without an ID number.
    by_name_place: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _rooms: dict[tuple[int, str], int] = field(default_factory=dict)
    #: Room id -> (capacity, every stay in it), for checking capacity before writing.
    room_capacity: dict[int, int] = field(default_factory=dict)
    room_stays: dict[int, list[Stay]] = field(default_factory=dict)
    _households: dict[tuple[int, str], int] = field(default_factory=dict)
    _landlords: dict[str, int] = field(default_factory=dict)
    _house_landlords: dict[int, int | None] = field(default_factory=dict)
    #: Houses this directory created (only their landlord is filled in later).
    _created_houses: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, service: RegistryService, village_id: int) -> VillageDirectory:
        directory = cls(service=service, village_id=village_id)
        directory.reload()
        return directory

    def reload(self) -> None:
        with self.service.database.transaction() as session:
            self._load(RegistryRepository(session))

    def _load(self, repo: RegistryRepository) -> None:
        session = repo.session
        houses = {h.id: h for h in session.query(House).filter(House.village_id == self.village_id)}
        self.houses = {h.address: h.id for h in houses.values()}
        self._house_landlords = {h.id: h.landlord_id for h in houses.values()}
        rooms = {r.id: r for r in session.query(Room).filter(Room.house_id.in_(list(houses)))}
        self._rooms = {(r.house_id, r.label): r.id for r in rooms.values()}
        self.room_capacity = {r.id: r.capacity for r in rooms.values()}
        self.room_stays = repo.room_stays(list(rooms))
        households = {
            h.id: h for h in session.query(Household).filter(Household.house_id.in_(list(houses)))
        }
        self._households = {(h.house_id, h.name): h.id for h in households.values()}
        landlords = session.query(Landlord).filter(Landlord.village_id == self.village_id)
        for landlord in landlords:
            self._landlords.setdefault(landlord.name, landlord.id)
        people = repo.people(village_id=self.village_id)
        tenancies = repo.current_tenancies([p.id for p in people])
        for person in people:
            if person.id_number:
                self.by_id_number[person.id_number] = (person.id, person.name)
                continue
            tenancy = tenancies.get(person.id)
            if tenancy is not None and tenancy.room_id in rooms:
                room = rooms[tenancy.room_id]
                address = houses[room.house_id].address
                self.by_name_place[person_key(person.name, address, room.label)] = person.id
            elif person.household_id is not None and person.household_id in households:
                household = households[person.household_id]
                address = houses[household.house_id].address
                self.by_name_place[person_key(person.name, address, household.name)] = person.id
            else:
                self.by_name_place.setdefault(person_key(person.name, None, None), person.id)

    def house_id(self, address: str, *, create: bool, landlord_id: int | None = None) -> int | None:
        """The house at an address; created only when ``create`` is true (with its landlord).
        A house this run created without a landlord gets the first landlord a later row
        names, so the order of the rows does not decide whether the landlord is linked."""
        key = address.strip()
        found = self.houses.get(key)
        if found is None and not create:
            return None
        if found is None:
            found = self._create(
                lambda: self.service.add_house(self.village_id, key, landlord_id=landlord_id),
                lambda: self.houses.get(key),
            )
            self.houses[key] = found
            self._house_landlords[found] = landlord_id
            self._created_houses.add(found)
            logger.info("created house %d", found)
        elif (
            landlord_id is not None
            and found in self._created_houses
            and self._house_landlords.get(found) is None
        ):
            self.service.set_house_landlord(found, landlord_id)
            self._house_landlords[found] = landlord_id
        return found

    def room_id(self, house_id: int, label: str, *, capacity: int = 1) -> int:
        key = (house_id, label.strip())
        if key not in self._rooms:
            room_id = self._create(
                lambda: self.service.add_room(house_id, label, capacity=capacity),
                lambda: self._rooms.get(key),
            )
            self._rooms[key] = room_id
            self.room_capacity.setdefault(room_id, capacity)
            self.room_stays.setdefault(room_id, [])
        return self._rooms[key]

    def existing_room(self, address: str, label: str) -> int | None:
        house = self.houses.get(address.strip())
        return None if house is None else self._rooms.get((house, label.strip()))

    def has_room(self, house_id: int, label: str) -> bool:
        return (house_id, label.strip()) in self._rooms

    def household_id(self, house_id: int, name: str) -> int:
        key = (house_id, name.strip())
        if key not in self._households:
            self._households[key] = self._create(
                lambda: self.service.add_household(house_id, name),
                lambda: self._households.get(key),
            )
        return self._households[key]

    def landlord_id(self, name: str) -> int:
        key = name.strip()
        if key not in self._landlords:
            self._landlords[key] = self._create(
                lambda: self.service.add_landlord(self.village_id, name),
                lambda: self._landlords.get(key),
            )
        return self._landlords[key]

    def _create(self, create: Callable[[], int], find: Callable[[], int | None]) -> int:
        """Create a place; when another run created it first (a unique-constraint refusal),
        read the places again and use that one."""
        try:
            return create()
        except InvalidRecordError:
            self.reload()
            found = find()
            if found is None:
                raise
            return found

    def remember(
        self, person_id: int, name: str, id_number: str | None, key: tuple[str, str, str]
    ) -> None:
        if id_number:
            self.by_id_number[id_number] = (person_id, name)
        else:
            self.by_name_place[key] = person_id


def lock_and_find(
    repo: RegistryRepository,
    village_id: int,
    name: str,
    *,
    room_id: int | None,
    household_id: int | None,
) -> int | None:
    """Inside the transaction that will add the person: lock the place the identity rule
    looks at, then find an already-registered person without an ID number of that name there.

    The lock (room, else household, else village row) makes concurrent imports of the same
    roster take turns on PostgreSQL; on SQLite the writer lock already does.
    """
    if room_id is not None:
        repo.lock_row(Room, room_id)
    elif household_id is not None:
        repo.lock_row(Household, household_id)
    else:
        repo.lock_row(Village, village_id)
    candidates = [p for p in repo.people_named(village_id, name.strip()) if not p.id_number]
    if not candidates:
        return None
    tenancies = repo.current_tenancies([p.id for p in candidates])
    for person in candidates:
        if _same_place(person, tenancies.get(person.id), room_id, household_id):
            return person.id
    return None


def _same_place(
    person: Person, tenancy: Tenancy | None, room_id: int | None, household_id: int | None
) -> bool:
    # The latest tenancy, ended or not: a re-imported roster of someone who has moved out
    # is still that person, as the directory's snapshot sees it.
    current = tenancy.room_id if tenancy is not None else None
    if room_id is not None:
        return current == room_id
    if household_id is not None:
        return person.household_id == household_id
    return current is None and person.household_id is None
