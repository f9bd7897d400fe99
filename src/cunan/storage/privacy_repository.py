"""Read-only counts behind the auditor's privacy report: consents, purges, 1:N searches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from cunan.storage.audit_tables import AuditEntry
from cunan.storage.tables import Consent, User

#: The audit actions that record face data or sightings deleted by retention or on purpose.
PURGE_ACTIONS = ("purge", "template.purge")
#: The audit action of a 1:N face search ("who is this?").
SEARCH_ACTION = "search"


def user_of_actor(actor: str) -> int | None:
    """The user id of an actor written as ``user:<id>``, else None."""
    kind, _, number = actor.partition(":")
    return int(number) if kind == "user" and number.isdigit() else None


class PrivacyRepository:
    """Counts over consents and the audit log on one session; it only reads."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def consents_collected(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Consents collected in [start, end) (all of them without bounds)."""
        query = select(func.count(Consent.id))
        if start is not None:
            query = query.where(Consent.collected_at >= start)
        if end is not None:
            query = query.where(Consent.collected_at < end)
        return int(self.session.scalar(query) or 0)

    def consents_withdrawn(self, start: datetime | None = None, end: datetime | None = None) -> int:
        """Consents withdrawn in [start, end) (all withdrawals without bounds)."""
        query = select(func.count(Consent.id)).where(Consent.withdrawn_at.is_not(None))
        if start is not None:
            query = query.where(Consent.withdrawn_at >= start)
        if end is not None:
            query = query.where(Consent.withdrawn_at < end)
        return int(self.session.scalar(query) or 0)

    def people_with_valid_consent(self) -> int:
        """People holding at least one consent that was not withdrawn."""
        return int(
            self.session.scalar(
                select(func.count(func.distinct(Consent.person_id))).where(
                    Consent.withdrawn_at.is_(None)
                )
            )
            or 0
        )

    def purges(self, start: datetime, end: datetime, *, limit: int) -> tuple[list[AuditEntry], int]:
        """The purge entries recorded in [start, end), newest first (at most ``limit``), and
        how many there are."""
        where = (
            AuditEntry.action.in_(PURGE_ACTIONS),
            AuditEntry.recorded_at >= start,
            AuditEntry.recorded_at < end,
        )
        total = int(self.session.scalar(select(func.count()).where(*where)) or 0)
        rows = self.session.scalars(
            select(AuditEntry).where(*where).order_by(AuditEntry.seq.desc()).limit(limit)
        )
        return list(rows), total

    def searches_per_actor_per_day(
        self, boundaries: Sequence[datetime]
    ) -> list[tuple[str, int, int]]:
        """(actor, day index, searches) of the 1:N searches recorded in each day: day ``i`` is
        [``boundaries[i]``, ``boundaries[i + 1]``). Bucketed in SQL with plain comparisons, so
        the village's local midnights hold on both engines and no entry is loaded."""
        if len(boundaries) < 2:
            return []
        inner = boundaries[1:-1]
        day = (
            case(*[(AuditEntry.recorded_at < b, i) for i, b in enumerate(inner)], else_=len(inner))
            if inner
            else literal(0)
        )
        bucketed = (
            select(AuditEntry.actor.label("actor"), day.label("day"))
            .where(
                AuditEntry.action == SEARCH_ACTION,
                AuditEntry.recorded_at >= boundaries[0],
                AuditEntry.recorded_at < boundaries[-1],
            )
            .subquery()
        )
        rows = self.session.execute(
            select(bucketed.c.actor, bucketed.c.day, func.count()).group_by(
                bucketed.c.actor, bucketed.c.day
            )
        )
        return [(str(actor), int(i), int(n)) for actor, i, n in rows]

    def usernames(self, user_ids: Sequence[int]) -> dict[int, str]:
        """Account names of these user ids (for actors written as ``user:<id>``)."""
        if not user_ids:
            return {}
        rows = self.session.execute(
            select(User.id, User.username).where(User.id.in_(list(user_ids)))
        )
        return {int(i): str(name) for i, name in rows}

    def user_id_named(self, username: str) -> int | None:
        """The id of the account called ``username``, if there is one."""
        found = self.session.scalar(select(User.id).where(User.username == username))
        return None if found is None else int(found)
