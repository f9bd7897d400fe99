"""Pipeline persistence: cameras, sightings (encrypted crops/embeddings) and the event outbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from cunan.audit.log import AuditAction, AuditLog, DetailValue, system_actor
from cunan.capture.sources import redact_url
from cunan.errors import NotFound
from cunan.pipeline.cameras import CameraRecord, CameraSettings, parse_zone
from cunan.pipeline.events import SightingDecided, encode_payload
from cunan.security.cipher import FieldCipher
from cunan.storage.database import Database
from cunan.storage.errors import ConstraintViolationError
from cunan.storage.pipeline_repository import (
    LIVE_EVENT_PREFIX,
    CameraRepository,
    OutboxRepository,
    SightingRepository,
)
from cunan.storage.pipeline_tables import Camera, Sighting

logger = logging.getLogger(__name__)

#: Events deleted per statement by :meth:`EventOutbox.purge_before` (bounded parameter lists).
PURGE_BATCH = 500


class CameraNotFoundError(LookupError, NotFound):
    """No camera with that id or name."""


def crop_context(sighting_id: int, camera_name: str) -> bytes:
    """Associated data binding a sighting's crop ciphertext to its row."""
    return f"sighting-crop:{sighting_id}:{camera_name}".encode()


def embedding_context(sighting_id: int, model_id: str) -> bytes:
    return f"sighting-embedding:{sighting_id}:{model_id}".encode()


def camera_url_context(camera_id: int) -> bytes:
    """Associated data binding a camera's encrypted stream URL to its row."""
    return f"camera-url:{camera_id}".encode()


def has_credentials(url: str) -> bool:
    """Whether a stream URL carries a user name, password or credential parameter."""
    return redact_url(url) != url


def _record(row: Camera, cipher: FieldCipher | None = None) -> CameraRecord:
    url = row.stream_url
    if row.stream_url_ciphertext is not None and cipher is not None:
        url = cipher.decrypt(
            row.stream_url_ciphertext, camera_url_context(row.id), what=f"camera {row.id} URL"
        ).decode()
    return CameraRecord(
        id=row.id,
        name=row.name,
        village_id=row.village_id,
        area_id=row.area_id,
        house_id=row.house_id,
        stream_url=url,
        enabled=row.enabled,
        public_notice_posted=row.public_notice_posted,
        zone=parse_zone(row.zone_json),
        zone_json=row.zone_json,
        settings=CameraSettings.from_json(row.settings_json),
        public_notice_reason=row.public_notice_reason,
    )


