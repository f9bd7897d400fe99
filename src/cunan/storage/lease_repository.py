"""Queries of the camera leases: conditional takes and renewals, inserts, releases and reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cunan.storage.database import rowcount
from cunan.storage.pipeline_tables import WorkerLease


class LeaseRepository:
    """Reads and writes ``worker_leases`` on one session (one transaction).

    Every change is one statement whose WHERE clause re-checks the lease (holder, expiry), or
    an INSERT the primary key guards, so two workers racing for a camera cannot both win,
    on SQLite or PostgreSQL, whatever they read before.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def take(self, camera_id: int, *, holder: str, now: datetime, until: datetime) -> bool:
        """Give the camera's lease to ``holder`` until ``until`` if it expired before ``now``
        or is already theirs; False if another holds it unexpired or there is no lease row."""
        result = self.session.execute(
            update(WorkerLease)
            .where(
                WorkerLease.camera_id == camera_id,
                (WorkerLease.expires_at < now) | (WorkerLease.holder == holder),
            )
            .values(holder=holder, expires_at=until, acquired_at=now)
        )
        return rowcount(result) == 1

    def exists(self, camera_id: int) -> bool:
        """Whether the camera has a lease row (held or expired)."""
        found = self.session.scalar(
            select(WorkerLease.camera_id).where(WorkerLease.camera_id == camera_id)
        )
        return found is not None

    def insert(self, camera_id: int, *, holder: str, now: datetime, until: datetime) -> None:
        """The camera's first lease. A row inserted meanwhile by another worker (or a camera
        removed) fails the flush; :meth:`Database.transaction` turns that into
        ``ConstraintViolationError``."""
        self.session.add(
            WorkerLease(camera_id=camera_id, holder=holder, expires_at=until, acquired_at=now)
        )
        self.session.flush()

    def renew(self, *, holder: str, now: datetime, until: datetime) -> None:
        """Extend ``holder``'s leases that have not expired by ``now`` to ``until``."""
        self.session.execute(
            update(WorkerLease)
            .where(WorkerLease.holder == holder, WorkerLease.expires_at >= now)
            .values(expires_at=until)
        )

    def held(self, *, holder: str, now: datetime) -> set[int]:
        """Cameras whose lease ``holder`` has, unexpired at ``now``."""
        return set(
            self.session.scalars(
                select(WorkerLease.camera_id).where(
                    WorkerLease.holder == holder, WorkerLease.expires_at >= now
                )
            )
        )

    def release(self, *, holder: str, camera_ids: Iterable[int] | None = None) -> None:
        """Delete ``holder``'s leases (only of ``camera_ids`` when given)."""
        query = delete(WorkerLease).where(WorkerLease.holder == holder)
        if camera_ids is not None:
            query = query.where(WorkerLease.camera_id.in_(list(camera_ids)))
        self.session.execute(query)

    def leases(self) -> Sequence[WorkerLease]:
        """Every lease row, expired ones included."""
        return self.session.scalars(select(WorkerLease)).all()
