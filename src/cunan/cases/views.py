"""What the cases workflow returns: case summaries, members, outcomes (frozen, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CaseMember:
    """One sighting of a case."""

    sighting_id: int
    camera_id: int | None
    camera_name: str
    seen_at: datetime
    faces_used: int
    distance: float | None
    alerted: bool
    suppressed_by: str | None


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as staff see it (crops are fetched separately, decrypted on demand)."""

    id: int
    status: str
    model_id: str
    sightings: int
    distinct_days: int
    cameras: tuple[str, ...]
    first_seen_at: datetime
    last_seen_at: datetime
    opened_at: datetime
    assigned_to: int | None
    assigned_at: datetime | None
    deadline_at: datetime | None
    overdue: bool
    outcome: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    person_id: int | None
    visitor_until: datetime | None
    escalation_reason: str | None
    closed_at: datetime | None
    merged_into_id: int | None
    best_sighting_ids: tuple[int, ...]

    @property
    def rank_key(self) -> tuple[int, int, float]:
        """Frequent strangers first: more distinct days, then more sightings, then recent."""
        return (-self.distinct_days, -self.sightings, -self.last_seen_at.timestamp())


@dataclass(frozen=True, slots=True)
class SightingOutcome:
    """What one unknown sighting did: the case it joined, whether it opened it or alerted,
    or why it stayed quiet (``cooldown``, ``visitor``, ``negative``, or ``known``: the case
    was closed as 补录 / "is person X" while the sighting was being grouped, or before, but
    after the camera had decided it "unknown" against a gallery without the person)."""

    sighting_id: int
    case_id: int
    opened: bool
    alerted: bool
    suppressed_by: str | None
    distance: float | None


@dataclass(frozen=True, slots=True)
class EnrolResult:
    """补录: the new person and the templates stored from the case (and a fresh photo)."""

    case_id: int
    person_id: int
    template_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event the case consumer set aside: what it was about, and why it failed.

    ``sighting_id``, ``camera_name`` and ``seen_at`` come from the event (None if its payload
    lacks them); ``sighting_exists`` is False once the sighting is gone (e.g. purged), when a
    replay has nothing left to group. ``attempts`` is None for events set aside before the
    count was kept. ``discarded_at`` / ``discarded_by`` / ``discard_reason`` are set once
    staff discarded it (nothing left to group; it stays acknowledged, never grouped).
    """

    event_id: int
    sighting_id: int | None
    camera_name: str | None
    seen_at: datetime | None
    decision: str | None
    attempts: int | None
    error: str
    parked_at: datetime
    sighting_exists: bool
    discarded_at: datetime | None = None
    discarded_by: str | None = None
    discard_reason: str | None = None
