"""Login throttling: failed attempts counted per account and per client address in a window."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

#: Keys (accounts and addresses) the throttle remembers at most.
MAX_KEYS = 10_000


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
        self._reported: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self._window:
            times.popleft()
        return times

    def _count(self, key: tuple[str, str], now: float) -> int:
        """Recent failures of ``key`` without creating an entry for it (a flood of
        made-up usernames must not grow the table)."""
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
        return len(times)

    def _prune(self, now: float) -> None:
        """Bound memory: past MAX_KEYS entries, drop the stale ones, then the oldest."""
        if len(self._failures) <= MAX_KEYS:
            return
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self._window]:
            del self._failures[key]
        while len(self._failures) > MAX_KEYS:
            oldest = min(self._failures, key=lambda k: self._failures[k][-1])
            del self._failures[oldest]

    def first_refusal(self, account: str, client: str) -> bool:
        """True once per window for a locked (account, client): the refusal worth auditing
        (every further attempt is refused too, but recording each would let an attacker
        fill the audit log)."""
        now = self._clock()
        key = (account.casefold(), client)
        with self._lock:
            last = self._reported.get(key)
            if last is not None and last > now - self._window:
                return False
            self._reported[key] = now
            if len(self._reported) > MAX_KEYS:
                self._reported = {k: t for k, t in self._reported.items() if t > now - self._window}
            return True

    def locked(self, account: str, client: str) -> str | None:
        """``"account"`` or ``"client"`` when that one is locked out now, else None."""
        now = self._clock()
        with self._lock:
            for kind, value in (("account", account.casefold()), ("client", client)):
                if self._count((kind, value), now) >= self._limits[kind]:
                    return kind
        return None

    def failed(self, account: str, client: str) -> None:
        now = self._clock()
        with self._lock:
            self._recent(("account", account.casefold()), now).append(now)
            self._recent(("client", client), now).append(now)
            self._prune(now)

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
                if self._count(key, now) and (times := self._failures[key])
            ]
        return max(0.0, min(waits)) if waits else 0.0
