"""What the tests that store sightings share: one builder for a decided track's row."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from cunan.pipeline.store import NewSighting

MODEL = "dlib_resnet_v1"


def new_sighting(
    embedding: np.ndarray | None,
    *,
    at: datetime,
    camera: str = "gate",
    track_key: str = "t1",
    **fields: Any,
) -> NewSighting:
    """An unknown face seen by ``camera`` for three seconds from ``at``, with a crop and no
    camera row; ``fields`` replace any other of NewSighting's fields."""
    sighting = NewSighting(
        camera_id=None,
        camera_name=camera,
        track_key=track_key,
        started_at=at,
        ended_at=at + timedelta(seconds=3),
        decision="unknown",
        person_id=None,
        distance=None,
        score=None,
        faces_used=3,
        details={},
        model_id=MODEL,
        crop_jpeg=b"\xff\xd8jpeg",
        embedding=embedding,
    )
    return replace(sighting, **fields)
