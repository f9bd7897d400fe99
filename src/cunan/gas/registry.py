"""The gas registry: businesses, contacts, device models and devices, scoped by the caller."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from cunan.audit.log import AuditAction, AuditLog, DetailValue
from cunan.authz import Permission, Principal, gas_scope, hidden, require
from cunan.errors import Conflict, InvalidInput, NotFound
from cunan.gas.domain import ContactRole, DeviceKind, GasType, PowerSupply, SetPoints
from cunan.gas.mosquitto import mosquitto_hash
from cunan.gas.payload import SERIAL_PATTERN
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from cunan.storage.gas_alarm_repository import GasAlarmRepository
from cunan.storage.gas_registry_repository import (
    BusinessFilter,
    DeviceFilter,
    GasRegistryRepository,
)
from cunan.storage.gas_tables import GasBusiness, GasContact, GasDevice, GasDeviceModel
from cunan.storage.query_repository import Page

if TYPE_CHECKING:
    from cunan.auth.service import AuthService

__all__ = [
    "DEFAULT_OFFLINE_AFTER_S",
    "DEFAULT_SERVICE_MONTHS",
    "BusinessDetail",
    "BusinessFilter",
    "BusinessInput",
    "BusinessSummary",
    "ContactInput",
    "ContactView",
    "DeviceFilter",
    "DeviceInput",
    "DeviceView",
    "GasRegistry",
    "ModelInput",
    "ModelView",
    "credential_hash",
    "verify_device_credential",
]

#: Service life in months when the model does not say: detectors in commercial kitchens are
#: replaced after 3 years, shut-off valves after 10 (controllers and fan links: no due date).
DEFAULT_SERVICE_MONTHS: dict[DeviceKind, int] = {DeviceKind.DETECTOR: 36, DeviceKind.VALVE: 120}

#: Silence after which a device is offline, when a new model does not say: minutes for mains
#: devices on the shop's network, ~25 h for battery NB-IoT devices that report once a day.
DEFAULT_OFFLINE_AFTER_S: dict[PowerSupply, int] = {
    PowerSupply.MAINS: 600,
    PowerSupply.BATTERY: 25 * 3600,
}

#: Device credentials start with this, so a leaked one is recognisable in logs and scanners.
CREDENTIAL_PREFIX = "gasdev_"

_BUSINESS_STATUSES = ("active", "closed")
_OWNER_ROLES = (ContactRole.OWNER, ContactRole.SAFETY_OFFICER)
_LEL_RANGE = (0.0, 100.0)


def credential_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def verify_device_credential(database: Database, serial: str, secret: str) -> int | None:
    """The device id when ``secret`` is the credential issued to the fitted device ``serial``,
    else None (unknown or removed device, none issued, wrong secret): what ingestion asks
    before it takes a device's messages."""
    from cunan.storage.gas_registry_repository import GasRegistryRepository

    with database.read() as session:
        found = GasRegistryRepository(session).credential_of(serial)
    stored = found[1] if found is not None else None
    if found is None or stored is None:
        # Compare anyway, so an unknown serial takes as long as a wrong secret.
        hmac.compare_digest(credential_hash(secret), "0" * 64)
        return None
    device_id = found[0]
    return device_id if hmac.compare_digest(credential_hash(secret), stored) else None


