"""Tables of the camera pipeline: cameras, sightings, the event outbox and worker leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.tables import Base, utcnow

#: Values of ``sightings.decision``.
SIGHTING_DECISIONS = ("known", "unknown", "undecided")


class Camera(Base):
    """A camera of the village: where it is, how to reach it, and whether it may recognise."""

    __tablename__ = "cameras"
    # Ids are never reused (SQLite reuses the highest without AUTOINCREMENT).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    village_id: Mapped[int | None] = mapped_column(
        ForeignKey("villages.id", ondelete="SET NULL"), index=True
    )
    area_id: Mapped[int | None] = mapped_column(ForeignKey("grid_areas.id", ondelete="SET NULL"))
    house_id: Mapped[int | None] = mapped_column(ForeignKey("houses.id", ondelete="SET NULL"))
    #: The URL without its credentials (``redact_url``) when it has any: the whole URL,
    #: password included, is then only in ``stream_url_ciphertext`` (AES-GCM, data key).
    stream_url: Mapped[str] = mapped_column(Text)
    stream_url_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Recognition refuses to start until the public notice sign is recorded as posted.
    public_notice_posted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Why recognition here is lawful and where the notice hangs (free text staff write,
    #: shown beside the flag; e.g. the village committee's decision and the sign's place).
    public_notice_reason: Mapped[str | None] = mapped_column(Text)
    #: JSON: {"rectangle": [l, t, r, b]} or {"polygon": [[x, y], ...]} in full-frame pixels.
    zone_json: Mapped[str | None] = mapped_column(Text)
    #: JSON: per-camera settings (see cunan.pipeline.cameras.CameraSettings).
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CameraHealthRow(Base):
    """The last capture state a camera process reported, read by the server and the CLI
    (the process may run on another host: the database is what they share)."""

    __tablename__ = "camera_health"

    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    #: A ``CaptureState`` value (connecting, streaming, backing_off, failing, stopped, failed).
    state: Mapped[str] = mapped_column(String(16))
    last_frame_at: Mapped[datetime | None]
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    #: The last capture error, credentials removed, at most 500 characters.
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    #: When the process last wrote this row: an old one means nobody runs the camera.
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sighting(Base):
    """One person passing one camera (one confirmed track), decided once."""

    __tablename__ = "sightings"
    __table_args__ = (
        # A track is stored once even if its end is reported twice (reconnect, retry).
        UniqueConstraint("camera_id", "track_key"),
        CheckConstraint("decision IN ('known', 'unknown', 'undecided')", name="decision"),
        Index("ix_sightings_started_at", "started_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="SET NULL"))
    #: Kept when the camera row is removed, so old sightings still say where they were seen.
    camera_name: Mapped[str] = mapped_column(String(200))
    track_key: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    decision: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), index=True
    )
    distance: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    faces_used: Mapped[int] = mapped_column(Integer)
    #: JSON: per-face numbers, consensus counts and the reasons.
    details_json: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(100))
    #: Best crop (JPEG) and, for unknowns, the embedding; both AES-GCM encrypted.
    crop_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxEvent(Base):
    """A persisted event: delivered to each consumer until that consumer acknowledges it."""

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventAck(Base):
    """A consumer's acknowledgement of one event."""

    __tablename__ = "event_acks"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("event_outbox.id", ondelete="CASCADE"),
        primary_key=True,
    )
    acked_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerLease(Base):
    """Which worker runs a camera, until when; renewed while the worker lives."""

    __tablename__ = "worker_leases"

    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
