"""Queries of the camera pipeline: cameras, sightings, outbox events and their acknowledgements."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from cunan.storage.case_tables import CaseParkedEvent
from cunan.storage.database import rowcount
from cunan.storage.pipeline_tables import Camera, EventAck, OutboxEvent, Sighting


class CameraRepository:
    """Reads and writes ``cameras`` on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def flush(self) -> None:
        """Send pending changes of loaded rows now (constraint errors surface here)."""
        self.session.flush()

    def add(self, row: Camera) -> int:
        """Store a new camera row; returns its id. A taken name or an unknown place fails the
        flush; :meth:`Database.transaction` turns that into ``ConstraintViolationError``."""
        self.session.add(row)
        self.session.flush()
        return row.id

    def cameras(self, *, enabled_only: bool = False) -> Sequence[Camera]:
        """Every camera (only enabled ones with ``enabled_only``), in id order."""
        query = select(Camera).order_by(Camera.id)
        if enabled_only:
            query = query.where(Camera.enabled.is_(True))
        return self.session.scalars(query).all()

    def by_id(self, camera_id: int) -> Camera | None:
        return self.session.get(Camera, camera_id)

    def by_name(self, name: str) -> Camera | None:
        return self.session.scalars(select(Camera).where(Camera.name == name)).first()

    def delete(self, camera: Camera) -> None:
        """Remove a loaded camera (written at the next flush or the commit)."""
        self.session.delete(camera)


class SightingRepository:
    """Reads and writes ``sightings`` on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def id_of_track(self, camera_id: int | None, track_key: str) -> int | None:
        """The id of the sighting already stored for this camera's track, if any."""
        same_camera = (
            Sighting.camera_id == camera_id
            if camera_id is not None
            else Sighting.camera_id.is_(None)
        )
        return self.session.scalars(
            select(Sighting.id).where(same_camera, Sighting.track_key == track_key)
        ).first()

    def add(self, row: Sighting) -> Sighting:
        """Store a new sighting row without its ciphertexts and assign its id: the id is part
        of the ciphertexts' associated data, so the caller encrypts afterwards and sets them."""
        self.session.add(row)
        self.session.flush()
        return row

    def sightings(self, *, camera_id: int | None = None, limit: int = 1000) -> Sequence[Sighting]:
        """The first ``limit`` sightings in id order, optionally of one camera."""
        query = select(Sighting).order_by(Sighting.id).limit(limit)
        if camera_id is not None:
            query = query.where(Sighting.camera_id == camera_id)
        return self.session.scalars(query).all()

    def sighting(self, sighting_id: int) -> Sighting | None:
        return self.session.get(Sighting, sighting_id)

    def forget_person(self, person_id: int) -> tuple[int, int]:
        """Remove a person from the sightings at once (not at the next purge): the crop and
        embedding of every sighting decided as them, or with a face decided as them, are
        deleted, and their id is taken out of the decision details and the ``person_id``
        link. Returns (sightings unlinked, crops deleted)."""
        ident = str(person_id)
        rows = self.session.scalars(
            select(Sighting).where(
                or_(
                    Sighting.person_id == person_id,
                    # Identities are JSON strings in the details ("identity": "42").
                    Sighting.details_json.like(f'%"{ident}"%'),
                )
            )
        ).all()
        unlinked = crops = 0
        for row in rows:
            details = json.loads(row.details_json)
            theirs = row.person_id == person_id or any(
                isinstance(face, dict)
                and face.get("decision") == "known"
                and face.get("identity") == ident
                for face in details.get("faces", ())
            )
            scrubbed = _scrub_identity(details, ident)
            if not theirs and scrubbed == details:
                continue  # the digits matched something else
            if theirs and (row.crop_ciphertext is not None or row.embedding_ciphertext):
                crops += 1
                row.crop_ciphertext = None
                row.embedding_ciphertext = None
            if row.person_id == person_id:
                row.person_id = None
            row.details_json = json.dumps(scrubbed, ensure_ascii=False)
            unlinked += 1
        self.session.flush()
        return unlinked, crops


#: Stands where a removed person's id was in a sighting's details.
REMOVED_IDENTITY = "removed"


