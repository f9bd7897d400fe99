"""Login throttling: failed attempts counted per account and per client address in a window."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class LoginThrottle:
    """Sliding-window failure counts; a key with too many recent failures is locked.

    Kept in memory: one ``cunan serve`` process answers logins, and a restart forgetting
    the counts costs an attacker a restart they cannot cause. ``monotonic`` makes it immune
    to clock changes.
    """

    def __init__(
        self,
        *,
        max_per_account: int,
        max_per_client: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"account": max_per_account, "client": max_per_client}
        self._window = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self._window:
            times.popleft()
        return times

    def locked(self, account: str, client: str) -> str | None:
        """``"account"`` or ``"client"`` when that one is locked out now, else None."""
        now = self._clock()
        with self._lock:
            for kind, value in (("account", account.casefold()), ("client", client)):
                if len(self._recent((kind, value), now)) >= self._limits[kind]:
                    return kind
        return None

    def failed(self, account: str, client: str) -> None:
        now = self._clock()
        with self._lock:
            self._recent(("account", account.casefold()), now).append(now)
            self._recent(("client", client), now).append(now)

    def succeeded(self, account: str) -> None:
        """A right password clears the account's count (not the client's)."""
        with self._lock:
            self._failures.pop(("account", account.casefold()), None)

    def retry_after_s(self, account: str, client: str) -> float:
        """Seconds until the oldest counted failure of a locked key leaves the window."""
        now = self._clock()
        with self._lock:
            waits = [
                times[0] + self._window - now
                for key in (("account", account.casefold()), ("client", client))
                if (times := self._recent(key, now))
            ]
        return max(0.0, min(waits)) if waits else 0.0