class CameraStore:
    """Add, list and change cameras; with an audit log every change is recorded, the
    public-notice flag (which recognition legally depends on) included."""

    def __init__(
        self,
        database: Database,
        *,
        cipher: FieldCipher | None = None,
        audit: AuditLog | None = None,
        actor: str | None = None,
    ) -> None:
        self.database = database
        #: Encrypts stream URLs that carry a password, and decrypts them for the pipeline;
        #: without it records hold the redacted URL (enough for listings).
        self.cipher = cipher
        self.audit = audit
        self.actor = actor or system_actor()

    def _seal(self, row: Camera, url: str) -> None:
        """Store ``url`` in ``row``: encrypted when it carries credentials, plain otherwise."""
        if not has_credentials(url):
            row.stream_url, row.stream_url_ciphertext, row.key_id = url, None, None
            return
        if self.cipher is None:
            raise ValueError(
                "a stream URL with a password is stored encrypted; open the registry with "
                "its key to add or change it"
            )
        row.stream_url = redact_url(url)
        row.stream_url_ciphertext = self.cipher.encrypt(url.encode(), camera_url_context(row.id))
        row.key_id = self.cipher.active_key_id

    def seal_plaintext_passwords(self) -> int:
        """Encrypt the URLs stored in plain text before camera passwords were encrypted;
        returns how many (run at open, once the key is known to be this database's)."""
        if self.cipher is None:
            return 0
        with self.database.read() as session:
            pending = any(
                row.stream_url_ciphertext is None and has_credentials(row.stream_url)
                for row in CameraRepository(session).cameras()
            )
        if not pending:
            return 0  # the usual case: no write lock taken at every open
        with self.database.transaction() as session:
            repo = CameraRepository(session)
            sealed = 0
            for row in repo.cameras():
                if row.stream_url_ciphertext is None and has_credentials(row.stream_url):
                    self._seal(row, row.stream_url)
                    sealed += 1
            repo.flush()
        if sealed:
            logger.info("encrypted the stream URL (password) of %d camera(s)", sealed)
        return sealed

    def _audit(
        self,
        session: Session,
        action: AuditAction,
        camera_id: int,
        details: dict[str, DetailValue],
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                action,
                actor=self.actor,
                target_type="camera",
                target_id=camera_id,
                details=details,
                session=session,
            )

    def add(
        self,
        name: str,
        stream_url: str,
        *,
        village_id: int | None = None,
        area_id: int | None = None,
        house_id: int | None = None,
        enabled: bool = True,
        public_notice_posted: bool = False,
        zone_json: str | None = None,
        settings: CameraSettings | None = None,
        public_notice_reason: str | None = None,
    ) -> int:
        name = name.strip()
        if not name or not stream_url.strip():
            raise ValueError("a camera needs a name and a stream URL")
        parse_zone(zone_json)  # refuse a bad zone now, not when the worker starts
        url = stream_url.strip()
        if has_credentials(url) and self.cipher is None:
            self._seal(Camera(), url)  # refuses before anything is written
        try:
            with self.database.transaction() as session:
                repo = CameraRepository(session)
                row = Camera(
                    name=name,
                    # The id is part of the encryption context: stored redacted first.
                    stream_url=redact_url(url),
                    village_id=village_id,
                    area_id=area_id,
                    house_id=house_id,
                    enabled=enabled,
                    public_notice_posted=public_notice_posted,
                    public_notice_reason=(public_notice_reason or "").strip() or None,
                    zone_json=zone_json,
                    settings_json=(settings or CameraSettings()).to_json(),
                )
                camera_id = repo.add(row)
                self._seal(row, url)
                repo.flush()
                self._audit(
                    session,
                    AuditAction.CAMERA_ADD,
                    camera_id,
                    {
                        "enabled": enabled,
                        "public_notice_posted": public_notice_posted,
                        "public_notice_reason": bool(public_notice_reason),
                        "zone": zone_json is not None,
                    },
                )
        except ConstraintViolationError as exc:
            raise ValueError(f"camera {name!r} already exists or its place is unknown") from exc
        logger.info("camera %s added (%s)", name, redact_url(stream_url))
        return camera_id

    def list(self, *, enabled_only: bool = False) -> list[CameraRecord]:
        """Every camera, with redacted URLs: listings never decrypt a password (``get`` does,
        for the one camera about to be opened)."""
        with self.database.read() as session:
            rows = CameraRepository(session).cameras(enabled_only=enabled_only)
            return [_record(row) for row in rows]

    def get(self, key: int | str) -> CameraRecord:
        with self.database.read() as session:
            return _record(self._row(CameraRepository(session), key), self.cipher)

    def find(self, key: int | str) -> CameraRecord | None:
        try:
            return self.get(key)
        except CameraNotFoundError:
            return None

    @staticmethod
    def _row(repo: CameraRepository, key: int | str) -> Camera:
        row: Camera | None
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            row = repo.by_id(int(key))
            if row is None and isinstance(key, str):
                row = repo.by_name(key)
        else:
            row = repo.by_name(key)
        if row is None:
            raise CameraNotFoundError(f"no camera {key!r}")
        return row

    def update(
        self,
        key: int | str,
        *,
        enabled: bool | None = None,
        public_notice_posted: bool | None = None,
        zone_json: str | None = None,
        settings: CameraSettings | None = None,
        name: str | None = None,
        stream_url: str | None = None,
        public_notice_reason: str | None = None,
    ) -> CameraRecord:
        """Change what is given (None leaves a field as it is; an empty ``zone_json`` or
        ``public_notice_reason`` clears it)."""
        if zone_json is not None:
            parse_zone(zone_json)
        if name is not None and not name.strip():
            raise ValueError(f"camera {key!r}: the name cannot be empty")
        url = stream_url.strip() if stream_url is not None else None
        if stream_url is not None and not url:
            raise ValueError(f"camera {key!r}: the stream URL cannot be empty")
        if url and has_credentials(url) and self.cipher is None:
            self._seal(Camera(), url)  # refuses before anything is written
        try:
            return self._update(
                key,
                enabled=enabled,
                public_notice_posted=public_notice_posted,
                zone_json=zone_json,
                settings=settings,
                name=name.strip() if name is not None else None,
                url=url,
                public_notice_reason=public_notice_reason,
            )
        except ConstraintViolationError as exc:
            raise ValueError(f"camera {key!r}: the name {name!r} is taken") from exc

    def _update(
        self,
        key: int | str,
        *,
        enabled: bool | None,
        public_notice_posted: bool | None,
        zone_json: str | None,
        settings: CameraSettings | None,
        name: str | None,
        url: str | None,
        public_notice_reason: str | None,
    ) -> CameraRecord:
        with self.database.transaction() as session:
            repo = CameraRepository(session)
            row = self._row(repo, key)
            details: dict[str, DetailValue] = {}
            if name is not None and name != row.name:
                details["name_before"] = row.name
                row.name = name
            if url is not None:
                self._seal(row, url)
                details["url_changed"] = True
            if public_notice_reason is not None:
                reason = public_notice_reason.strip() or None
                if reason != row.public_notice_reason:
                    row.public_notice_reason = reason
                    details["public_notice_reason_changed"] = True
            if enabled is not None:
                details["enabled_before"] = row.enabled
                row.enabled = enabled
            if public_notice_posted is not None:
                details["public_notice_posted_before"] = row.public_notice_posted
                row.public_notice_posted = public_notice_posted
            if zone_json is not None:
                row.zone_json = zone_json or None
                details["zone_changed"] = True
            if settings is not None:
                row.settings_json = settings.to_json()
                details["settings_changed"] = True
            row.updated_at = datetime.now(UTC)
            repo.flush()
            details["enabled"] = row.enabled
            details["public_notice_posted"] = row.public_notice_posted
            action = (
                AuditAction.CAMERA_UPDATE
                if enabled is None
                else AuditAction.CAMERA_ENABLE
                if enabled
                else AuditAction.CAMERA_DISABLE
            )
            self._audit(session, action, row.id, details)
            return _record(row, self.cipher)

    def remove(self, key: int | str) -> None:
        with self.database.transaction() as session:
            repo = CameraRepository(session)
            row = self._row(repo, key)
            camera_id = row.id
            repo.delete(row)
            self._audit(session, AuditAction.CAMERA_REMOVE, camera_id, {})