def _scrub_identity(value: Any, ident: str) -> Any:
    """``value`` (decoded details JSON) with the identity ``ident`` replaced everywhere."""
    if isinstance(value, dict):
        return {
            (REMOVED_IDENTITY if k == ident else k): (
                REMOVED_IDENTITY
                if k in ("identity", "runner_up_identity") and v == ident
                else _scrub_identity(v, ident)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_identity(v, ident) for v in value]
    if isinstance(value, str) and ident in value:
        # Reasons name identities in parentheses: "... different people (42 and 7)".
        return re.sub(
            r"\(([^)]*)\)",
            lambda m: "(" + re.sub(rf"(?<![\w.]){ident}(?![\w.])", REMOVED_IDENTITY, m[1]) + ")",
            value,
        )
    return value


#: Kind prefix of the events only live views read (server-sent events to open pages).
LIVE_EVENT_PREFIX = "live."


class OutboxRepository:
    """Reads and writes ``event_outbox`` and ``event_acks`` on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, kind: str, payload_json: str) -> int:
        """Store an event; returns its id (assigned at once)."""
        row = OutboxEvent(kind=kind, payload_json=payload_json)
        self.session.add(row)
        self.session.flush()
        return row.id

    def pending(
        self, consumer: str, *, kinds: Sequence[str] | None, limit: int
    ) -> Sequence[OutboxEvent]:
        """The first ``limit`` events ``consumer`` has not acknowledged, in id order,
        optionally only of ``kinds``."""
        acked = select(EventAck.event_id).where(EventAck.consumer == consumer)
        query = (
            select(OutboxEvent)
            .where(OutboxEvent.id.not_in(acked))
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        if kinds is not None:
            query = query.where(OutboxEvent.kind.in_(list(kinds)))
        else:
            # Live-view announcements are nobody's work: consumers never see them.
            query = query.where(OutboxEvent.kind.not_like(f"{LIVE_EVENT_PREFIX}%"))
        return self.session.scalars(query).all()

    def acknowledge(self, consumer: str, event_ids: Sequence[int]) -> None:
        """Record that ``consumer`` handled these events; ones it acknowledged before are
        left as they are. An unknown event id fails the commit (``ConstraintViolationError``)."""
        done = set(
            self.session.scalars(
                select(EventAck.event_id).where(
                    EventAck.consumer == consumer, EventAck.event_id.in_(list(event_ids))
                )
            )
        )
        for event_id in sorted(set(event_ids) - done):
            self.session.add(EventAck(consumer=consumer, event_id=event_id))

    def events_after(self, event_id: int, *, prefix: str, limit: int) -> Sequence[OutboxEvent]:
        """Events after ``event_id`` whose kind starts with ``prefix``, oldest first."""
        return self.session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.id > event_id, OutboxEvent.kind.like(f"{prefix}%"))
            .order_by(OutboxEvent.id)
            .limit(limit)
        ).all()

    def last_event_id(self) -> int:
        return int(self.session.scalar(select(func.max(OutboxEvent.id))) or 0)

    def purgeable_event_ids(self, cutoff: datetime, *, limit: int) -> list[int]:
        """Up to ``limit`` ids of events created before ``cutoff`` that no consumer needs any
        more, their rows locked until the transaction ends (PostgreSQL).

        The consumers are those with an acknowledgement on record. An event qualifies when
        every one of them acknowledged it, it is not parked (a ``case_parked_events`` row,
        discarded ones included), and it is not the newest event some consumer acknowledged.
        """
        acks_of_event = (
            select(func.count())
            .select_from(EventAck)
            .where(EventAck.event_id == OutboxEvent.id)
            .scalar_subquery()
        )
        consumers = select(func.count(func.distinct(EventAck.consumer))).scalar_subquery()
        # Consumers are known only through their acknowledgements: keeping each one's newest
        # keeps it known, so events it has not acknowledged yet never look fully handled.
        newest_acked = select(func.max(EventAck.event_id)).group_by(EventAck.consumer)
        handled = and_(
            # With no acknowledgement on record there is no consumer to have finished.
            consumers > 0,
            acks_of_event == consumers,
            OutboxEvent.id.not_in(select(CaseParkedEvent.event_id)),
            OutboxEvent.id.not_in(newest_acked),
        )
        # Live-view events (``live.*``) are announcements nobody acknowledges: a page that
        # missed one reloads its data, so age alone retires them.
        live = OutboxEvent.kind.like(f"{LIVE_EVENT_PREFIX}%")
        query = (
            select(OutboxEvent.id)
            .where(OutboxEvent.created_at < cutoff, or_(live, handled))
            .order_by(OutboxEvent.id)
            .limit(limit)
            # A consumer acknowledging or parking one of these meanwhile waits for this
            # transaction (its foreign key check locks the row) and then fails, instead of
            # recording work on an event that is about to vanish.
            .with_for_update(of=OutboxEvent)
        )
        return [int(i) for i in self.session.scalars(query).all()]

    def delete_events(self, event_ids: Sequence[int]) -> int:
        """Delete these events and their acknowledgements; returns how many events went."""
        if not event_ids:
            return 0
        ids = list(event_ids)
        self.session.execute(delete(EventAck).where(EventAck.event_id.in_(ids)))
        return rowcount(self.session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids))))
