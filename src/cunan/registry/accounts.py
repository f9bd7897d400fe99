"""User accounts: argon2 password hashes, roles, and landlords linked to their houses."""

from __future__ import annotations

import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from cunan.audit.log import AuditAction, AuditLog, DetailValue, system_actor, user_actor
from cunan.registry.errors import InvalidRecordError, NotFoundError
from cunan.registry.records import UserView
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from cunan.storage.repositories import RegistryRepository
from cunan.storage.tables import User, utcnow

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8


class AccountService:
    """Create users and check their passwords; one transaction per call.

    With an ``audit`` log, user creation, logins and failed logins are recorded in the same
    transaction (ids and reason codes only: never the username tried or the password).
    """

    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher | None = None,
        *,
        audit: AuditLog | None = None,
        actor: str | None = None,
    ) -> None:
        self.database = database
        self._hasher = hasher or PasswordHasher()
        self.audit = audit
        #: Who creates users (``cli:<account>``, ``user:<id>``); logins name the user.
        self.actor = actor or system_actor()

    def _audit(
        self,
        session: Session,
        action: str,
        *,
        actor: str,
        user_id: int | None,
        details: dict[str, DetailValue] | None = None,
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                action,
                actor=actor,
                target_type="user" if user_id is not None else None,
                target_id=user_id,
                details=details,
                session=session,
            )

    def create_user(
        self,
        username: str,
        password: str,
        role: UserRole,
        *,
        display_name: str | None = None,
        village_id: int | None = None,
    ) -> int:
        username = username.strip()
        if not username:
            raise InvalidRecordError("username is required")
        check_password_strength(password)
        password_hash = self._hasher.hash(password)
        with self.database.transaction() as session:
            repo = RegistryRepository(session)
            if repo.user_by_name(username) is not None:
                raise InvalidRecordError(f"user {username!r} already exists")
            user = repo.add(
                User(
                    username=username,
                    display_name=display_name,
                    role=role,
                    password_hash=password_hash,
                    village_id=village_id,
                )
            )
            self._audit(
                session,
                AuditAction.USER_CREATE,
                actor=self.actor,
                user_id=user.id,
                details={"role": role.value, "village_id": village_id},
            )
            return user.id

    def authenticate(self, username: str, password: str) -> UserView | None:
        """The user if the password is right (and the account enabled), else None."""
        with self.database.transaction() as session:
            repo = RegistryRepository(session)
            user = repo.user_by_name(username.strip())
            if user is None or user.disabled_at is not None:
                # Same work as a real check, so timing does not tell which usernames exist.
                self._hasher.hash(password)
                self._audit(
                    session,
                    AuditAction.LOGIN_FAILED,
                    # Whoever tried is not known to be that user: the service's actor.
                    actor=self.actor,
                    user_id=None if user is None else user.id,
                    details={"reason": "unknown_user" if user is None else "disabled"},
                )
                return None
            try:
                self._hasher.verify(user.password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                self._audit(
                    session,
                    AuditAction.LOGIN_FAILED,
                    actor=self.actor,
                    user_id=user.id,
                    details={"reason": "bad_password"},
                )
                return None
            if self._hasher.check_needs_rehash(user.password_hash):
                user.password_hash = self._hasher.hash(password)
            self._audit(session, AuditAction.LOGIN, actor=user_actor(user.id), user_id=user.id)
            return _view(user)

    def disable_user(self, user_id: int) -> None:
        with self.database.transaction() as session:
            user = RegistryRepository(session).user(user_id)
            if user is None:
                raise NotFoundError("user", user_id)
            user.disabled_at = utcnow()

    def link_landlord(self, landlord_id: int, user_id: int) -> None:
        """Let a landlord-role user see and report for the houses of ``landlord_id``."""
        with self.database.transaction() as session:
            repo = RegistryRepository(session)
            user = repo.user(user_id)
            if user is None:
                raise NotFoundError("user", user_id)
            if user.role is not UserRole.LANDLORD:
                raise InvalidRecordError(f"user {user_id} has role {user.role}, not landlord")
            landlord = repo.landlord(landlord_id)
            if landlord is None:
                raise NotFoundError("landlord", landlord_id)
            landlord.user_id = user_id

    def houses_of_user(self, user_id: int) -> list[int]:
        """Ids of the houses a landlord user owns (empty for other roles)."""
        with self.database.transaction() as session:
            repo = RegistryRepository(session)
            landlord = repo.landlord_of_user(user_id)
            if landlord is None:
                return []
            return [h.id for h in repo.houses_of_landlord(landlord.id)]

    def count_users(self) -> int:
        with self.database.transaction() as session:
            return RegistryRepository(session).count_users()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRecordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def _view(user: User) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        role=user.role,
        display_name=user.display_name,
        village_id=user.village_id,
    )