@dataclass(frozen=True, slots=True)
class NewSighting:
    """A decided track ready to store."""

    camera_id: int | None
    camera_name: str
    track_key: str
    started_at: datetime
    ended_at: datetime
    decision: str
    person_id: int | None
    distance: float | None
    score: float | None
    faces_used: int
    details: dict[str, Any]
    model_id: str
    crop_jpeg: bytes | None
    embedding: NDArray[np.float32] | None


@dataclass(frozen=True, slots=True)
class StoredSighting:
    """The stored row's id and outbox event; ``created`` is False for a duplicate track."""

    sighting_id: int
    event: SightingDecided | None
    created: bool


@dataclass(frozen=True, slots=True)
class SightingView:
    id: int
    camera_id: int | None
    camera_name: str
    track_key: str
    started_at: datetime
    ended_at: datetime
    decision: str
    person_id: int | None
    distance: float | None
    faces_used: int
    details: dict[str, Any]
    has_crop: bool
    has_embedding: bool


class SightingStore:
    """Stores sightings with their ``sighting.decided`` outbox event in one transaction."""

    def __init__(self, database: Database, cipher: FieldCipher) -> None:
        self.database = database
        self.cipher = cipher

    def add(self, sighting: NewSighting) -> StoredSighting:
        with self.database.transaction() as session:
            repo = SightingRepository(session)
            existing = repo.id_of_track(sighting.camera_id, sighting.track_key)
            if existing is not None:
                # The same track reported again (a retry after a crash between commit and
                # acknowledgement): stored once.
                return StoredSighting(sighting_id=existing, event=None, created=False)
            row = repo.add(
                Sighting(
                    camera_id=sighting.camera_id,
                    camera_name=sighting.camera_name,
                    track_key=sighting.track_key,
                    started_at=sighting.started_at,
                    ended_at=sighting.ended_at,
                    decision=sighting.decision,
                    person_id=sighting.person_id,
                    distance=sighting.distance,
                    score=sighting.score,
                    faces_used=sighting.faces_used,
                    details_json=json.dumps(sighting.details, ensure_ascii=False),
                    model_id=sighting.model_id,
                )
            )
            if sighting.crop_jpeg is not None:
                row.crop_ciphertext = self.cipher.encrypt(
                    sighting.crop_jpeg, crop_context(row.id, sighting.camera_name)
                )
            if sighting.embedding is not None:
                row.embedding_ciphertext = self.cipher.encrypt(
                    np.ascontiguousarray(sighting.embedding, dtype="<f4").tobytes(),
                    embedding_context(row.id, sighting.model_id),
                )
            row.key_id = self.cipher.active_key_id
            event = SightingDecided(
                event_id=0,
                sighting_id=row.id,
                camera_id=sighting.camera_id,
                camera_name=sighting.camera_name,
                started_at=sighting.started_at,
                ended_at=sighting.ended_at,
                decision=sighting.decision,
                person_id=sighting.person_id,
                distance=sighting.distance,
                faces_used=sighting.faces_used,
            )
            event_id = EventOutbox.append(session, SightingDecided.kind, event.payload())
            return StoredSighting(
                sighting_id=row.id,
                event=SightingDecided.from_payload(event_id, event.payload()),
                created=True,
            )

    def list(self, *, camera_id: int | None = None, limit: int = 1000) -> list[SightingView]:
        with self.database.read() as session:
            rows = SightingRepository(session).sightings(camera_id=camera_id, limit=limit)
            return [
                SightingView(
                    id=r.id,
                    camera_id=r.camera_id,
                    camera_name=r.camera_name,
                    track_key=r.track_key,
                    started_at=r.started_at,
                    ended_at=r.ended_at,
                    decision=r.decision,
                    person_id=r.person_id,
                    distance=r.distance,
                    faces_used=r.faces_used,
                    details=json.loads(r.details_json),
                    has_crop=r.crop_ciphertext is not None,
                    has_embedding=r.embedding_ciphertext is not None,
                )
                for r in rows
            ]

    def crop(self, sighting_id: int) -> bytes | None:
        """The best crop (JPEG), decrypted."""
        with self.database.read() as session:
            row = SightingRepository(session).sighting(sighting_id)
            if row is None or row.crop_ciphertext is None:
                return None
            return self.cipher.decrypt(
                row.crop_ciphertext,
                crop_context(row.id, row.camera_name),
                what=f"sighting {row.id} crop",
            )

    def embedding(self, sighting_id: int) -> NDArray[np.float32] | None:
        """An unknown sighting's embedding, decrypted."""
        with self.database.read() as session:
            row = SightingRepository(session).sighting(sighting_id)
            if row is None or row.embedding_ciphertext is None:
                return None
            data = self.cipher.decrypt(
                row.embedding_ciphertext,
                embedding_context(row.id, row.model_id),
                what=f"sighting {row.id} embedding",
            )
            return np.frombuffer(data, dtype="<f4").astype(np.float32)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime


