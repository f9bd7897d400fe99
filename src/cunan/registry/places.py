"""Places by address for bulk work: find houses, find or create rooms, households, landlords."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cunan.registry.service import RegistryService
from cunan.storage.repositories import RegistryRepository
from cunan.storage.tables import House, Household, Landlord, Room

logger = logging.getLogger(__name__)


def person_key(name: str, house_address: str | None, place: str | None) -> tuple[str, str, str]:
    """How a person without an ID number is recognised again: name, house, room/household."""
    return (" ".join(name.split()), (house_address or "").strip(), (place or "").strip())


@dataclass(slots=True)
class VillageDirectory:
    """The places and people of one village, loaded once, kept current as rows are written.

    Loading everything up front (a few queries) lets an import of thousands of rows check
    houses and find already-registered people without a query per row.
    """

    service: RegistryService
    village_id: int
    houses: dict[str, int] = field(default_factory=dict)
    #: Normalised ID number -> (person id, name).
    by_id_number: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: person_key(...) -> person id, for people registered without an ID number.
    by_name_place: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _rooms: dict[tuple[int, str], int] = field(default_factory=dict)
    _households: dict[tuple[int, str], int] = field(default_factory=dict)
    _landlords: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, service: RegistryService, village_id: int) -> VillageDirectory:
        directory = cls(service=service, village_id=village_id)
        with service.database.transaction() as session:
            directory._load(RegistryRepository(session))
        return directory

    def _load(self, repo: RegistryRepository) -> None:
        session = repo.session
        houses = {h.id: h for h in session.query(House).filter(House.village_id == self.village_id)}
        self.houses = {h.address: h.id for h in houses.values()}
        rooms = {r.id: r for r in session.query(Room).filter(Room.house_id.in_(list(houses)))}
        self._rooms = {(r.house_id, r.label): r.id for r in rooms.values()}
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
        """The house at an address; created only when ``create`` is true."""
        found = self.houses.get(address.strip())
        if found is not None or not create:
            return found
        house_id = self.service.add_house(self.village_id, address, landlord_id=landlord_id)
        self.houses[address.strip()] = house_id
        logger.info("created house %d", house_id)
        return house_id

    def room_id(self, house_id: int, label: str, *, capacity: int = 1) -> int:
        key = (house_id, label.strip())
        if key not in self._rooms:
            self._rooms[key] = self.service.add_room(house_id, label, capacity=capacity)
        return self._rooms[key]

    def has_room(self, house_id: int, label: str) -> bool:
        return (house_id, label.strip()) in self._rooms

    def household_id(self, house_id: int, name: str) -> int:
        key = (house_id, name.strip())
        if key not in self._households:
            self._households[key] = self.service.add_household(house_id, name)
        return self._households[key]

    def landlord_id(self, name: str) -> int:
        key = name.strip()
        if key not in self._landlords:
            self._landlords[key] = self.service.add_landlord(self.village_id, name)
        return self._landlords[key]

    def remember(
        self, person_id: int, name: str, id_number: str | None, key: tuple[str, str, str]
    ) -> None:
        if id_number:
            self.by_id_number[id_number] = (person_id, name)
        else:
            self.by_name_place[key] = person_id
