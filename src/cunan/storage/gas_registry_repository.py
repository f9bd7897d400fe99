"""Queries of the gas registry: businesses, contacts, device models and devices, scoped in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from cunan.storage.gas_tables import GasBusiness, GasContact, GasDevice, GasDeviceModel
from cunan.storage.query_repository import Page
from cunan.storage.tables import House, User, Village

if TYPE_CHECKING:
    from cunan.authz import GasScope


@dataclass(frozen=True, slots=True)
class BusinessFilter:
    """Narrowing of the businesses list; text filters match anywhere in the value."""

    name: str | None = None
    licence_no: str | None = None
    village_id: int | None = None
    category: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    business_id: int | None = None
    kind: str | None = None
    #: Only devices whose replacement is due before this day.
    replacement_before: date | None = None
    include_removed: bool = False


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _count(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _in_scope(scope: GasScope | None) -> ColumnElement[bool] | None:
    """Businesses where a contact row of one of the scope's roles names the account."""
    if scope is None:
        return None
    mine = select(GasContact.business_id).where(
        GasContact.user_id == scope.user_id, GasContact.role.in_(scope.contact_roles)
    )
    return GasBusiness.id.in_(mine)


class GasRegistryRepository:
    """Reads and writes of the registry tables; ``scope`` None means no narrowing."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    def delete(self, row: object) -> None:
        self.session.delete(row)
        self.session.flush()

    # -- businesses --------------------------------------------------------------------------

    def businesses(
        self, where: BusinessFilter, at: Page, scope: GasScope | None
    ) -> tuple[list[tuple[GasBusiness, str | None, int]], int]:
        """(business, house address, devices fitted) rows of one page, and the total."""
        devices = (
            select(func.count(GasDevice.id))
            .where(GasDevice.business_id == GasBusiness.id, GasDevice.removed_at.is_(None))
            .correlate(GasBusiness)
            .scalar_subquery()
        )
        query = select(GasBusiness, House.address, devices).outerjoin(
            House, House.id == GasBusiness.house_id
        )
        scoped = _in_scope(scope)
        if scoped is not None:
            query = query.where(scoped)
        if where.name:
            query = query.where(GasBusiness.name.like(_like(where.name), escape="\\"))
        if where.licence_no:
            query = query.where(GasBusiness.licence_no.like(_like(where.licence_no), escape="\\"))
        if where.village_id is not None:
            query = query.where(GasBusiness.village_id == where.village_id)
        if where.category:
            query = query.where(GasBusiness.category == where.category)
        if where.status:
            query = query.where(GasBusiness.status == where.status)
        total = _count(self.session, query)
        rows = self.session.execute(
            query.order_by(GasBusiness.id).offset(at.offset).limit(at.limit)
        ).all()
        return [(b, a, int(n or 0)) for b, a, n in rows], total

    def business(self, business_id: int, scope: GasScope | None) -> GasBusiness | None:
        query = select(GasBusiness).where(GasBusiness.id == business_id)
        scoped = _in_scope(scope)
        if scoped is not None:
            query = query.where(scoped)
        return self.session.scalars(query).first()

    def business_for_update(self, business_id: int) -> GasBusiness | None:
        return self.session.get(GasBusiness, business_id)

    def business_by_licence(self, licence_no: str) -> GasBusiness | None:
        return self.session.scalars(
            select(GasBusiness).where(GasBusiness.licence_no == licence_no)
        ).first()

    def licences(self, licence_nos: Sequence[str]) -> dict[str, int]:
        """Business ids by licence number, for the numbers given that exist."""
        if not licence_nos:
            return {}
        rows = self.session.execute(
            select(GasBusiness.licence_no, GasBusiness.id).where(
                GasBusiness.licence_no.in_(list(licence_nos))
            )
        ).all()
        return {str(n): int(i) for n, i in rows}

    def house_address(self, house_id: int | None) -> str | None:
        if house_id is None:
            return None
        return self.session.scalar(select(House.address).where(House.id == house_id))

    def house(self, house_id: int) -> House | None:
        return self.session.get(House, house_id)

    def house_by_address(self, village_id: int, address: str) -> House | None:
        return self.session.scalars(
            select(House).where(House.village_id == village_id, House.address == address)
        ).first()

    def village(self, village_id: int) -> Village | None:
        return self.session.get(Village, village_id)

    def village_by_name(self, name: str) -> Village | None:
        return self.session.scalars(select(Village).where(Village.name == name)).first()

    def first_village_id(self) -> int | None:
        return self.session.scalar(select(Village.id).order_by(Village.id).limit(1))

    # -- contacts ----------------------------------------------------------------------------

    def contacts_of(self, business_id: int) -> list[GasContact]:
        return list(
            self.session.scalars(
                select(GasContact)
                .where(GasContact.business_id == business_id)
                .order_by(GasContact.id)
            )
        )

    def contact(self, business_id: int, role: str) -> GasContact | None:
        return self.session.scalars(
            select(GasContact).where(GasContact.business_id == business_id, GasContact.role == role)
        ).first()

    def user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    # -- device models -----------------------------------------------------------------------

    def models(self, at: Page, kind: str | None = None) -> tuple[list[GasDeviceModel], int]:
        query = select(GasDeviceModel)
        if kind:
            query = query.where(GasDeviceModel.kind == kind)
        total = _count(self.session, query)
        rows = self.session.scalars(
            query.order_by(GasDeviceModel.id).offset(at.offset).limit(at.limit)
        )
        return list(rows), total

    def model(self, model_id: int) -> GasDeviceModel | None:
        return self.session.get(GasDeviceModel, model_id)

    def model_by_code(self, code: str) -> GasDeviceModel | None:
        return self.session.scalars(
            select(GasDeviceModel).where(GasDeviceModel.code == code)
        ).first()

    # -- devices -----------------------------------------------------------------------------

    def devices(
        self, where: DeviceFilter, at: Page, scope: GasScope | None
    ) -> tuple[list[tuple[GasDevice, GasDeviceModel | None]], int]:
        query = (
            select(GasDevice, GasDeviceModel)
            .join(GasBusiness, GasBusiness.id == GasDevice.business_id)
            .outerjoin(GasDeviceModel, GasDeviceModel.id == GasDevice.model_id)
        )
        scoped = _in_scope(scope)
        if scoped is not None:
            query = query.where(scoped)
        if not where.include_removed:
            query = query.where(GasDevice.removed_at.is_(None))
        if where.business_id is not None:
            query = query.where(GasDevice.business_id == where.business_id)
        if where.kind:
            query = query.where(GasDevice.kind == where.kind)
        if where.replacement_before is not None:
            query = query.where(GasDevice.replacement_due < where.replacement_before)
        total = _count(self.session, query)
        rows = self.session.execute(
            query.order_by(GasDevice.id).offset(at.offset).limit(at.limit)
        ).all()
        return [(d, m) for d, m in rows], total

    def device(self, device_id: int, scope: GasScope | None) -> GasDevice | None:
        query = (
            select(GasDevice)
            .join(GasBusiness, GasBusiness.id == GasDevice.business_id)
            .where(GasDevice.id == device_id)
        )
        scoped = _in_scope(scope)
        if scoped is not None:
            query = query.where(scoped)
        return self.session.scalars(query).first()

    def device_by_serial(self, serial: str) -> GasDevice | None:
        return self.session.scalars(select(GasDevice).where(GasDevice.serial == serial)).first()

    def serials(self, serials: Sequence[str]) -> dict[str, int]:
        """Device ids by serial, for the serials given that are registered."""
        if not serials:
            return {}
        rows = self.session.execute(
            select(GasDevice.serial, GasDevice.id).where(GasDevice.serial.in_(list(serials)))
        ).all()
        return {str(s): int(i) for s, i in rows}

    def credential_of(self, serial: str) -> tuple[int, str | None] | None:
        """(device id, credential hash) of a device still fitted, or None."""
        row = self.session.execute(
            select(GasDevice.id, GasDevice.credential_hash).where(
                GasDevice.serial == serial, GasDevice.removed_at.is_(None)
            )
        ).first()
        return None if row is None else (int(row[0]), row[1])

    def device_counts(self, business_ids: Sequence[int]) -> dict[int, int]:
        if not business_ids:
            return {}
        rows = self.session.execute(
            select(GasDevice.business_id, func.count(GasDevice.id))
            .where(GasDevice.business_id.in_(business_ids), GasDevice.removed_at.is_(None))
            .group_by(GasDevice.business_id)
        ).all()
        return {int(b): int(n) for b, n in rows}

    def contact_roles_of_user(self, user_id: int) -> list[str]:
        return list(
            self.session.scalars(
                select(GasContact.role).where(GasContact.user_id == user_id).distinct()
            )
        )
