"""Thresholds, deadlines and cooldowns of the cases workflow, with their documented defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CaseSettings(BaseModel):
    """``[cases]`` settings. Distances are Euclidean between L2-normalised embeddings (dlib
    ResNet: 0 = identical, ~0.43 = LFW same/different boundary); see docs/cases.md for how
    the defaults were measured."""

    #: A new unknown sighting joins the nearest open case if its linkage distance is at most
    #: this; otherwise it opens a new case.
    link_threshold: float = Field(default=0.36, gt=0.0, lt=2.0)
    #: ``average``: mean distance to the case's kept embeddings; ``single``: the nearest one.
    linkage: Literal["average", "single"] = "average"
    #: Embeddings kept per case for linking (the sightings with the most good faces).
    max_kept_per_case: int = Field(default=8, ge=1, le=64)
    #: An unknown this close to a false alarm's negative example raises nothing.
    negative_threshold: float = Field(default=0.36, gt=0.0, lt=2.0)
    #: An unknown this close to a visitor's temporary template stays quiet until expiry.
    visitor_threshold: float = Field(default=0.36, gt=0.0, lt=2.0)
    #: The same case does not re-alert from the same camera within this many minutes.
    cooldown_minutes: float = Field(default=30.0, ge=0.0)
    #: Days a staff member has to verify an assigned case.
    deadline_days: float = Field(default=3.0, gt=0.0)
    #: Best crops shown per case.
    best_crops: int = Field(default=4, ge=1, le=32)
    #: Templates 补录 / "is person X" take from a case's best sightings.
    max_templates_from_case: int = Field(default=4, ge=1, le=32)
    #: How long after a 补录 / "is person X" outcome closed a case a sighting may still have
    #: been decided "unknown" by a camera whose gallery did not know the person yet (the
    #: change feed is polled every 5 s; the rest covers a slow commit and clocks of camera
    #: hosts that differ by minutes). Sightings that started before the close plus this are
    #: grouped against such cases too, and one that matches stays quiet as ``known``.
    known_lag_minutes: float = Field(default=10.0, ge=0.0)
    #: Hours east of UTC of the village's local day (distinct days are counted locally).
    local_utc_offset_hours: float = Field(default=8.0, ge=-12.0, le=14.0)
