"""Case digests (counts, days, cameras, best sightings) kept per case version between reads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cunan.storage.cases_repository import MemberDigest

#: Cases whose digests are kept (the most recently read ones); a listing shows 20-25.
DIGEST_CACHE_SIZE = 4096
#: A kept digest is computed again after this long even if its case's version did not
#: change: the bound on how stale a digest gets when another process deletes sightings
#: (a retention purge run from the command line while ``cunan serve`` runs). Deletions in
#: this process drop every digest at their commit.
DIGEST_MAX_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class _Kept:
    version: int
    digest: MemberDigest
    computed: float
    generation: int


class DigestCache:
    """A case's :class:`MemberDigest` for the case ``version`` it was computed at.

    Every change to a case's members (a sighting joins, a merge, a split) increments its
    version in the same transaction, so a digest read in one snapshot together with the
    case row's version holds for exactly that version. Only digests read in read-only
    transactions are put here: a write transaction's own could still roll back.
    """

    def __init__(
        self,
        *,
        size: int = DIGEST_CACHE_SIZE,
        max_age_s: float = DIGEST_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.max_age_s = max_age_s
        self._clock = clock
        self._kept: OrderedDict[int, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    @property
    def generation(self) -> int:
        """Read before computing digests and pass to :meth:`put`: a deletion committed
        meanwhile makes them unfit to keep."""
        with self._lock:
            return self._generation

    def get(self, case_id: int, version: int) -> MemberDigest | None:
        """The digest kept for this version of the case, or None."""
        with self._lock:
            kept = self._kept.get(case_id)
            if (
                kept is None
                or kept.version != version
                or kept.generation != self._generation
                or self._clock() - kept.computed > self.max_age_s
            ):
                self.misses += 1
                return None
            self._kept.move_to_end(case_id)
            self.hits += 1
            return kept.digest

    def put(self, entries: Iterable[tuple[int, int, MemberDigest]], generation: int) -> None:
        """Keep (case id, version, digest) computed after :attr:`generation` was read."""
        now = self._clock()
        with self._lock:
            if generation != self._generation:
                return
            for case_id, version, digest in entries:
                self._kept[case_id] = _Kept(version, digest, now, generation)
                self._kept.move_to_end(case_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        """Drop every digest (sightings were deleted: counts and best crops changed without
        a version change)."""
        with self._lock:
            self._generation += 1
            self._kept.clear()
