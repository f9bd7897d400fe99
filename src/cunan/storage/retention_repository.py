"""Queries of the retention purge: old sightings, crops, outbox events, quiet faces, departed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from cunan.storage.case_tables import CaseQuietFace
from cunan.storage.database import rowcount
from cunan.storage.enums import PersonStatus
from cunan.storage.pipeline_tables import EventAck, OutboxEvent, Sighting
from cunan.storage.tables import Person, Tenancy


class RetentionRepository:
    """Counts (for dry runs) and deletes what the retention purge removes, on one session.

    "Unknown" sightings are every sighting not decided ``known`` (undecided ones too); a
    cutoff is exclusive: rows started (or created) exactly at it are kept.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- sightings and the events that repeat them -------------------------------------------

    def count_unknown_sightings(self, before: datetime) -> int:
        return self._count_sightings(_unknown_before(before))

    def count_known_sightings(self, before: datetime) -> int:
        return self._count_sightings(_known_before(before))

    def count_crops(
        self, before: datetime, *, unknown_before: datetime, known_before: datetime
    ) -> int:
        """Sightings started before ``before`` holding a crop or embedding, leaving out the ones
        the two sighting cutoffs delete whole."""
        return self._count_sightings(
            _crop_before(before) & ~_unknown_before(unknown_before) & ~_known_before(known_before)
        )

    def count_events(self, before: datetime) -> int:
        """Outbox events created before ``before``."""
        return int(
            self.session.scalar(select(func.count()).select_from(_events_before(before).subquery()))
            or 0
        )

    def delete_events(self, before: datetime) -> int:
        """Delete outbox events created before ``before`` and their acknowledgements."""
        self.session.execute(delete(EventAck).where(EventAck.event_id.in_(_events_before(before))))
        return rowcount(
            self.session.execute(delete(OutboxEvent).where(OutboxEvent.created_at < before))
        )

    def delete_unknown_sightings(self, before: datetime) -> int:
        return rowcount(self.session.execute(delete(Sighting).where(_unknown_before(before))))

    def delete_known_sightings(self, before: datetime) -> int:
        return rowcount(self.session.execute(delete(Sighting).where(_known_before(before))))

    def clear_crops(self, before: datetime) -> int:
        """Drop the crop and embedding of sightings started before ``before``; the sightings
        stay. Returns how many held one."""
        return rowcount(
            self.session.execute(
                update(Sighting)
                .where(_crop_before(before))
                .values(crop_ciphertext=None, embedding_ciphertext=None)
            )
        )

    def _count_sightings(self, condition: ColumnElement[bool]) -> int:
        return int(
            self.session.scalar(select(func.count()).select_from(Sighting).where(condition)) or 0
        )

    # -- cases' quiet faces ------------------------------------------------------------------

    def count_expired_visitor_faces(self, now: datetime) -> int:
        """Visitors' temporary faces whose date has come (the ones
        ``CaseService.purge_expired_visitors`` deletes)."""
        return self._count_quiet(
            (CaseQuietFace.kind == "visitor") & (CaseQuietFace.expires_at <= now)
        )

    def count_negative_examples(self, before: datetime) -> int:
        return self._count_quiet(_negative_before(before))

    def delete_negative_examples(self, before: datetime) -> int:
        """Delete false alarms' negative examples recorded before ``before``."""
        return rowcount(self.session.execute(delete(CaseQuietFace).where(_negative_before(before))))

    def _count_quiet(self, condition: ColumnElement[bool]) -> int:
        return int(
            self.session.scalar(select(func.count()).select_from(CaseQuietFace).where(condition))
            or 0
        )

    # -- departed people ---------------------------------------------------------------------

    def people_with_status(self, *statuses: PersonStatus) -> Sequence[Person]:
        return self.session.scalars(select(Person).where(Person.status.in_(statuses))).all()

    def last_move_outs(self, person_ids: Sequence[int]) -> dict[int, date]:
        """Person id -> the latest move-out among their tenancies (people without one left out)."""
        return {
            pid: day
            for pid, day in self.session.execute(
                select(Tenancy.person_id, func.max(Tenancy.move_out))
                .where(Tenancy.person_id.in_(person_ids), Tenancy.move_out.is_not(None))
                .group_by(Tenancy.person_id)
            )
            if day is not None
        }


def _unknown_before(cut: datetime) -> ColumnElement[bool]:
    return (Sighting.decision != "known") & (Sighting.started_at < cut)


def _known_before(cut: datetime) -> ColumnElement[bool]:
    return (Sighting.decision == "known") & (Sighting.started_at < cut)


def _crop_before(cut: datetime) -> ColumnElement[bool]:
    has_crop = or_(
        Sighting.crop_ciphertext.is_not(None), Sighting.embedding_ciphertext.is_not(None)
    )
    return (Sighting.started_at < cut) & has_crop


def _events_before(cut: datetime) -> Select[int]:
    # An outbox event repeats a sighting's who/where/when: it must not outlive the sighting.
    return select(OutboxEvent.id).where(OutboxEvent.created_at < cut)


def _negative_before(cut: datetime) -> ColumnElement[bool]:
    return (CaseQuietFace.kind == "negative") & (CaseQuietFace.created_at < cut)
