"""Tables of the scheduled duties: departure reports and "please confirm" tasks for landlords."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.tables import Base, utcnow

#: Values of ``confirmation_tasks.status``.
TASK_STATUSES = ("open", "closed")
#: Values of ``confirmation_tasks.outcome`` (NULL while open).
TASK_OUTCOMES = ("still_living", "departed", "sighted", "tenancy_ended")


class DepartureReport(Base):
    """A reported move-out: who reported it, when, and whether it met the village deadline."""

    __tablename__ = "departure_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenancy_id: Mapped[int] = mapped_column(
        ForeignKey("tenancies.id", ondelete="CASCADE"), unique=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    move_out: Mapped[date] = mapped_column(Date)
    #: Last day a report counts as on time (move-out + the village's deadline days).
    deadline: Mapped[date] = mapped_column(Date)
    late: Mapped[bool] = mapped_column(Boolean)
    reported_by: Mapped[str] = mapped_column(String(200))
    reported_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfirmationTask(Base):
    """A "please confirm this tenant still lives here" task for the tenancy's landlord."""

    __tablename__ = "confirmation_tasks"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('still_living', 'departed', 'sighted', "
            "'tenancy_ended')",
            name="outcome",
        ),
        # At most one open task per tenancy, even if two reconcilers race.
        Index(
            "uq_confirmation_tasks_open_tenancy",
            "tenancy_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenancy_id: Mapped[int] = mapped_column(ForeignKey("tenancies.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    landlord_id: Mapped[int | None] = mapped_column(
        ForeignKey("landlords.id", ondelete="SET NULL"), index=True
    )
    #: The moment the person was last known to be around (sighting, confirmation, move-in).
    not_seen_since: Mapped[datetime]
    #: Whole days not seen when the task was opened.
    days_not_seen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(16))
