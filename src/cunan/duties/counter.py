"""The face-data counter: people with face data stored, against the 100,000 filing threshold."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cunan.duties.settings import DutySettings
from cunan.storage.database import Database
from cunan.storage.repositories import RegistryRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FaceDataCount:
    """How many people have face data stored, and whether filing is near or due."""

    people: int
    threshold: int
    warn_at: int

    @property
    def fraction(self) -> float:
        return self.people / self.threshold

    @property
    def warning(self) -> bool:
        """At or past the warning level (``filing_warn_fraction`` of the threshold)."""
        return self.people >= self.warn_at

    @property
    def filing_required(self) -> bool:
        return self.people >= self.threshold

    def message(self) -> str | None:
        if self.filing_required:
            return (
                f"{self.people} people have face data stored: at or past the filing threshold "
                f"of {self.threshold}; filing with the authorities is required"
            )
        if self.warning:
            return (
                f"{self.people} people have face data stored ({self.fraction:.0%} of the "
                f"filing threshold {self.threshold}); prepare the filing"
            )
        return None


class FaceDataCounter:
    """Counts people with at least one stored face template."""

    def __init__(self, database: Database, settings: DutySettings | None = None) -> None:
        self.database = database
        self.settings = settings or DutySettings()

    def count(self) -> FaceDataCount:
        with self.database.transaction() as session:
            people = RegistryRepository(session).count_people_with_face_data()
        return FaceDataCount(
            people=people,
            threshold=self.settings.filing_threshold,
            warn_at=self.settings.filing_warn_at,
        )

    def check(self) -> FaceDataCount:
        """Count, and log a WARNING when the count is near or past the threshold."""
        result = self.count()
        message = result.message()
        if message is not None:
            logger.warning("%s", message)
        else:
            logger.info(
                "%d people with face data stored (filing at %d)", result.people, result.threshold
            )
        return result
