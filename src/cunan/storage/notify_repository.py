"""Queries of the notification dead letters: add, list and look up."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cunan.storage.notify_tables import DeadLetter


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