class EventOutbox:
    """Persisted events: each consumer reads what it has not acknowledged, in order.

    An event stays pending for a consumer until that consumer acknowledges it, so a consumer
    that was down (or crashed before acknowledging) gets it again: at-least-once delivery.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    @staticmethod
    def append(session: Session, kind: str, payload: dict[str, Any]) -> int:
        return OutboxRepository(session).append(kind, encode_payload(payload))

    def pending(
        self, consumer: str, *, kinds: Sequence[str] | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        with self.database.read() as session:
            rows = OutboxRepository(session).pending(consumer, kinds=kinds, limit=limit)
            return [
                StoredEvent(r.id, r.kind, json.loads(r.payload_json), r.created_at) for r in rows
            ]

    def live_after(self, event_id: int, *, limit: int = 100) -> list[StoredEvent]:
        """Live-view events (``live.*``) after ``event_id``, oldest first (a read snapshot:
        never waits for a writer)."""
        with self.database.read() as session:
            rows = OutboxRepository(session).events_after(
                event_id, prefix=LIVE_EVENT_PREFIX, limit=limit
            )
            return [
                StoredEvent(r.id, r.kind, json.loads(r.payload_json), r.created_at) for r in rows
            ]

    def last_id(self) -> int:
        with self.database.read() as session:
            return OutboxRepository(session).last_event_id()

    def ack(self, consumer: str, event_ids: Sequence[int]) -> None:
        if not event_ids:
            return
        with self.database.transaction() as session:
            OutboxRepository(session).acknowledge(consumer, event_ids)

    def purge_before(self, cutoff: datetime) -> int:
        """Delete events older than ``cutoff`` that every consumer is done with, and their
        acknowledgements; returns how many events went.

        Kept whatever their age: an event some consumer parked (``cunan cases parked`` lists
        it and ``replay-parked`` hands it back, so the event, its acknowledgement and its
        parked record all stay, discarded or not); an event a consumer with acknowledgements
        on record has not acknowledged (still pending for it); an event nobody acknowledged
        (no consumer may have run yet); and each consumer's newest acknowledged event, which
        keeps the consumer on record once its older events are gone.
        """
        deleted = 0
        # One transaction per batch: SQLite has one writer, and a long purge in a single
        # transaction would hold every camera's sighting inserts back until it ended. Each
        # batch re-applies the rule, so work committed in between is respected.
        while True:
            with self.database.transaction() as session:
                repo = OutboxRepository(session)
                ids = repo.purgeable_event_ids(cutoff, limit=PURGE_BATCH)
                if not ids:
                    return deleted
                deleted += repo.delete_events(ids)
