"""A small gas registry on each engine: two businesses, their accounts, a model and devices."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from cunan.audit.log import AuditLog
from cunan.auth.service import AuthService
from cunan.authz import Principal, local_principal
from cunan.config import WebSettings
from cunan.gas.domain import ContactRole, DeviceKind, GasType, PowerSupply
from cunan.gas.registry import (
    BusinessInput,
    ContactInput,
    DeviceInput,
    GasRegistry,
    ModelInput,
)
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from tests.storage.dbfixtures import database, db_url

__all__ = ["GasWorld", "database", "db_url", "gas_world"]

PASSWORD = "Correct-horse-battery-9"
#: The registry's clock in tests: installs "today" are checked against it.
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class GasWorld:
    database: Database
    audit: AuditLog
    auth: AuthService
    village_id: int
    house_id: int
    #: Account ids: owner_a, owner_b, fixer (maintains a), staff, auditor.
    users: dict[str, int]
    business: dict[str, int]
    device: dict[str, int]
    model_id: int

    def principal(self, who: str) -> Principal:
        roles = {
            "owner_a": UserRole.BUSINESS,
            "owner_b": UserRole.BUSINESS,
            "fixer": UserRole.MAINTAINER,
            "staff": UserRole.STAFF,
            "auditor": UserRole.AUDITOR,
        }
        if who == "admin":
            return local_principal("tests")
        return Principal(username=who, role=roles[who], user_id=self.users[who])

    def registry(self, who: str) -> GasRegistry:
        return GasRegistry(
            self.database, self.audit, self.principal(who), auth=self.auth, clock=lambda: NOW
        )


@pytest.fixture
def gas_world(database: Database) -> Iterator[GasWorld]:
    audit = AuditLog(database)
    auth = AuthService(database, audit, WebSettings())
    places = RegistryService(database, FieldCipher(KeyRing.generate()))
    village_id = places.add_village("桃源村")
    house_id = places.add_house(village_id, "幸福路1号")
    admin = local_principal("tests")
    users = {
        name: auth.create_user(admin, name, PASSWORD, role).id
        for name, role in (
            ("owner_a", UserRole.BUSINESS),
            ("owner_b", UserRole.BUSINESS),
            ("fixer", UserRole.MAINTAINER),
            ("staff", UserRole.STAFF),
            ("auditor", UserRole.AUDITOR),
        )
    }
    registry = GasRegistry(database, audit, admin, auth=auth, clock=lambda: NOW)
    model_id = registry.create_model(
        ModelInput(code="JT-100", kind=DeviceKind.DETECTOR, power=PowerSupply.MAINS, maker="某厂")
    )
    business = {
        "a": registry.create_business(
            BusinessInput(name="老王火锅", licence_no="91330100A", house_id=house_id)
        ),
        "b": registry.create_business(
            BusinessInput(name="小李烧烤", licence_no="91330100B", address="村口")
        ),
    }
    registry.set_contact(
        business["a"], ContactRole.OWNER, ContactInput("王老板", "13800000001", users["owner_a"])
    )
    registry.set_contact(
        business["a"], ContactRole.MAINTAINER_A, ContactInput("维保张", None, users["fixer"])
    )
    registry.set_contact(
        business["b"], ContactRole.OWNER, ContactInput("李老板", "13800000002", users["owner_b"])
    )
    device = {
        key: registry.create_device(
            DeviceInput(
                business_id=business[key],
                serial=f"SN-{key}",
                kind=DeviceKind.DETECTOR,
                model_id=model_id,
                gas_type=GasType.NATURAL_GAS,
                installed_on=date(2025, 1, 31),
            )
        )
        for key in ("a", "b")
    }
    yield GasWorld(database, audit, auth, village_id, house_id, users, business, device, model_id)
