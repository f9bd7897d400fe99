"""Retries with exponential backoff around any channel."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, Notifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; waits ``initial_s``, then doubling, capped at ``max_s``."""

    attempts: int = 4
    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    #: Fraction of each wait drawn at random, so many villages don't retry in lockstep.
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial_s < 0 or self.max_s < 0 or self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff times must be >= 0, multiplier >= 1, jitter in [0, 1]")

    def delay(self, failed_attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failed_attempt``-th try (1-based)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** (failed_attempt - 1))
        return base * (1 - self.jitter * rng())


class RetryingNotifier:
    """A notifier that retries another one; raises the last error once attempts run out."""

    def __init__(
        self,
        inner: Notifier,
        policy: RetryPolicy,
        *,
        channel: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.channel = channel
        self._sleep = sleep

    def send(self, notification: Notification) -> None:
        for attempt in range(1, self.policy.attempts + 1):
            try:
                self.inner.send(notification)
                return
            except NotificationError as exc:
                if not exc.retryable or attempt == self.policy.attempts:
                    exc.attempts = attempt
                    raise
                wait = self.policy.delay(attempt)
                logger.info(
                    "notification %s on %s failed (try %d of %d: %s); retrying in %.1f s",
                    notification.id,
                    self.channel,
                    attempt,
                    self.policy.attempts,
                    exc,
                    wait,
                )
                self._sleep(wait)
