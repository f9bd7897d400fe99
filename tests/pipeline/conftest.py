"""Pipeline fixtures: a temporary data dir, Lin-Manuel Miranda enrolled, real RTSP servers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from cunan.faces.engine import FaceEngine
from cunan.faces.imageio import load_image
from cunan.registry.datadir import Registry
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from tests.capture.rtsp_server import gst_rtsp_server, perl_rtsp_server, rtsp_video
from tests.cli_helpers import registry
from tests.conftest import require_data

# The data dir the CLI tests use (outside CUNAN_* variables cleared).
__all__ = ["gst_rtsp_server", "perl_rtsp_server", "registry", "rtsp_video"]


def enrol(registry: Registry, engine: FaceEngine, photo: Path, name: str) -> int:
    """Register ``name`` with consent and one template from ``photo``."""
    face = engine.enrolment_face(load_image(photo), source=str(photo))
    assert face.embedding is not None and face.model_id is not None
    return registry.service.add_person(
        NewPerson(name=name, village_id=registry.service.default_village_id()),
        consent=ConsentInput(collected_by="网格员 王", collected_at=datetime.now(UTC)),
        templates=[TemplateInput(vector=face.embedding, model_id=face.model_id)],
    )


@pytest.fixture
def miranda(registry: Registry, engine: FaceEngine) -> tuple[int, np.ndarray]:
    """Lin-Manuel Miranda enrolled: (person id, template vector)."""
    photo = require_data("face_recognition_examples/examples/lin-manuel-miranda.png")
    person_id = enrol(registry, engine, photo, "Lin-Manuel Miranda")
    vector = registry.service.templates_of(person_id)[0].vector
    return person_id, vector
