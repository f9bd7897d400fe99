"""Paginated, filtered and scoped listings for the API and pages: filtering happens in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from cunan.storage.audit_tables import AuditEntry
from cunan.storage.case_tables import Case, CaseSighting
from cunan.storage.enums import PersonCategory, PersonStatus, UserRole
from cunan.storage.pipeline_tables import Camera, Sighting
from cunan.storage.tables import (
    Consent,
    ConsentForm,
    EnrolmentPhoto,
    GridArea,
    House,
    Household,
    Landlord,
    Person,
    Room,
    Tenancy,
    User,
    Village,
)


@dataclass(frozen=True, slots=True)
class Page:
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True, slots=True)
class PeopleFilter:
    name: str | None = None
    id_tail: str | None = None
    house_id: int | None = None
    room_id: int | None = None
    category: PersonCategory | None = None
    status: PersonStatus | None = None


@dataclass(frozen=True, slots=True)
class PersonRow:
    person: Person
    room_id: int | None
    room_label: str | None
    house_id: int | None
    address: str | None
    landlord_name: str | None


def _like(text: str) -> str:
    # Escape LIKE's wildcards so a search for "50%" finds "50%" and nothing else.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _living_on(day: date) -> ColumnElement[bool]:
    """The tenancy covers ``day`` (moved in by then, not yet moved out)."""
    return and_(Tenancy.move_in <= day, or_(Tenancy.move_out.is_(None), Tenancy.move_out >= day))


def _count(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


class QueryRepository:
    """Listings with a landlord scope: ``landlord_id`` set means only that landlord's rows."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- people ---------------------------------------------------------------------------

    def _current_tenancy(self, today: date) -> Any:
        """One current tenancy per person (the latest move-in), as a subquery."""
        ranked = (
            select(
                Tenancy.person_id,
                Tenancy.room_id,
                func.row_number()
                .over(partition_by=Tenancy.person_id, order_by=Tenancy.move_in.desc())
                .label("rank"),
            )
            .where(_living_on(today))
            .subquery()
        )
        return select(ranked.c.person_id, ranked.c.room_id).where(ranked.c.rank == 1).subquery()

    def people(
        self,
        filters: PeopleFilter,
        page: Page,
        *,
        today: date,
        landlord_id: int | None,
    ) -> tuple[list[PersonRow], int]:
        conditions: list[ColumnElement[bool]] = []
        if landlord_id is not None:
            # A landlord sees the people who ever rented one of their rooms (current and past).
            ever = (
                select(Tenancy.person_id)
                .join(Room, Room.id == Tenancy.room_id)
                .join(House, House.id == Room.house_id)
                .where(House.landlord_id == landlord_id)
            )
            conditions.append(Person.id.in_(ever))
        if filters.name:
            conditions.append(Person.name.like(_like(filters.name), escape="\\"))
        if filters.id_tail:
            # Digits (and a final X) only, so LIKE wildcards can never probe a whole number.
            tail = "".join(c for c in filters.id_tail.upper() if c.isdigit() or c == "X")
            conditions.append(Person.id_number.like(f"%{tail}"))
        if filters.category is not None:
            conditions.append(Person.category == filters.category)
        if filters.status is not None:
            conditions.append(Person.status == filters.status)
        if filters.room_id is None and filters.house_id is None:
            # Nothing filters on the current room: count and page the people alone, then
            # find the current tenancy of the page's people only (not of the whole village).
            alone = select(Person).where(*conditions)
            total = _count(self.session, alone.with_only_columns(Person.id))
            people = list(
                self.session.scalars(
                    alone.order_by(Person.id).offset(page.offset).limit(page.limit)
                )
            )
            places = self._current_places(today, [p.id for p in people], landlord_id)
            nowhere = (None, None, None, None, None)
            return [PersonRow(p, *places.get(p.id, nowhere)) for p in people], total
        current = self._current_tenancy(today)
        query = (
            select(Person, Room.id, Room.label, House.id, House.address, Landlord.name)
            .outerjoin(current, current.c.person_id == Person.id)
            .outerjoin(Room, Room.id == current.c.room_id)
            .outerjoin(House, House.id == Room.house_id)
            .outerjoin(Landlord, Landlord.id == House.landlord_id)
        )
        if filters.room_id is not None:
            conditions.append(Room.id == filters.room_id)
        if filters.house_id is not None:
            conditions.append(House.id == filters.house_id)
        if landlord_id is not None:
            # Only the landlord's own rooms and houses can be searched by.
            conditions.append(House.landlord_id == landlord_id)
        query = query.where(*conditions)
        total = _count(self.session, query)
        rows = self.session.execute(
            query.order_by(Person.id).offset(page.offset).limit(page.limit)
        ).all()
        return [PersonRow(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows], total

    def _current_places(
        self, today: date, person_ids: Sequence[int], landlord_id: int | None = None
    ) -> dict[int, tuple[int, str, int, str, str | None]]:
        """Room id, room label, house id, address and landlord name of each person's
        current tenancy (the latest move-in), for these people only; with ``landlord_id``,
        only a tenancy in that landlord's houses (a former tenant's new address is not
        their old landlord's business)."""
        if not person_ids:
            return {}
        ranked = (
            select(
                Tenancy.person_id,
                Tenancy.room_id,
                func.row_number()
                .over(partition_by=Tenancy.person_id, order_by=Tenancy.move_in.desc())
                .label("rank"),
            )
            .where(
                Tenancy.person_id.in_(list(person_ids)),
                _living_on(today),
            )
            .subquery()
        )
        rows = self.session.execute(
            select(ranked.c.person_id, Room.id, Room.label, House.id, House.address, Landlord.name)
            .join(Room, Room.id == ranked.c.room_id)
            .join(House, House.id == Room.house_id)
            .outerjoin(Landlord, Landlord.id == House.landlord_id)
            .where(
                ranked.c.rank == 1,
                *([House.landlord_id == landlord_id] if landlord_id is not None else []),
            )
        )
        return {int(r[0]): (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def person_visible(self, person_id: int, landlord_id: int | None) -> Person | None:
        person = self.session.get(Person, person_id)
        if person is None or landlord_id is None:
            return person
        ever = self.session.scalar(
            select(func.count())
            .select_from(Tenancy)
            .join(Room, Room.id == Tenancy.room_id)
            .join(House, House.id == Room.house_id)
            .where(Tenancy.person_id == person_id, House.landlord_id == landlord_id)
        )
        return person if ever else None

    def tenancies_of(
        self, person_id: int, landlord_id: int | None
    ) -> list[tuple[Tenancy, Room, House]]:
        query = (
            select(Tenancy, Room, House)
            .join(Room, Room.id == Tenancy.room_id)
            .join(House, House.id == Room.house_id)
            .where(Tenancy.person_id == person_id)
        )
        if landlord_id is not None:
            query = query.where(House.landlord_id == landlord_id)
        return [(t, r, h) for t, r, h in self.session.execute(query.order_by(Tenancy.move_in))]

    # -- places ---------------------------------------------------------------------------

    def houses(
        self, page: Page, *, landlord_id: int | None, address: str | None = None
    ) -> tuple[list[tuple[House, str | None]], int]:
        query = select(House, Landlord.name).outerjoin(Landlord, Landlord.id == House.landlord_id)
        if landlord_id is not None:
            query = query.where(House.landlord_id == landlord_id)
        if address:
            query = query.where(House.address.like(_like(address), escape="\\"))
        total = _count(self.session, query)
        rows = self.session.execute(query.order_by(House.id).offset(page.offset).limit(page.limit))
        return [(h, n) for h, n in rows], total

    def house_visible(self, house_id: int, landlord_id: int | None) -> House | None:
        house = self.session.get(House, house_id)
        if house is None or (landlord_id is not None and house.landlord_id != landlord_id):
            return None
        return house

    def rooms_of_house(self, house_id: int, *, today: date) -> list[tuple[Room, int]]:
        """Each room with the number of people living in it today."""
        occupied = (
            select(Tenancy.room_id, func.count().label("n"))
            .where(
                _living_on(today),
            )
            .group_by(Tenancy.room_id)
            .subquery()
        )
        rows = self.session.execute(
            select(Room, func.coalesce(occupied.c.n, 0))
            .outerjoin(occupied, occupied.c.room_id == Room.id)
            .where(Room.house_id == house_id)
            .order_by(Room.label)
        )
        return [(r, int(n)) for r, n in rows]

    def current_tenants_of_house(
        self, house_id: int, *, today: date
    ) -> list[tuple[Tenancy, Person, Room]]:
        rows = self.session.execute(
            select(Tenancy, Person, Room)
            .join(Room, Room.id == Tenancy.room_id)
            .join(Person, Person.id == Tenancy.person_id)
            .where(
                Room.house_id == house_id,
                _living_on(today),
            )
            .order_by(Room.label, Person.id)
        )
        return [(t, p, r) for t, p, r in rows]

    def tenancy_visible(self, tenancy_id: int, landlord_id: int | None) -> Tenancy | None:
        row = self.session.execute(
            select(Tenancy, House.landlord_id)
            .join(Room, Room.id == Tenancy.room_id)
            .join(House, House.id == Room.house_id)
            .where(Tenancy.id == tenancy_id)
        ).first()
        if row is None or (landlord_id is not None and row[1] != landlord_id):
            return None
        tenancy: Tenancy = row[0]
        return tenancy

    def tenancies_in_houses_of(self, landlord_id: int, tenancy_ids: Sequence[int]) -> set[int]:
        """Those of ``tenancy_ids`` whose room is in a house of ``landlord_id`` now (the
        house's landlord decides, not the landlord copied onto the tenancy)."""
        if not tenancy_ids:
            return set()
        rows = self.session.scalars(
            select(Tenancy.id)
            .join(Room, Room.id == Tenancy.room_id)
            .join(House, House.id == Room.house_id)
            .where(Tenancy.id.in_(list(tenancy_ids)), House.landlord_id == landlord_id)
        )
        return {int(i) for i in rows}

    def tenancy_labels(
        self, tenancy_ids: Sequence[int]
    ) -> dict[int, tuple[str, str, str, str | None]]:
        """For each tenancy: (person name, room label, house address, landlord name)."""
        if not tenancy_ids:
            return {}
        landlord = aliased(Landlord)
        rows = self.session.execute(
            select(Tenancy.id, Person.name, Room.label, House.address, landlord.name)
            .join(Person, Person.id == Tenancy.person_id)
            .join(Room, Room.id == Tenancy.room_id)
            .join(House, House.id == Room.house_id)
            .outerjoin(
                landlord, landlord.id == func.coalesce(Tenancy.landlord_id, House.landlord_id)
            )
            .where(Tenancy.id.in_(list(tenancy_ids)))
        )
        return {int(t): (n, r, a, ln) for t, n, r, a, ln in rows}

    # -- cases and sightings --------------------------------------------------------------

    def cases(
        self,
        page: Page,
        *,
        statuses: Sequence[str] | None,
        camera: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[list[Case], int]:
        # Face cases only: gas cases (kind 'gas') have their own list (cunan.gas.alarms).
        query = select(Case).where(Case.kind == "face")
        if statuses:
            query = query.where(Case.status.in_(list(statuses)))
        if since is not None:
            query = query.where(Case.last_seen_at >= since)
        if until is not None:
            query = query.where(Case.first_seen_at < until)
        if camera:
            member = aliased(Sighting)
            query = query.where(
                Case.id.in_(
                    select(CaseSighting.case_id)
                    .join(member, member.id == CaseSighting.sighting_id)
                    .where(member.camera_name == camera)
                )
            )
        total = _count(self.session, query)
        rows = self.session.scalars(
            query.order_by(Case.sightings_count.desc(), Case.last_seen_at.desc(), Case.id)
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows), total

    def sightings(
        self,
        page: Page,
        *,
        camera_id: int | None,
        decision: str | None,
        person_id: int | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[list[Sighting], int]:
        query = select(Sighting)
        if camera_id is not None:
            query = query.where(Sighting.camera_id == camera_id)
        if decision:
            query = query.where(Sighting.decision == decision)
        if person_id is not None:
            query = query.where(Sighting.person_id == person_id)
        if since is not None:
            query = query.where(Sighting.started_at >= since)
        if until is not None:
            query = query.where(Sighting.started_at < until)
        total = _count(self.session, query)
        rows = self.session.scalars(
            query.order_by(Sighting.started_at.desc(), Sighting.id.desc())
            .offset(page.offset)
            .limit(page.limit)
        )
        return list(rows), total

    def cameras(self) -> list[Camera]:
        return list(self.session.scalars(select(Camera).order_by(Camera.id)))

    # -- audit ----------------------------------------------------------------------------

    def audit(
        self,
        page: Page,
        *,
        action: str | None,
        actor: str | None,
        since: datetime | None,
        until: datetime | None,
        target_type: str | None = None,
        target_id: str | None = None,
    ) -> tuple[list[AuditEntry], int]:
        query = select(AuditEntry)
        if target_type:
            query = query.where(AuditEntry.target_type == target_type)
        if target_id:
            query = query.where(AuditEntry.target_id == target_id)
        if action:
            # "export" finds "export" and every "export.*" action.
            query = query.where(
                or_(AuditEntry.action == action, AuditEntry.action.like(f"{action}.%"))
            )
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if since is not None:
            query = query.where(AuditEntry.recorded_at >= since)
        if until is not None:
            query = query.where(AuditEntry.recorded_at < until)
        total = _count(self.session, query)
        rows = self.session.scalars(
            query.order_by(AuditEntry.seq.desc()).offset(page.offset).limit(page.limit)
        )
        return list(rows), total

    # -- departures -----------------------------------------------------------------------

    def tenancies_ending(
        self, *, today: date, ending_from: date, landlord_id: int | None, limit: int
    ) -> list[tuple[Tenancy, Person, Room, House]]:
        """Current tenancies expected to end on ``ending_from`` or later whose move-out is not
        reported yet, in the landlord's houses (all without a scope), the earliest end first."""
        query = (
            select(Tenancy, Person, Room, House)
            .join(Person, Person.id == Tenancy.person_id)
            .join(Room, Room.id == Tenancy.room_id)
            .join(House, House.id == Room.house_id)
            .where(
                _living_on(today),
                Tenancy.move_out.is_(None),
                Tenancy.expected_end >= ending_from,
            )
        )
        if landlord_id is not None:
            query = query.where(House.landlord_id == landlord_id)
        rows = self.session.execute(query.order_by(Tenancy.expected_end, Tenancy.id).limit(limit))
        return [(t, p, r, h) for t, p, r, h in rows]

    # -- registry pages: villages, areas, landlords, rooms, households, consents, photos ----

    def villages(self) -> list[Village]:
        return list(self.session.scalars(select(Village).order_by(Village.id)))

    def areas(self, village_id: int) -> list[tuple[GridArea, int]]:
        """Each grid area of the village with its number of houses."""
        houses = (
            select(House.area_id, func.count().label("n"))
            .where(House.area_id.is_not(None))
            .group_by(House.area_id)
            .subquery()
        )
        rows = self.session.execute(
            select(GridArea, func.coalesce(houses.c.n, 0))
            .outerjoin(houses, houses.c.area_id == GridArea.id)
            .where(GridArea.village_id == village_id)
            .order_by(GridArea.name)
        )
        return [(a, int(n)) for a, n in rows]

    def landlord_names(self, village_id: int) -> list[tuple[int, str, str | None]]:
        """(id, name, phone) of the village's landlords by name: a form's choices."""
        rows = self.session.execute(
            select(Landlord.id, Landlord.name, Landlord.phone)
            .where(Landlord.village_id == village_id)
            .order_by(Landlord.name, Landlord.id)
        )
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    def landlords(self, village_id: int) -> list[tuple[Landlord, int]]:
        """Each landlord of the village with their number of houses."""
        houses = (
            select(House.landlord_id, func.count().label("n"))
            .where(House.landlord_id.is_not(None))
            .group_by(House.landlord_id)
            .subquery()
        )
        rows = self.session.execute(
            select(Landlord, func.coalesce(houses.c.n, 0))
            .outerjoin(houses, houses.c.landlord_id == Landlord.id)
            .where(Landlord.village_id == village_id)
            .order_by(Landlord.name, Landlord.id)
        )
        return [(landlord, int(n)) for landlord, n in rows]

    def rooms(
        self, page: Page, *, today: date, landlord_id: int | None, vacant_only: bool
    ) -> tuple[list[tuple[Room, House, int]], int]:
        """Rooms with their house and the number living there today; ``vacant_only``: the
        rooms with a free place (fewer occupants than capacity), counted in SQL."""
        occupied = (
            select(Tenancy.room_id, func.count().label("n"))
            .where(_living_on(today))
            .group_by(Tenancy.room_id)
            .subquery()
        )
        n = func.coalesce(occupied.c.n, 0)
        query = (
            select(Room, House, n)
            .join(House, House.id == Room.house_id)
            .outerjoin(occupied, occupied.c.room_id == Room.id)
        )
        if landlord_id is not None:
            query = query.where(House.landlord_id == landlord_id)
        if vacant_only:
            query = query.where(n < Room.capacity)
        total = _count(self.session, query)
        rows = self.session.execute(
            query.order_by(House.address, Room.label).offset(page.offset).limit(page.limit)
        )
        return [(r, h, int(c)) for r, h, c in rows], total

    def households_of_house(self, house_id: int) -> list[tuple[Household, int]]:
        """The households (户) registered at a house, with their number of members."""
        members = (
            select(Person.household_id, func.count().label("n"))
            .where(Person.household_id.is_not(None))
            .group_by(Person.household_id)
            .subquery()
        )
        rows = self.session.execute(
            select(Household, func.coalesce(members.c.n, 0))
            .outerjoin(members, members.c.household_id == Household.id)
            .where(Household.house_id == house_id)
            .order_by(Household.name)
        )
        return [(h, int(n)) for h, n in rows]

    def household(self, household_id: int) -> Household | None:
        return self.session.get(Household, household_id)

    def consents_of(self, person_id: int) -> list[Consent]:
        return list(
            self.session.scalars(
                select(Consent)
                .where(Consent.person_id == person_id)
                .order_by(Consent.collected_at, Consent.id)
            )
        )

    def consents_with_forms(self, person_id: int) -> set[int]:
        """Ids of the person's consents with a photo of their signed form."""
        return {
            int(i)
            for i in self.session.scalars(
                select(ConsentForm.consent_id).where(ConsentForm.person_id == person_id)
            )
        }

    def first_photo_ids(self, person_ids: Sequence[int]) -> dict[int, int]:
        """The first kept enrolment photo of each of these people (those with one)."""
        if not person_ids:
            return {}
        rows = self.session.execute(
            select(EnrolmentPhoto.person_id, func.min(EnrolmentPhoto.id))
            .where(EnrolmentPhoto.person_id.in_(list(person_ids)))
            .group_by(EnrolmentPhoto.person_id)
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def person_places(
        self, person_ids: Sequence[int], today: date
    ) -> dict[int, tuple[str, tuple[int, str, int, str, str | None] | None]]:
        """Name and current place (room id, room, house id, address, landlord) of each of
        these people that exists: how cases name the person an outcome recorded."""
        if not person_ids:
            return {}
        names = {
            int(r[0]): str(r[1])
            for r in self.session.execute(
                select(Person.id, Person.name).where(Person.id.in_(list(person_ids)))
            )
        }
        places = self._current_places(today, list(names))
        return {pid: (name, places.get(pid)) for pid, name in names.items()}

    def usernames(self, user_ids: Sequence[int]) -> dict[int, str]:
        """Account names of these users (a case's assignee)."""
        if not user_ids:
            return {}
        rows = self.session.execute(
            select(User.id, User.username, User.display_name).where(User.id.in_(list(user_ids)))
        )
        return {int(r[0]): str(r[2] or r[1]) for r in rows}

    def case_workers(self) -> list[tuple[int, str, str | None]]:
        """Enabled staff and administrator accounts (who a case can be assigned to), by
        name: (id, username, display name)."""
        rows = self.session.execute(
            select(User.id, User.username, User.display_name)
            .where(
                User.disabled_at.is_(None),
                User.role.in_([UserRole.STAFF, UserRole.ADMIN]),
            )
            .order_by(User.username)
        )
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    def photo_ids_of(self, person_id: int) -> list[int]:
        return [
            int(i)
            for i in self.session.scalars(
                select(EnrolmentPhoto.id)
                .where(EnrolmentPhoto.person_id == person_id)
                .order_by(EnrolmentPhoto.id)
            )
        ]
