"""Queries of the notification dead letters: add, list and look up."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cunan.storage.notify_tables import DeadLetter, NotifyChannel


class DeadLetterRepository:
    """Reads and writes ``notify_dead_letters`` on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, letter: DeadLetter) -> DeadLetter:
        """Store a dead letter; its id is assigned at once."""
        self.session.add(letter)
        self.session.flush()
        return letter

    def letter(self, letter_id: int) -> DeadLetter | None:
        return self.session.get(DeadLetter, letter_id)

    def letters(self, *, include_replayed: bool = False) -> Sequence[DeadLetter]:
        """Dead letters in id order; those delivered by a replay only if asked."""
        query = select(DeadLetter).order_by(DeadLetter.id)
        if not include_replayed:
            query = query.where(DeadLetter.replayed_at.is_(None))
        return self.session.scalars(query).all()


class NotifyChannelRepository:
    """The notification channels added from the web (``notify_channels``), on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def channels(self) -> Sequence[NotifyChannel]:
        return self.session.scalars(select(NotifyChannel).order_by(NotifyChannel.name)).all()

    def channel(self, channel_id: int) -> NotifyChannel | None:
        return self.session.get(NotifyChannel, channel_id)

    def name_taken(self, name: str, *, other_than: int | None = None) -> bool:
        query = select(NotifyChannel.id).where(NotifyChannel.name == name)
        if other_than is not None:
            query = query.where(NotifyChannel.id != other_than)
        return self.session.scalar(query) is not None

    def add(self, row: NotifyChannel) -> NotifyChannel:
        """Store a channel; its id (part of its ciphertext's associated data) at once."""
        self.session.add(row)
        self.session.flush()
        return row

    def remove(self, row: NotifyChannel) -> None:
        self.session.delete(row)
        self.session.flush()

    def expunge(self, row: NotifyChannel) -> None:
        self.session.expunge(row)
