"""The principal (who acts) and the one set of rules deciding what each role may read and change."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import StrEnum

from cunan.errors import Forbidden, NotFound
from cunan.storage.enums import UserRole


class Permission(StrEnum):
    """Things a caller may do; scoped ones (landlord) are narrowed by :func:`landlord_scope`."""

    READ_REGISTRY = "registry.read"
    EDIT_REGISTRY = "registry.edit"
    ENROL = "registry.enrol"
    IDENTIFY = "faces.identify"
    READ_CASES = "cases.read"
    EDIT_CASES = "cases.edit"
    READ_CAMERAS = "cameras.read"
    MANAGE_CAMERAS = "cameras.manage"
    READ_SIGHTINGS = "sightings.read"
    READ_DEPARTURES = "departures.read"
    REPORT_DEPARTURE = "departures.report"
    CONFIRM_TASK = "tasks.confirm"
    READ_STATS = "stats.read"
    READ_AUDIT = "audit.read"
    READ_PRIVACY = "privacy.read"
    MANAGE_USERS = "users.manage"
    MANAGE_SETTINGS = "settings.manage"
    READ_SETTINGS = "settings.read"
    READ_NOTIFY = "notify.read"
    MANAGE_NOTIFY = "notify.manage"
    READ_API_DOCS = "api.docs"
    OWN_ACCOUNT = "account.own"
    #: Gas module: businesses, devices, readings, alarms and gas cases (scoped for business
    #: and maintainer accounts by :func:`gas_scope`).
    READ_GAS = "gas.read"
    #: Businesses, contacts, device models and devices: add, change, import.
    EDIT_GAS = "gas.edit"
    #: Acknowledge a gas alarm and move its case through the on-site verification.
    HANDLE_GAS = "gas.handle"


_READ_ALL = frozenset(
    {
        Permission.READ_REGISTRY,
        Permission.READ_CASES,
        Permission.READ_CAMERAS,
        Permission.READ_SIGHTINGS,
        Permission.READ_DEPARTURES,
        Permission.READ_STATS,
        Permission.READ_SETTINGS,
        Permission.READ_NOTIFY,
        Permission.OWN_ACCOUNT,
        Permission.READ_GAS,
    }
)

#: What a business owner or a maintainer may do, inside their :func:`gas_scope`.
_GAS_CONTACT = frozenset({Permission.READ_GAS, Permission.HANDLE_GAS, Permission.OWN_ACCOUNT})

#: The rules. Admin: everything. Staff: casework, registry edits, enrolment, cameras; no
#: users, settings or audit. Auditor: reads everything incl. the audit log, changes nothing.
#: Landlord: only their own houses, rooms and tenants (scoped), move-out reports and tasks.
ROLE_PERMISSIONS: dict[UserRole, frozenset[Permission]] = {
    UserRole.ADMIN: frozenset(Permission),
    UserRole.STAFF: _READ_ALL
    | {
        Permission.EDIT_REGISTRY,
        Permission.ENROL,
        Permission.IDENTIFY,
        Permission.EDIT_CASES,
        Permission.MANAGE_CAMERAS,
        Permission.REPORT_DEPARTURE,
        Permission.CONFIRM_TASK,
        Permission.MANAGE_NOTIFY,
        Permission.EDIT_GAS,
        Permission.HANDLE_GAS,
    },
    UserRole.AUDITOR: _READ_ALL | {Permission.READ_AUDIT, Permission.READ_PRIVACY},
    UserRole.LANDLORD: frozenset(
        {
            Permission.READ_REGISTRY,
            Permission.READ_DEPARTURES,
            Permission.REPORT_DEPARTURE,
            Permission.CONFIRM_TASK,
            Permission.OWN_ACCOUNT,
        }
    ),
    UserRole.BUSINESS: _GAS_CONTACT,
    UserRole.MAINTAINER: _GAS_CONTACT,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: an account (or the local operator at the terminal) with its role and scope."""

    username: str
    role: UserRole
    user_id: int | None = None
    village_id: int | None = None
    #: The landlord record a landlord-role account speaks for (None: sees no house at all).
    landlord_id: int | None = None
    #: The API token acting (``via == "token"``); such a principal has no ``user_id``.
    token_id: int | None = None
    #: ``user`` (a web or API session), ``token`` (an integration), ``local`` (the command
    #: line or the server's own background work).
    via: str = "user"

    @property
    def actor(self) -> str:
        """The audit log's actor string."""
        if self.via == "local":
            # The command line, acting as this account (cunan.cliutil.cli_principal).
            return f"cli:{self.username}"[:100]
        if self.via == "token":
            return f"token:{self.token_id}"
        return f"user:{self.user_id}"

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def is_landlord(self) -> bool:
        return self.role is UserRole.LANDLORD


def local_principal(username: str | None = None) -> Principal:
    """The operator at the terminal of the data dir's machine: an administrator by being there.

    Whoever can read the key file can do everything anyway; naming them keeps the audit trail
    readable (``local:<os account>``).
    """
    try:
        name = username or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        name = "unknown"
    return Principal(username=name, role=UserRole.ADMIN, via="local")


def system_principal(component: str) -> Principal:
    """Background work acting on its own (case grouping, duties): admin rights, named."""
    return Principal(username=component, role=UserRole.ADMIN, via="local")


def require(principal: Principal, permission: Permission) -> None:
    """Refuse with :class:`~cunan.errors.Forbidden` unless the role grants ``permission``."""
    if not principal.may(permission):
        raise Forbidden(f"角色 {principal.role.value} 无权执行此操作 ({permission.value})")


def landlord_scope(principal: Principal) -> int | None:
    """The landlord id every registry query must be narrowed to, or None for no narrowing.

    A landlord account not linked to a landlord record gets -1: a scope that matches no
    house, so it sees nothing rather than everything.
    """
    if not principal.is_landlord:
        return None
    return principal.landlord_id if principal.landlord_id is not None else -1


def hidden(kind: str, record_id: int | str) -> NotFound:
    """The error for a record outside the caller's scope: exactly a missing record's."""
    return NotFound(f"{kind} {record_id} not found")


@dataclass(frozen=True, slots=True)
class GasScope:
    """The businesses a business or maintainer account sees: those where a ``gas_contacts``
    row with one of ``contact_roles`` names the account (``user_id``)."""

    user_id: int
    contact_roles: tuple[str, ...]


def gas_scope(principal: Principal) -> GasScope | None:
    """The narrowing every gas query applies, or None for no narrowing (admin, staff, auditor).

    A business account sees the businesses it is the owner or safety officer of; a maintainer
    the ones it is maintainer A or B of. An account with no user id (a token) gets user id -1:
    a scope that matches nothing, so it sees nothing rather than everything.
    """
    if principal.role is UserRole.BUSINESS:
        roles: tuple[str, ...] = ("owner", "safety_officer")
    elif principal.role is UserRole.MAINTAINER:
        roles = ("maintainer_a", "maintainer_b")
    else:
        return None
    return GasScope(
        user_id=principal.user_id if principal.user_id is not None else -1, contact_roles=roles
    )
