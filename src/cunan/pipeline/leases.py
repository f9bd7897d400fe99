"""Camera leases in the database: several workers share the cameras; a dead worker's expire."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from cunan.storage.database import Database
from cunan.storage.errors import ConstraintViolationError
from cunan.storage.lease_repository import LeaseRepository

logger = logging.getLogger(__name__)


def default_holder() -> str:
    """A holder id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class CameraLeases:
    """Claims, renews and releases camera leases for one worker (``holder``).

    A lease row per camera says who runs it until when. A worker renews its leases every
    ``period_s / 3`` or so; a worker that dies stops renewing, and after at most
    ``period_s`` any other worker's :meth:`claim` takes the camera over. Every change is a
    conditional single-row UPDATE or an INSERT guarded by the primary key, so two workers
    can never both believe they hold a camera after their statements commit. Expiry is
    judged by this worker's clock: hosts must keep their clocks in sync (NTP), and
    ``period_s`` should be much larger than the expected skew.
    """

    def __init__(
        self,
        database: Database,
        *,
        holder: str | None = None,
        period_s: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if period_s <= 0:
            raise ValueError("lease period must be > 0 s")
        self.database = database
        self.holder = holder or default_holder()
        self.period = timedelta(seconds=period_s)
        self._clock = clock or (lambda: datetime.now(UTC))

    def claim(self, camera_ids: Iterable[int], *, limit: int | None = None) -> set[int]:
        """Try to take each camera that nobody holds (or whose lease expired); returns all
        cameras this worker holds afterwards (at most ``limit`` new and old together)."""
        held = self.held()
        for camera_id in camera_ids:
            if camera_id in held:
                continue
            if limit is not None and len(held) >= limit:
                break
            if self._take(camera_id):
                held.add(camera_id)
                logger.info("lease: %s took camera %d", self.holder, camera_id)
        return held

    def _take(self, camera_id: int) -> bool:
        now = self._clock()
        expires = now + self.period
        with self.database.transaction() as session:
            leases = LeaseRepository(session)
            if leases.take(camera_id, holder=self.holder, now=now, until=expires):
                return True
            if leases.exists(camera_id):
                return False
        # A camera nobody ever held has no row to update: insert one. Of two workers that both
        # got here, the primary key lets one win.
        try:
            with self.database.transaction() as session:
                LeaseRepository(session).insert(
                    camera_id, holder=self.holder, now=now, until=expires
                )
        except ConstraintViolationError:
            return False  # another worker inserted it first (or the camera was removed)
        return True

    def renew(self) -> set[int]:
        """Extend this worker's unexpired leases; returns the cameras still held.

        A lease that already expired is not renewed: another worker may have taken it, and
        this worker must stop that camera (it will try to :meth:`claim` it again).
        """
        now = self._clock()
        with self.database.transaction() as session:
            LeaseRepository(session).renew(holder=self.holder, now=now, until=now + self.period)
        return self.held()

    def held(self) -> set[int]:
        now = self._clock()
        with self.database.transaction() as session:
            return LeaseRepository(session).held(holder=self.holder, now=now)

    def release(self, camera_ids: Iterable[int] | None = None) -> None:
        """Give cameras back at once (a clean shutdown), so others need not wait for expiry."""
        with self.database.transaction() as session:
            LeaseRepository(session).release(holder=self.holder, camera_ids=camera_ids)

    def holders(self) -> dict[int, tuple[str, datetime]]:
        """Every lease: camera id -> (holder, expiry)."""
        with self.database.transaction() as session:
            return {
                row.camera_id: (row.holder, row.expires_at)
                for row in LeaseRepository(session).leases()
            }
