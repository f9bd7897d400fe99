"""The notification dead-letter table: notifications a channel could not deliver."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
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
