"""Queries over login sessions, API tokens and user accounts for the authentication service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cunan.storage.auth_tables import ApiToken, AuthSession, SettingOverride
from cunan.storage.database import rowcount
from cunan.storage.enums import UserRole
from cunan.storage.tables import Landlord, User


class AuthRepository:
    """Sessions, tokens and the account lookups logins need, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: AuthSession | ApiToken | User) -> None:
        self.session.add(row)
        self.session.flush()

    def user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def user_by_name(self, username: str) -> User | None:
        return self.session.scalar(select(User).where(User.username == username))

    def landlord_id_of_user(self, user_id: int) -> int | None:
        return self.session.scalar(select(Landlord.id).where(Landlord.user_id == user_id))

    def landlords_of_village(self, village_id: int) -> Sequence[Landlord]:
        """A village's landlords by name (to link a landlord account to its record)."""
        return self.session.scalars(
            select(Landlord)
            .where(Landlord.village_id == village_id)
            .order_by(Landlord.name, Landlord.id)
        ).all()

    def admins(self) -> Sequence[User]:
        return self.session.scalars(
            select(User).where(User.role == UserRole.ADMIN).order_by(User.id)
        ).all()

    def count_admins(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(User)
                .where(User.role == UserRole.ADMIN, User.disabled_at.is_(None))
            )
            or 0
        )

    def users(self, *, offset: int, limit: int) -> tuple[Sequence[User], int]:
        total = int(self.session.scalar(select(func.count()).select_from(User)) or 0)
        rows = self.session.scalars(select(User).order_by(User.id).offset(offset).limit(limit))
        return rows.all(), total

    def session_by_hash(self, token_hash: str) -> AuthSession | None:
        return self.session.scalar(select(AuthSession).where(AuthSession.token_hash == token_hash))

    def touch_sessions(self, seen: dict[int, datetime]) -> None:
        """Move sessions' "last seen" forward to the given times (never back). Row by row:
        a bulk UPDATE of the sessions table would count as a change that may end sessions
        (``AuthService`` drops every recently checked session then)."""
        for session_id, at in seen.items():
            row = self.session.get(AuthSession, session_id)
            if row is not None and row.last_seen_at < at:
                row.last_seen_at = at

    def revoke_sessions_of(self, user_id: int, now: datetime) -> int:
        return rowcount(
            self.session.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        )

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        return self.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))

    def token(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def tokens(self) -> Sequence[ApiToken]:
        return self.session.scalars(select(ApiToken).order_by(ApiToken.id)).all()


class SettingsRepository:
    """The settings changed from the web."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def overrides(self) -> Sequence[SettingOverride]:
        return self.session.scalars(select(SettingOverride).order_by(SettingOverride.key)).all()

    def put(self, key: str, value_json: str, changed_by: str, when: datetime) -> None:
        row = self.session.get(SettingOverride, key)
        if row is None:
            self.session.add(
                SettingOverride(
                    key=key, value_json=value_json, changed_by=changed_by, changed_at=when
                )
            )
        else:
            row.value_json, row.changed_by, row.changed_at = value_json, changed_by, when
        self.session.flush()
