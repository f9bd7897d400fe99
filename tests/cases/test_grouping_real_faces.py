"""Grouping real unknown faces (LFW): same person's images join one case, others don't."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from cunan.cases.grouping import OnlineGrouper, score_grouping
from cunan.cases.settings import CaseSettings
from cunan.faces.engine import FaceEngine
from cunan.faces.imageio import load_image
from tests.conftest import require_data

pytestmark = pytest.mark.slow


def test_lfw_strangers_group_pure_and_mostly_complete(engine: FaceEngine) -> None:
    root = require_data("lfw/lfw-deepfunneled")
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 3)
    rng = random.Random(5)
    chosen = rng.sample(people, 25)
    items: list[tuple[str, np.ndarray]] = []
    for person in chosen:
        for photo in sorted(person.glob("*.jpg"))[:3]:
            faces = engine.analyze(load_image(photo))
            if not faces:
                continue
            face = max(faces, key=lambda f: f.face.box.width)
            assert face.embedding is not None
            items.append((person.name, face.embedding))
    rng.shuffle(items)  # sightings arrive in any order
    settings = CaseSettings()
    grouper = OnlineGrouper(settings.link_threshold, settings.linkage, settings.max_kept_per_case)
    cases = [grouper.add(vector) for _, vector in items]
    score = score_grouping([name for name, _ in items], cases)
    # Measured on 200 LFW people (docs/cases.md): purity 0.998, completeness 0.90.
    assert score.purity >= 0.95, score
    assert score.completeness >= 0.75, score
    assert Counter(cases).most_common(1)[0][1] <= 4, score  # no case swallows many people
