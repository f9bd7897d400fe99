"""The notification dead-letter table: notifications a channel could not deliver."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.tables import Base, utcnow


class DeadLetter(Base):
    """A notification that exhausted its retries on one channel, kept until replayed."""

    __tablename__ = "notify_dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The configured channel's name (e.g. ``webhook``), never its URL, which may hold a token.
    channel: Mapped[str] = mapped_column(String(64), index=True)
    notification_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    #: The notification as JSON, always without face data (it is not encrypted here).
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    replay_attempts: Mapped[int] = mapped_column(Integer, default=0)
    replayed_at: Mapped[datetime | None]


class NotifyChannel(Base):
    """A notification channel added from the web (settings page), beside the TOML file's.

    The whole channel's settings (URL, robot key, signing secret) are one AES-GCM value under
    the data key, bound to the row (``notify-channel:<id>``): robot keys and secrets post
    into the village's groups, so they are kept like camera passwords."""

    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Unique among all channels (the TOML file's too); dead letters refer to it.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``webhook``, ``wecom`` or ``dingtalk``.
    kind: Mapped[str] = mapped_column(String(16))
    config_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
