"""Tables of the cases workflow: cases, sightings, quiet faces, events the consumer set aside."""

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
)
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.tables import Base, utcnow

#: Values of ``cases.status``; ``merged`` cases live on in the case they were merged into.
CASE_STATUSES = ("open", "assigned", "closed", "merged")
#: Values of ``cases.outcome`` (set when the case is closed by a verification).
CASE_OUTCOMES = ("enrol", "visitor", "person", "false_alarm", "escalate")
#: Values of ``case_quiet_faces.kind``.
QUIET_KINDS = ("visitor", "negative")


class Case(Base):
    """Unknown sightings of one (presumed) unknown face, and their verification."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'assigned', 'closed', 'merged')", name="status"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('enrol', 'visitor', 'person', 'false_alarm', "
            "'escalate')",
            name="outcome",
        ),
        Index("ix_cases_status", "status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``face``: a stranger's sightings; ``gas``: a gas alarm's on-site verification (migration
    #: 0014; its alarm row points here and ``gas_stage`` carries its own workflow).
    kind: Mapped[str] = mapped_column(String(8), default="face", server_default="face")
    #: The gas case's stage (cunan.gas.domain.GasCaseStage); None for face cases.
    gas_stage: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    model_id: Mapped[str] = mapped_column(String(100))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    sightings_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Grows with every membership change, so a grouping cache knows what to reload.
    version: Mapped[int] = mapped_column(Integer, default=0)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_by: Mapped[str | None] = mapped_column(String(100))
    assigned_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_by: Mapped[str | None] = mapped_column(String(100))
    outcome_at: Mapped[datetime | None]
    #: The person the case turned out to be (补录 or "is registered person X").
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    visitor_until: Mapped[datetime | None]
    #: Free text for the higher office; never copied into the audit log.
    escalation_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseSighting(Base):
    """A sighting's membership of a case (a sighting belongs to at most one case)."""

    __tablename__ = "case_sightings"
    # A case's best sightings (most good faces, then the most recent) without sorting all
    # of a frequent stranger's sightings (migration 0010).
    __table_args__ = (
        Index("ix_case_sightings_best", "case_id", "faces_used", "seen_at", "sighting_id"),
    )

    sighting_id: Mapped[int] = mapped_column(
        ForeignKey("sightings.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    camera_id: Mapped[int | None] = mapped_column(Integer)
    camera_name: Mapped[str] = mapped_column(String(200))
    seen_at: Mapped[datetime]
    faces_used: Mapped[int] = mapped_column(Integer)
    #: Linkage distance when the sighting joined (None: it opened the case, or was moved).
    distance: Mapped[float | None] = mapped_column(Float)
    #: Whether this sighting raised an alert (opening or re-alert).
    alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Why it stayed quiet: cooldown, visitor, negative, known (None: not suppressed).
    suppressed_by: Mapped[str | None] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseQuietFace(Base):
    """An encrypted embedding that keeps matching unknowns quiet: a visitor until
    ``expires_at`` (then purged), or a false alarm's negative example (no expiry)."""

    __tablename__ = "case_quiet_faces"
    __table_args__ = (CheckConstraint("kind IN ('visitor', 'negative')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseParkedEvent(Base):
    """A ``sighting.decided`` event the case consumer set aside after failing it
    ``attempts`` times in a row, with the error; the event is acknowledged for ``cases``
    meanwhile, so the others are grouped. Replaying deletes the row and the acknowledgement;
    discarding (nothing left to group, e.g. the sighting was purged) keeps both and records
    who discarded it, when and why."""

    __tablename__ = "case_parked_events"

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("event_outbox.id", ondelete="CASCADE"),
        primary_key=True,
    )
    #: None for events set aside before migration 0006 (the count was not kept then).
    attempts: Mapped[int | None] = mapped_column(Integer)
    #: The exception's type and message (ids and reasons, no face data).
    error: Mapped[str] = mapped_column(Text)
    parked_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when staff discarded the event (migration 0007): hidden from the parked list,
    #: left out of "replay all".
    discarded_at: Mapped[datetime | None]
    discarded_by: Mapped[str | None] = mapped_column(String(100))
    #: Why it was discarded, as staff typed it (also in the audit entry).
    discard_reason: Mapped[str | None] = mapped_column(Text)
