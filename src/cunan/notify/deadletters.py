"""The dead-letter list: notifications a channel gave up on, to inspect and replay."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cunan.notify.errors import NotificationError, UnknownChannelError
from cunan.notify.message import Notification, Notifier, from_payload, to_payload
from cunan.storage.database import Database
from cunan.storage.notify_repository import DeadLetterRepository
from cunan.storage.notify_tables import DeadLetter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    id: int
    channel: str
    notification_id: str
    kind: str
    attempts: int
    last_error: str
    failed_at: datetime
    replay_attempts: int
    replayed_at: datetime | None

    @classmethod
    def from_row(cls, row: DeadLetter) -> DeadLetterView:
        return cls(
            id=row.id,
            channel=row.channel,
            notification_id=row.notification_id,
            kind=row.kind,
            attempts=row.attempts,
            last_error=row.last_error,
            failed_at=row.failed_at,
            replay_attempts=row.replay_attempts,
            replayed_at=row.replayed_at,
        )


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    id: int
    channel: str
    delivered: bool
    error: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeadLetterStore:
    """Adds, lists and replays dead letters (``notify_dead_letters``)."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._database = database
        self._clock = clock

    def add(self, channel: str, notification: Notification, error: NotificationError) -> int:
        # Face data is never kept here, whatever the channels send: this table is not
        # encrypted, and a replay is a late alert, not evidence.
        payload = json.dumps(to_payload(notification), ensure_ascii=False, sort_keys=True)
        with self._database.transaction() as session:
            row = DeadLetterRepository(session).add(
                DeadLetter(
                    channel=channel,
                    notification_id=notification.id,
                    kind=notification.kind,
                    payload=payload,
                    attempts=error.attempts,
                    last_error=str(error)[:500],
                    failed_at=self._clock(),
                    replay_attempts=0,
                    replayed_at=None,
                )
            )
            return row.id

    def pending(self, *, include_replayed: bool = False) -> list[DeadLetterView]:
        with self._database.read() as session:
            rows = DeadLetterRepository(session).letters(include_replayed=include_replayed)
            return [DeadLetterView.from_row(r) for r in rows]

    def notification(self, letter_id: int) -> Notification:
        with self._database.read() as session:
            row = _letter(DeadLetterRepository(session), letter_id)
            return from_payload(json.loads(row.payload))

    def replay(self, letter_id: int, channels: Mapping[str, Notifier]) -> ReplayOutcome:
        """Send one dead letter again on its channel; delivered ones are kept, marked replayed."""
        with self._database.transaction() as session:
            row = _letter(DeadLetterRepository(session), letter_id)
            if row.replayed_at is not None:
                return ReplayOutcome(letter_id, row.channel, delivered=True)
            channel, payload = row.channel, row.payload
        notifier = channels.get(channel)
        if notifier is None:
            raise UnknownChannelError(
                f"dead letter {letter_id} is for channel {channel!r}, which is not configured"
            )
        # Sent outside any transaction: a slow receiver must not hold the database's write lock.
        error: NotificationError | None = None
        try:
            notifier.send(from_payload(json.loads(payload)))
        except NotificationError as exc:
            error = exc
        with self._database.transaction() as session:
            marked = DeadLetterRepository(session).letter(letter_id)
            assert marked is not None  # rows are only ever added or marked
            marked.replay_attempts += 1
            if error is None:
                marked.replayed_at = self._clock()
            else:
                marked.last_error = str(error)[:500]
        if error is not None:
            logger.warning("replay of dead letter %d on %s failed: %s", letter_id, channel, error)
            return ReplayOutcome(letter_id, channel, delivered=False, error=str(error))
        logger.info("dead letter %d replayed on %s", letter_id, channel)
        return ReplayOutcome(letter_id, channel, delivered=True)

    def replay_all(self, channels: Mapping[str, Notifier]) -> list[ReplayOutcome]:
        return [self.replay(letter.id, channels) for letter in self.pending()]


def _letter(repo: DeadLetterRepository, letter_id: int) -> DeadLetter:
    row = repo.letter(letter_id)
    if row is None:
        raise LookupError(f"no dead letter {letter_id}")
    return row
