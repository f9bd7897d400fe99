"""Renaming and deleting places: what still refers to a place, name clashes, the delete."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cunan.storage.auth_tables import ApiToken
from cunan.storage.case_tables import Case
from cunan.storage.duty_tables import ConfirmationTask
from cunan.storage.gas_tables import GasBusiness
from cunan.storage.pipeline_tables import Camera
from cunan.storage.tables import (
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

PlaceKind = Literal["village", "grid_area", "landlord", "house", "room", "household"]
PlaceRow = Village | GridArea | Landlord | House | Room | Household

#: Each kind's table and the column that holds its name.
MODELS: dict[str, tuple[type[PlaceRow], str]] = {
    "village": (Village, "name"),
    "grid_area": (GridArea, "name"),
    "landlord": (Landlord, "name"),
    "house": (House, "address"),
    "room": (Room, "label"),
    "household": (Household, "name"),
}


class PlaceRepository:
    """Queries of place edits, inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, kind: str, record_id: int, *, for_update: bool = False) -> PlaceRow | None:
        model, _ = MODELS[kind]
        query = select(model).where(model.id == record_id)
        if for_update:
            query = query.with_for_update()
        row = self.session.scalars(query).first()
        return row if isinstance(row, model) else None

    def village_of(self, kind: str, row: PlaceRow) -> int:
        """The village a place belongs to (a room's and a household's through their house)."""
        if isinstance(row, Village):
            return row.id
        if isinstance(row, Room | Household):
            house = self.session.get(House, row.house_id)
            return house.village_id if house is not None else -1
        return int(row.village_id)

    def name_taken(self, kind: str, row: PlaceRow, name: str) -> bool:
        """Whether another place of the same parent already has ``name``."""
        model, column = MODELS[kind]
        field: Any = getattr(model, column)
        where: list[ColumnElement[bool]] = [field == name, model.id != row.id]
        if isinstance(row, Room | Household):
            where.append(type(row).house_id == row.house_id)
        elif isinstance(row, GridArea | House):
            where.append(type(row).village_id == row.village_id)
        elif isinstance(row, Landlord):
            # Landlords may share a name (two people called 王芳): no clash.
            return False
        query = select(func.count()).select_from(model).where(*where)
        return bool(self.session.scalar(query))

    def _count(self, model: type[Any], *where: ColumnElement[bool]) -> int:
        return int(self.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def references(self, kind: str, record_id: int) -> dict[str, int]:
        """What still refers to a place, by what it is (only non-zero counts). A place with
        any is not deleted: people, tenancies and their history are never cascaded away."""
        counts: dict[str, int]
        if kind == "village":
            counts = {
                "grid_areas": self._count(GridArea, GridArea.village_id == record_id),
                "landlords": self._count(Landlord, Landlord.village_id == record_id),
                "houses": self._count(House, House.village_id == record_id),
                "people": self._count(Person, Person.village_id == record_id),
                "cameras": self._count(Camera, Camera.village_id == record_id),
                "users": self._count(User, User.village_id == record_id),
                "api_tokens": self._count(ApiToken, ApiToken.village_id == record_id),
                "cases": self._count(Case, Case.village_id == record_id),
                "gas_businesses": self._count(GasBusiness, GasBusiness.village_id == record_id),
            }
        elif kind == "grid_area":
            counts = {
                "houses": self._count(House, House.area_id == record_id),
                "cameras": self._count(Camera, Camera.area_id == record_id),
            }
        elif kind == "landlord":
            landlord = self.session.get(Landlord, record_id)
            counts = {
                "houses": self._count(House, House.landlord_id == record_id),
                "tenancies": self._count(Tenancy, Tenancy.landlord_id == record_id),
                "tasks": self._count(ConfirmationTask, ConfirmationTask.landlord_id == record_id),
                "accounts": int(landlord is not None and landlord.user_id is not None),
            }
        elif kind == "house":
            counts = {
                "rooms": self._count(Room, Room.house_id == record_id),
                "households": self._count(Household, Household.house_id == record_id),
                "cameras": self._count(Camera, Camera.house_id == record_id),
                "gas_businesses": self._count(GasBusiness, GasBusiness.house_id == record_id),
            }
        elif kind == "room":
            counts = {"tenancies": self._count(Tenancy, Tenancy.room_id == record_id)}
        else:
            counts = {"people": self._count(Person, Person.household_id == record_id)}
        return {what: n for what, n in counts.items() if n}

    def remove(self, row: PlaceRow) -> None:
        self.session.delete(row)
        self.session.flush()