def add_months(day: date, months: int) -> date:
    """``day`` plus whole months, on the month's last day when it is shorter (31 Jan + 1 =
    28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


# -- inputs and views ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusinessInput:
    name: str
    licence_no: str
    #: None: the installation's (first) village.
    village_id: int | None = None
    #: The address on the house registry; else a free ``address``.
    house_id: int | None = None
    address: str | None = None
    category: str | None = None
    status: str = "active"


@dataclass(frozen=True, slots=True)
class ContactInput:
    name: str
    phone: str | None = None
    #: The account this contact logs in with (business role for owner and safety officer,
    #: maintainer role for maintainers).
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class ContactView:
    role: str
    name: str
    phone: str | None
    user_id: int | None


@dataclass(frozen=True, slots=True)
class BusinessSummary:
    id: int
    name: str
    licence_no: str
    village_id: int
    house_id: int | None
    #: The house registry's address when linked, else the free address.
    address: str | None
    category: str | None
    status: str
    devices: int


@dataclass(frozen=True, slots=True)
class BusinessDetail:
    id: int
    name: str
    licence_no: str
    village_id: int
    house_id: int | None
    address: str | None
    category: str | None
    status: str
    created_at: datetime
    contacts: list[ContactView] = field(default_factory=list)
    devices: int = 0


@dataclass(frozen=True, slots=True)
class ModelInput:
    code: str
    kind: DeviceKind
    power: PowerSupply = PowerSupply.MAINS
    maker: str | None = None
    #: None: DEFAULT_OFFLINE_AFTER_S of the power supply.
    offline_after_s: int | None = None
    #: None: DEFAULT_SERVICE_MONTHS of the kind.
    service_months: int | None = None
    low_lel: float | None = None
    high_lel: float | None = None


@dataclass(frozen=True, slots=True)
class ModelView:
    id: int
    code: str
    maker: str | None
    kind: str
    power: str
    offline_after_s: int
    service_months: int | None
    low_lel: float | None
    high_lel: float | None


@dataclass(frozen=True, slots=True)
class DeviceInput:
    business_id: int
    serial: str
    kind: DeviceKind
    model_id: int | None = None
    gas_type: GasType | None = None
    location: str | None = None
    installed_on: date | None = None
    #: None: computed from the install date and the model's service life.
    replacement_due: date | None = None
    low_lel: float | None = None
    high_lel: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    id: int
    business_id: int
    serial: str
    kind: str
    model_id: int | None
    model_code: str | None
    gas_type: str | None
    location: str | None
    installed_on: date | None
    replacement_due: date | None
    #: The set points the device's readings are judged by (device, else model, else defaults).
    low_lel: float
    high_lel: float
    #: The device's own set points (None: the model's or the defaults apply).
    own_low_lel: float | None
    own_high_lel: float | None
    offline_after_s: int
    has_credential: bool
    online: bool | None
    last_message_at: datetime | None
    removed_at: datetime | None


# -- the service -----------------------------------------------------------------------------


def _text(value: object, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInput(f"{what} 不能为空 (required)")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: 应为文字 (expected text)")
    text = value.strip()
    if not text:
        if required:
            raise InvalidInput(f"{what} 不能为空 (required)")
        return None
    if len(text) > limit:
        raise InvalidInput(f"{what} 过长 (longer than {limit} characters)")
    return text


def _lel(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what}: 应为数字 (expected a number in %LEL)")
    number = float(value)
    if not _LEL_RANGE[0] < number <= _LEL_RANGE[1]:
        raise InvalidInput(f"{what} 须在 0-100 %LEL 之间 (got {number:g})")
    return number


def _set_points(low: float | None, high: float | None, what: str) -> None:
    if low is not None and high is not None and low >= high:
        raise InvalidInput(f"{what}: 低报警值须低于高报警值 (low {low:g} >= high {high:g})")


class GasRegistry:
    """The registry for one principal: reads narrowed by :func:`gas_scope` (another
    business's records answer "not found", exactly like missing ones), changes need
    ``gas.edit`` and are audited in their own transaction."""

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        principal: Principal,
        *,
        auth: AuthService | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.audit = audit
        self.principal = principal
        self.auth = auth
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    def _record(
        self,
        repo: GasRegistryRepository,
        action: AuditAction,
        target_type: str,
        target_id: int,
        details: Mapping[str, DetailValue] | None = None,
    ) -> None:
        self.audit.record(
            action,
            actor=self.principal.actor,
            target_type=target_type,
            target_id=target_id,
            details=details,
            session=repo.session,
        )

    # -- businesses --------------------------------------------------------------------------

    def list_businesses(self, where: BusinessFilter, at: Page) -> tuple[list[BusinessSummary], int]:
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            rows, total = GasRegistryRepository(session).businesses(
                where, at, gas_scope(self.principal)
            )
            return [_summary(b, house, n) for b, house, n in rows], total

    def get_business(self, business_id: int) -> BusinessDetail:
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasRegistryRepository(session)
            business = repo.business(business_id, gas_scope(self.principal))
            if business is None:
                raise hidden("business", business_id)
            return self._detail(repo, business)

    def _detail(self, repo: GasRegistryRepository, b: GasBusiness) -> BusinessDetail:
        contacts = [ContactView(c.role, c.name, c.phone, c.user_id) for c in repo.contacts_of(b.id)]
        return BusinessDetail(
            id=b.id,
            name=b.name,
            licence_no=b.licence_no,
            village_id=b.village_id,
            house_id=b.house_id,
            address=repo.house_address(b.house_id) or b.address,
            category=b.category,
            status=b.status,
            created_at=b.created_at,
            contacts=contacts,
            devices=repo.device_counts([b.id]).get(b.id, 0),
        )

    def _editable_business(self, repo: GasRegistryRepository, business_id: int) -> GasBusiness:
        business = repo.business(business_id, gas_scope(self.principal))
        if business is None:
            raise hidden("business", business_id)
        return business

    def create_business(
        self,
        data: BusinessInput,
        contacts: Sequence[tuple[ContactRole, ContactInput]] = (),
    ) -> int:
        """Register a business, with its contacts in the same transaction (all or nothing)."""
        require(self.principal, Permission.EDIT_GAS)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            business = GasBusiness(created_at=self._clock())
            self._apply_business(repo, business, _business_fields(data), creating=True)
            repo.add(business)
            self._record(
                repo,
                AuditAction.GAS_BUSINESS_CREATE,
                "gas_business",
                business.id,
                {"village_id": business.village_id, "house_id": business.house_id},
            )
            for role, contact in contacts:
                self._set_contact(repo, business.id, role, contact)
            return business.id

    def update_business(self, business_id: int, changes: Mapping[str, object]) -> BusinessDetail:
        """Change some of a business's fields (name, licence_no, village_id, house_id,
        address, category, status)."""
        require(self.principal, Permission.EDIT_GAS)
        unknown = set(changes) - set(_BUSINESS_FIELDS)
        if unknown:
            raise InvalidInput(f"business {business_id}: unknown field(s) {sorted(unknown)}")
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            business = self._editable_business(repo, business_id)
            fields = {k: getattr(business, k) for k in _BUSINESS_FIELDS} | dict(changes)
            self._apply_business(repo, business, fields, creating=False)
            session.flush()
            self._record(
                repo,
                AuditAction.GAS_BUSINESS_UPDATE,
                "gas_business",
                business.id,
                {"fields": sorted(changes)},
            )
            return self._detail(repo, business)

    def _apply_business(
        self,
        repo: GasRegistryRepository,
        business: GasBusiness,
        fields: Mapping[str, object],
        *,
        creating: bool,
    ) -> None:
        what = "新商户 (new business)" if creating else f"business {business.id}"
        name = _text(fields.get("name"), f"{what}: 名称 name", 200, required=True)
        licence = _text(fields.get("licence_no"), f"{what}: 许可证号 licence_no", 64, required=True)
        assert name is not None and licence is not None
        other = repo.business_by_licence(licence)
        if other is not None and other.id != business.id:
            raise Conflict(f"{what}: 许可证号 {licence} 已登记 (licence number already registered)")
        village_id = fields.get("village_id")
        if village_id is None:
            village_id = self.principal.village_id or repo.first_village_id()
            if village_id is None:
                raise InvalidInput(f"{what}: 尚无村庄 (no village registered yet)")
        if not isinstance(village_id, int) or repo.village(village_id) is None:
            raise NotFound(f"{what}: village {village_id} not found")
        house_id = fields.get("house_id")
        if house_id is not None:
            house = repo.house(house_id) if isinstance(house_id, int) else None
            if house is None or house.village_id != village_id:
                raise NotFound(f"{what}: house {house_id} not found in village {village_id}")
        status = fields.get("status") or "active"
        if status not in _BUSINESS_STATUSES:
            raise InvalidInput(f"{what}: 状态 status must be active or closed (got {status!r})")
        business.name = name
        business.licence_no = licence
        business.village_id = village_id
        business.house_id = house_id if isinstance(house_id, int) else None
        business.address = _text(fields.get("address"), f"{what}: 地址 address", 300)
        business.category = _text(fields.get("category"), f"{what}: 类别 category", 64)
        business.status = str(status)

    # -- contacts ----------------------------------------------------------------------------

    def set_contact(self, business_id: int, role: ContactRole, contact: ContactInput) -> None:
        """Add or replace the business's contact in ``role``."""
        require(self.principal, Permission.EDIT_GAS)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            self._editable_business(repo, business_id)
            self._set_contact(repo, business_id, role, contact)

    def _set_contact(
        self,
        repo: GasRegistryRepository,
        business_id: int,
        role: ContactRole,
        contact: ContactInput,
    ) -> None:
        what = f"business {business_id} contact {role.value}"
        name = _text(contact.name, f"{what}: 姓名 name", 100, required=True)
        phone = _text(contact.phone, f"{what}: 电话 phone", 32)
        assert name is not None
        if contact.user_id is not None:
            self._check_account(repo, contact.user_id, role, what)
        row = repo.contact(business_id, role.value)
        if row is None:
            row = GasContact(business_id=business_id, role=role.value, name=name)
            repo.session.add(row)
        row.name, row.phone, row.user_id = name, phone, contact.user_id
        repo.session.flush()
        self._record(
            repo,
            AuditAction.GAS_CONTACT_SET,
            "gas_business",
            business_id,
            {"role": role.value, "user_id": contact.user_id},
        )

    def remove_contact(self, business_id: int, role: ContactRole) -> None:
        require(self.principal, Permission.EDIT_GAS)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            self._editable_business(repo, business_id)
            row = repo.contact(business_id, role.value)
            if row is None:
                raise NotFound(f"business {business_id}: no {role.value} contact")
            repo.delete(row)
            self._record(
                repo,
                AuditAction.GAS_CONTACT_REMOVE,
                "gas_business",
                business_id,
                {"role": role.value},
            )

    @staticmethod
    def _check_account(
        repo: GasRegistryRepository, user_id: int, role: ContactRole, what: str
    ) -> None:
        user = repo.user(user_id)
        if user is None:
            raise NotFound(f"{what}: user {user_id} not found")
        wanted = UserRole.BUSINESS if role in _OWNER_ROLES else UserRole.MAINTAINER
        if user.role is not wanted:
            raise InvalidInput(
                f"{what}: 账号 {user_id} 的角色是 {user.role.value}，应为 {wanted.value} "
                f"(user {user_id} has role {user.role.value}; this contact needs a "
                f"{wanted.value} account)"
            )

    def create_contact_account(
        self, business_id: int, role: ContactRole, username: str, password: str
    ) -> int:
        """A new business (owner, safety officer) or maintainer account, made by AuthService
        like every account (administrators only, audited ``user.create``), then linked to
        the business's contact in ``role``. Returns the account's id."""
        require(self.principal, Permission.EDIT_GAS)
        require(self.principal, Permission.MANAGE_USERS)
        if self.auth is None:
            raise InvalidInput("accounts cannot be created here (no account service)")
        with self.database.read() as session:
            repo = GasRegistryRepository(session)
            if repo.business(business_id, gas_scope(self.principal)) is None:
                raise hidden("business", business_id)
            contact = repo.contact(business_id, role.value)
            if contact is None:
                raise NotFound(
                    f"business {business_id}: 请先登记{role.value}联系人 (add the {role.value} "
                    "contact first)"
                )
            if contact.user_id is not None:
                raise Conflict(
                    f"business {business_id} contact {role.value} already has account "
                    f"{contact.user_id}"
                )
            name, phone = contact.name, contact.phone
        account_role = UserRole.BUSINESS if role in _OWNER_ROLES else UserRole.MAINTAINER
        user = self.auth.create_user(
            self.principal, username, password, account_role, display_name=name
        )
        self.set_contact(business_id, role, ContactInput(name=name, phone=phone, user_id=user.id))
        return user.id

    # -- device models -----------------------------------------------------------------------

    def list_models(self, at: Page, kind: DeviceKind | None = None) -> tuple[list[ModelView], int]:
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            rows, total = GasRegistryRepository(session).models(at, kind.value if kind else None)
            return [_model_view(m) for m in rows], total

    def get_model(self, model_id: int) -> ModelView:
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            model = GasRegistryRepository(session).model(model_id)
            if model is None:
                raise NotFound(f"device model {model_id} not found")
            return _model_view(model)

    def create_model(self, data: ModelInput) -> int:
        require(self.principal, Permission.EDIT_GAS)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            model = GasDeviceModel()
            self._apply_model(repo, model, _model_fields(data), "新型号 (new model)")
            repo.add(model)
            self._record(
                repo,
                AuditAction.GAS_MODEL_CREATE,
                "gas_device_model",
                model.id,
                {"kind": model.kind, "power": model.power},
            )
            return model.id

    def update_model(self, model_id: int, changes: Mapping[str, object]) -> ModelView:
        require(self.principal, Permission.EDIT_GAS)
        unknown = set(changes) - set(_MODEL_FIELDS)
        if unknown:
            raise InvalidInput(f"device model {model_id}: unknown field(s) {sorted(unknown)}")
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            model = repo.model(model_id)
            if model is None:
                raise NotFound(f"device model {model_id} not found")
            fields = {k: getattr(model, k) for k in _MODEL_FIELDS} | dict(changes)
            self._apply_model(repo, model, fields, f"device model {model_id}")
            session.flush()
            self._record(
                repo,
                AuditAction.GAS_MODEL_UPDATE,
                "gas_device_model",
                model.id,
                {"fields": sorted(changes)},
            )
            return _model_view(model)

    @staticmethod
    def _apply_model(
        repo: GasRegistryRepository,
        model: GasDeviceModel,
        fields: Mapping[str, object],
        what: str,
    ) -> None:
        code = _text(fields.get("code"), f"{what}: 型号 code", 100, required=True)
        assert code is not None
        other = repo.model_by_code(code)
        if other is not None and other.id != model.id:
            raise Conflict(f"{what}: 型号 {code} 已存在 (model code already registered)")
        try:
            kind = DeviceKind(str(fields.get("kind")))
            power = PowerSupply(str(fields.get("power") or PowerSupply.MAINS))
        except ValueError as exc:
            raise InvalidInput(f"{what}: {exc}") from None
        offline = fields.get("offline_after_s")
        if offline is None:
            offline = DEFAULT_OFFLINE_AFTER_S[power]
        if isinstance(offline, bool) or not isinstance(offline, int) or offline < 60:
            raise InvalidInput(f"{what}: 离线判定 offline_after_s must be >= 60 seconds")
        months = fields.get("service_months")
        if months is None:
            months = DEFAULT_SERVICE_MONTHS.get(kind)
        if months is not None and (
            isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 600
        ):
            raise InvalidInput(f"{what}: 使用年限 service_months must be 1-600 months")
        low = _lel(fields.get("low_lel"), f"{what}: 低报值 low_lel")
        high = _lel(fields.get("high_lel"), f"{what}: 高报值 high_lel")
        _set_points(low, high, what)
        model.code, model.kind, model.power = code, kind.value, power.value
        model.maker = _text(fields.get("maker"), f"{what}: 厂家 maker", 100)
        model.offline_after_s, model.service_months = offline, months
        model.low_lel, model.high_lel = low, high

    # -- devices -----------------------------------------------------------------------------

    def list_devices(self, where: DeviceFilter, at: Page) -> tuple[list[DeviceView], int]:
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            rows, total = GasRegistryRepository(session).devices(
                where, at, gas_scope(self.principal)
            )
            return [_device_view(d, m) for d, m in rows], total

    def get_device(self, device_id: int) -> DeviceView:
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasRegistryRepository(session)
            device = repo.device(device_id, gas_scope(self.principal))
            if device is None:
                raise hidden("device", device_id)
            model = repo.model(device.model_id) if device.model_id is not None else None
            return _device_view(device, model)

    def create_device(self, data: DeviceInput) -> int:
        require(self.principal, Permission.EDIT_GAS)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            device = GasDevice(created_at=self._clock())
            fields = _device_fields(data)
            given = {k for k, v in fields.items() if v is not None}
            self._apply_device(repo, device, fields, "新设备 (new device)", given)
            repo.add(device)
            self._record(
                repo,
                AuditAction.GAS_DEVICE_CREATE,
                "gas_device",
                device.id,
                {"business_id": device.business_id, "kind": device.kind},
            )
            return device.id

    def update_device(self, device_id: int, changes: Mapping[str, object]) -> DeviceView:
        """Change some of a device's fields; moving it to another business needs both in
        scope. The replacement date follows the install date and model unless given."""
        require(self.principal, Permission.EDIT_GAS)
        unknown = set(changes) - set(_DEVICE_FIELDS)
        if unknown:
            raise InvalidInput(f"device {device_id}: unknown field(s) {sorted(unknown)}")
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            device = repo.device(device_id, gas_scope(self.principal))
            if device is None or device.removed_at is not None:
                raise hidden("device", device_id)
            fields = {k: getattr(device, k) for k in _DEVICE_FIELDS} | dict(changes)
            self._apply_device(repo, device, fields, f"device {device.serial}", set(changes))
            session.flush()
            self._record(
                repo,
                AuditAction.GAS_DEVICE_UPDATE,
                "gas_device",
                device.id,
                {"fields": sorted(changes)},
            )
            model = repo.model(device.model_id) if device.model_id is not None else None
            return _device_view(device, model)

    def _apply_device(
        self,
        repo: GasRegistryRepository,
        device: GasDevice,
        fields: Mapping[str, object],
        what: str,
        given: set[str],
    ) -> None:
        serial = _text(fields.get("serial"), f"{what}: 设备编号 serial", 64, required=True)
        assert serial is not None
        if not SERIAL_PATTERN.fullmatch(serial):
            # The serial names the device in its MQTT topic, its broker login and the
            # broker's password file: what those cannot carry is refused here.
            raise InvalidInput(
                f"{what}: 设备编号只能包含字母、数字和 _ . - 且以字母或数字开头 "
                "(serial: only A-Z a-z 0-9 _ . - , starting with a letter or digit)"
            )
        other = repo.device_by_serial(serial)
        if other is not None and other.id != device.id:
            raise Conflict(f"{what}: 设备编号 {serial} 已登记 (serial already registered)")
        business_id = fields.get("business_id")
        if not isinstance(business_id, int) or (
            repo.business(business_id, gas_scope(self.principal)) is None
        ):
            raise hidden("business", str(business_id))
        try:
            kind = DeviceKind(str(fields.get("kind")))
            gas = fields.get("gas_type")
            gas_type = GasType(str(gas)) if gas is not None else None
        except ValueError as exc:
            raise InvalidInput(f"{what}: {exc}") from None
        model_id = fields.get("model_id")
        model = None
        if model_id is not None:
            model = repo.model(model_id) if isinstance(model_id, int) else None
            if model is None:
                raise NotFound(f"{what}: device model {model_id} not found")
            if model.kind != kind.value:
                raise InvalidInput(
                    f"{what}: 型号 {model.code} 是 {model.kind}，设备是 {kind.value} "
                    f"(model {model.code} is a {model.kind}, the device a {kind.value})"
                )
        installed = fields.get("installed_on")
        if installed is not None and not isinstance(installed, date):
            raise InvalidInput(f"{what}: 安装日期 installed_on must be a date")
        if isinstance(installed, date) and installed > self._clock().date():
            raise InvalidInput(f"{what}: 安装日期 {installed} 晚于今天 (in the future)")
        due = fields.get("replacement_due")
        if due is not None and not isinstance(due, date):
            raise InvalidInput(f"{what}: 更换日期 replacement_due must be a date")
        recompute = "replacement_due" not in given and (
            {"installed_on", "model_id", "kind"} & given or not device.id
        )
        if recompute:
            months = model.service_months if model is not None else DEFAULT_SERVICE_MONTHS.get(kind)
            due = add_months(installed, months) if installed and months else None
        low = _lel(fields.get("low_lel"), f"{what}: 低报值 low_lel")
        high = _lel(fields.get("high_lel"), f"{what}: 高报值 high_lel")
        effective = _effective(low, high, model)
        _set_points(effective.low_lel, effective.high_lel, what)
        device.serial, device.business_id, device.kind = serial, business_id, kind.value
        device.model_id = model.id if model is not None else None
        device.gas_type = gas_type.value if gas_type is not None else None
        device.location = _text(fields.get("location"), f"{what}: 安装位置 location", 200)
        device.installed_on = installed if isinstance(installed, date) else None
        device.replacement_due = due if isinstance(due, date) else None
        device.low_lel, device.high_lel = low, high

    def remove_device(self, device_id: int) -> None:
        """Take a device out of service (kept, with its history; its credential stops)."""
        require(self.principal, Permission.EDIT_GAS)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            device = repo.device(device_id, gas_scope(self.principal))
            if device is None or device.removed_at is not None:
                raise hidden("device", device_id)
            device.removed_at = self._clock()
            device.credential_hash = None
            device.broker_hash = None
            session.flush()
            # Its active alarms end with it: nobody is called again about a device that is no
            # longer there (its open gas cases stay, to be closed on site).
            cleared = GasAlarmRepository(session).clear_device_alarms(
                device.id, device.removed_at, self.principal.actor, "device removed"
            )
            self._record(
                repo,
                AuditAction.GAS_DEVICE_REMOVE,
                "gas_device",
                device.id,
                {"business_id": device.business_id, "alarms_cleared": cleared},
            )

    def issue_credential(self, device_id: int) -> str:
        """A new credential for the device (its MQTT password / push token), returned once:
        only its SHA-256 is stored, and any earlier credential stops working."""
        require(self.principal, Permission.EDIT_GAS)
        secret = CREDENTIAL_PREFIX + secrets.token_urlsafe(24)
        with self.database.transaction() as session:
            repo = GasRegistryRepository(session)
            device = repo.device(device_id, gas_scope(self.principal))
            if device is None or device.removed_at is not None:
                raise hidden("device", device_id)
            rotated = device.credential_hash is not None
            device.credential_hash = credential_hash(secret)
            # The same credential as Mosquitto's password file wants it (gas mosquitto-config).
            device.broker_hash = mosquitto_hash(secret)
            session.flush()
            self._record(
                repo,
                AuditAction.GAS_DEVICE_CREDENTIAL,
                "gas_device",
                device.id,
                {"rotated": rotated},
            )
        return secret

    def device_id_of(self, key: str) -> int:
        """A device given by id or serial (in the caller's scope)."""
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasRegistryRepository(session)
            if key.strip().isdigit():
                device = repo.device(int(key), gas_scope(self.principal))
            else:
                found = repo.device_by_serial(key.strip())
                device = (
                    repo.device(found.id, gas_scope(self.principal)) if found is not None else None
                )
            if device is None:
                raise hidden("device", key)
            return device.id

    def business_id_of(self, key: str) -> int:
        """A business given by id or licence number (in the caller's scope)."""
        require(self.principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasRegistryRepository(session)
            if key.strip().isdigit():
                found: GasBusiness | None = repo.business(int(key), gas_scope(self.principal))
            else:
                by_licence = repo.business_by_licence(key.strip())
                found = (
                    repo.business(by_licence.id, gas_scope(self.principal))
                    if by_licence is not None
                    else None
                )
            if found is None:
                raise hidden("business", key)
            return found.id


_BUSINESS_FIELDS = ("name", "licence_no", "village_id", "house_id", "address", "category", "status")
_MODEL_FIELDS = (
    "code",
    "maker",
    "kind",
    "power",
    "offline_after_s",
    "service_months",
    "low_lel",
    "high_lel",
)
_DEVICE_FIELDS = (
    "business_id",
    "serial",
    "kind",
    "model_id",
    "gas_type",
    "location",
    "installed_on",
    "replacement_due",
    "low_lel",
    "high_lel",
)


def _business_fields(data: BusinessInput) -> dict[str, object]:
    return {k: getattr(data, k) for k in _BUSINESS_FIELDS}


def _model_fields(data: ModelInput) -> dict[str, object]:
    return {k: getattr(data, k) for k in _MODEL_FIELDS}


def _device_fields(data: DeviceInput) -> dict[str, object]:
    return {k: getattr(data, k) for k in _DEVICE_FIELDS}


def _summary(b: GasBusiness, house_address: str | None, devices: int) -> BusinessSummary:
    return BusinessSummary(
        id=b.id,
        name=b.name,
        licence_no=b.licence_no,
        village_id=b.village_id,
        house_id=b.house_id,
        address=house_address or b.address,
        category=b.category,
        status=b.status,
        devices=devices,
    )


def _model_view(m: GasDeviceModel) -> ModelView:
    return ModelView(
        id=m.id,
        code=m.code,
        maker=m.maker,
        kind=m.kind,
        power=m.power,
        offline_after_s=m.offline_after_s,
        service_months=m.service_months,
        low_lel=m.low_lel,
        high_lel=m.high_lel,
    )


def _effective(low: float | None, high: float | None, model: GasDeviceModel | None) -> SetPoints:
    """The device's set points, else the model's, else the defaults (25 / 50 %LEL)."""
    default = SetPoints()
    model_low = model.low_lel if model is not None else None
    model_high = model.high_lel if model is not None else None
    return SetPoints(
        low_lel=next(v for v in (low, model_low, default.low_lel) if v is not None),
        high_lel=next(v for v in (high, model_high, default.high_lel) if v is not None),
    )


def effective_set_points(device: GasDevice, model: GasDeviceModel | None) -> SetPoints:
    return _effective(device.low_lel, device.high_lel, model)


def _device_view(d: GasDevice, m: GasDeviceModel | None) -> DeviceView:
    points = _effective(d.low_lel, d.high_lel, m)
    return DeviceView(
        id=d.id,
        business_id=d.business_id,
        serial=d.serial,
        kind=d.kind,
        model_id=d.model_id,
        model_code=m.code if m is not None else None,
        gas_type=d.gas_type,
        location=d.location,
        installed_on=d.installed_on,
        replacement_due=d.replacement_due,
        low_lel=points.low_lel,
        high_lel=points.high_lel,
        own_low_lel=d.low_lel,
        own_high_lel=d.high_lel,
        offline_after_s=(
            m.offline_after_s if m is not None else DEFAULT_OFFLINE_AFTER_S[PowerSupply.MAINS]
        ),
        has_credential=d.credential_hash is not None,
        online=d.online,
        last_message_at=d.last_message_at,
        removed_at=d.removed_at,
    )
