"""Login sessions, API tokens (only hashes of their secrets) and settings changed from the web."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.enums import UserRole
from cunan.storage.tables import Base, _enum, utcnow


class AuthSession(Base):
    """A logged-in browser or client: the cookie holds the token, the row its SHA-256."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Absolute expiry: the session ends then however active it is.
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    #: The client address at login (for the audit trail and the user's session list).
    client: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A token an administrator issued to an integration, with the role it acts in."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "api_token_role"))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SettingOverride(Base):
    """A setting an administrator changed from the web: applied over the TOML file."""

    __tablename__ = "setting_overrides"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: The value as JSON (validated against the setting's type before it is stored).
    value_json: Mapped[str] = mapped_column(String(200))
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
