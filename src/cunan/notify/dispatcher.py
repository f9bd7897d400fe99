"""Fans one notification out to every configured channel, each failure kept to its channel."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cunan.notify.deadletters import DeadLetterStore
from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, Notifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """Which channels took the notification, and which failed (with their dead-letter ids)."""

    notification_id: str
    delivered: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    dead_letters: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class NotificationDispatcher:
    """Sends to all channels in parallel: a channel that is down (and busy retrying) neither
    blocks nor breaks the others. Failures become dead letters when a store is given."""

    def __init__(
        self,
        channels: Mapping[str, Notifier],
        *,
        dead_letters: DeadLetterStore | None = None,
        max_workers: int = 4,
    ) -> None:
        self.channels = dict(channels)
        self._dead_letters = dead_letters
        self._lock = threading.Lock()
        # Threads start only when there is something to send: an installation without
        # channels (yet: they can be added from the settings page) keeps none.
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, max_workers), thread_name_prefix="cunan-notify"
        )

    def set_channels(self, channels: Mapping[str, Notifier]) -> None:
        """Send to these channels from now on (a channel changed on the settings page);
        a dispatch already under way finishes on the channels it started with."""
        with self._lock:
            self.channels = dict(channels)

    def dispatch(self, notification: Notification) -> DispatchReport:
        """Send everywhere and wait until every channel has delivered or given up."""
        with self._lock:
            channels = dict(self.channels)
        futures: dict[str, Future[None]] = {
            name: self._pool.submit(notifier.send, notification)
            for name, notifier in channels.items()
        }
        delivered: list[str] = []
        failed: dict[str, str] = {}
        dead: dict[str, int] = {}
        for name, future in futures.items():
            try:
                future.result()
                delivered.append(name)
            except NotificationError as exc:
                failed[name] = str(exc)
                letter = self._bury(name, notification, exc)
                if letter is not None:
                    dead[name] = letter
            except Exception as exc:
                logger.exception("channel %s crashed on notification %s", name, notification.id)
                error = NotificationError(name, f"internal error ({type(exc).__name__})")
                failed[name] = str(error)
                letter = self._bury(name, notification, error)
                if letter is not None:
                    dead[name] = letter
        return DispatchReport(notification.id, tuple(delivered), failed, dead)

    def _bury(self, name: str, notification: Notification, error: NotificationError) -> int | None:
        # The error text names channel, host and status only, never the notification's text.
        logger.warning(
            "notification %s (%s) not delivered on %s after %d tries: %s",
            notification.id,
            notification.kind,
            name,
            error.attempts,
            error,
        )
        if self._dead_letters is None:
            return None
        try:
            return self._dead_letters.add(name, notification, error)
        except Exception:
            logger.exception("could not store dead letter for notification %s", notification.id)
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
