"""Settings of the scheduled duties: deadlines, reconciliation, retention and the filing counter."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator


class DutySettings(BaseModel):
    """Departure deadlines, not-seen reconciliation, retention per kind, the filing counter.

    Days are whole calendar days in the village's time zone; retention cut-offs are exact
    (``now - days``) to the second.
    """

    #: The village's time zone (IANA name): decides which calendar day a report falls on
    #: and when the daily jobs run.
    timezone: str = "Asia/Shanghai"
    #: A move-out must be reported within this many days after the move-out date (DOMAIN.md
    #: default 7); a report on the last day is on time.
    departure_deadline_days: int = Field(default=7, ge=0, le=365)
    #: A tenant not seen by any camera for this many days gets a "please confirm" task for
    #: the landlord (DOMAIN.md default 30).
    not_seen_days: int = Field(default=30, ge=1, le=3650)
    #: Late move-out reports are listed as overdue for this many days after the report.
    late_report_window_days: int = Field(default=30, ge=0, le=3650)
    #: Unknown and undecided sightings are deleted after this many days (default 30).
    unknown_sightings_days: int = Field(default=30, ge=0, le=3650)
    #: Best crops and embeddings of known sightings are cleared after this many days
    #: (default 30; unknown sightings lose their crops when the whole row goes).
    crops_days: int = Field(default=30, ge=0, le=3650)
    #: Known sightings (who was seen where, when) are deleted after this many days (default 90).
    known_sightings_days: int = Field(default=90, ge=0, le=3650)
    #: A departed person's face templates and photos are deleted this many days after the
    #: move-out date and the person is archived (default 0: on the move-out day itself).
    departed_templates_days: int = Field(default=0, ge=0, le=3650)
    #: Filing with the authorities is required at this many people with face data stored.
    filing_threshold: int = Field(default=100_000, ge=1)
    #: Warn once the count reaches this fraction of the threshold (default 0.9 = 90,000).
    filing_warn_fraction: float = Field(default=0.9, gt=0.0, le=1.0)
    #: Local time of day the daily duties (reconcile, purge, counter) run.
    daily_at: time = time(3, 0)
    #: Days of "sightings per camera per day" in the statistics.
    stats_days: int = Field(default=7, ge=1, le=366)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @model_validator(mode="after")
    def _sightings_outlive_not_seen(self) -> DutySettings:
        # "Last seen" is the newest known sighting: purging known sightings sooner than the
        # not-seen window would make every tenant look absent and flood landlords with tasks.
        if self.known_sightings_days < self.not_seen_days:
            raise ValueError(
                f"known_sightings_days ({self.known_sightings_days}) must be at least "
                f"not_seen_days ({self.not_seen_days}): last-seen times come from known sightings"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def filing_warn_at(self) -> int:
        """The count at which the warning starts."""
        return int(self.filing_threshold * self.filing_warn_fraction)
