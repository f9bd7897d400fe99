"""Faces too poor to judge never decide a track: no "seen" credit, no case (issue 12 item 5).

Real faces (face_recognition's examples), the real engine, best-shot selector, gallery
matcher, sighting store, case consumer and duty reconciler, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
from PIL import Image, ImageFilter

from cunan.cases.consumer import CaseConsumer
from cunan.config import Settings
from cunan.domain import BoundingBox, DetectedFace, RGBImage
from cunan.duties.clock import start_of_day
from cunan.duties.daily import Duties
from cunan.duties.settings import DutySettings
from cunan.faces.engine import FaceEngine
from cunan.faces.imageio import load_image
from cunan.pipeline.decision import TrackDecision
from cunan.pipeline.matcher import RegistryGalleryMatcher
from cunan.pipeline.runner import TrackAnalyser
from cunan.pipeline.store import EventOutbox, NewSighting
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.registry.service import NewTenancy
from cunan.tracking.bestshots import BestShotConfig, BestShotSelector, TrackShots
from cunan.tracking.tracker import Track
from tests.cases.conftest import Env, database, db_url, env
from tests.conftest import require_data
from tests.duties.helpers import backdate_person

__all__ = ["database", "db_url", "env"]

EXAMPLES = "face_recognition_examples/examples/knn_examples/train"
#: The gallery: Obama (the person seen) and four other people, so cohorts exist.
GALLERY = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "kit": "kit_harington/john1.jpeg",
    "rose": "rose_leslie/img1.jpg",
    "alex": "alex_lacamoire/img1.jpg",
}
MOVE_IN = date(2025, 1, 1)


def poor(image: RGBImage, face_width: float, target: float) -> RGBImage:
    """The camera face of issue 12's degraded protocol: small, grey, blurred."""
    scale = target / face_width
    pil = Image.fromarray(image)
    pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.BILINEAR)
    pil = pil.convert("L").convert("RGB").filter(ImageFilter.GaussianBlur(1.0))
    return np.asarray(pil, dtype=np.uint8)


def one_face(engine: FaceEngine, image: RGBImage) -> DetectedFace:
    faces = engine.detect(image)
    assert len(faces) == 1
    return faces[0]


def track(n: int) -> Track:
    return Track(1, True, 0.0, n * 0.2, n, 0, BoundingBox(0, 0, 1, 1), ())


def enrol_all(env: Env, engine: FaceEngine) -> dict[str, int]:
    """Everyone of GALLERY as a tenant of one room each (Obama's "not seen" task follows)."""
    landlord = env.registry.add_landlord(env.village, "房东 李")
    house = env.registry.add_house(env.village, "桃源路1号", landlord_id=landlord)
    ids = {}
    for n, (key, photo) in enumerate(GALLERY.items()):
        face = engine.enrolment_face(load_image(require_data(f"{EXAMPLES}/{photo}")))
        assert face.embedding is not None and face.model_id is not None
        room = env.registry.add_room(house, f"{n + 1}01", capacity=1)
        ids[key] = env.registry.add_person(
            NewPerson(name=f"租客{n}", village_id=env.village),
            consent=ConsentInput(collected_by="网格员 王", collected_at=env.clock.now),
            templates=[TemplateInput(vector=face.embedding, model_id=face.model_id)],
            tenancy=NewTenancy(room_id=room, move_in=MOVE_IN, reported_by="房东 李"),
        )
        backdate_person(env.database, ids[key], start_of_day(MOVE_IN, DutySettings().zone))
    return ids


def store(env: Env, analyser: TrackAnalyser, shots: TrackShots, key: str) -> TrackDecision:
    """Decide and store one track as the camera runner does."""
    decision, embedding = analyser.analyse(shots)
    env.sightings.add(
        NewSighting(
            camera_id=None,
            camera_name="east-gate",
            track_key=key,
            started_at=env.clock.now,
            ended_at=env.clock.now,
            decision=decision.verdict,
            person_id=int(decision.identity) if decision.verdict == "known" else None,
            distance=decision.distance,
            score=decision.score,
            faces_used=decision.faces_good,
            details=decision.to_json(),
            model_id=analyser.matcher.model_id,
            crop_jpeg=b"\xff\xd8jpeg",
            embedding=embedding,
        )
    )
    return decision


def test_a_track_of_poor_faces_waits_for_a_good_one(env: Env, engine: FaceEngine) -> None:
    ids = enrol_all(env, engine)
    settings = DutySettings()
    duties = Duties.build(env.database, env.registry, settings, clock=env.clock)
    env.clock.now = start_of_day(MOVE_IN, settings.zone) + timedelta(days=settings.not_seen_days)
    duties.reconciler.reconcile()
    assert ids["obama"] in {t.person_id for t in duties.reconciler.tasks()}

    quality = Settings().faces.sighting_quality.thresholds()
    matcher = RegistryGalleryMatcher(
        env.registry, engine.embedder.model_id, Settings().matching.open_set_config()
    )
    analyser = TrackAnalyser(engine.embedder, matcher, thresholds=quality)
    selector = BestShotSelector(BestShotConfig(thresholds=quality))
    # Obama's other photo, as a far camera would see it: small, grey and blurred.
    photo = load_image(require_data(f"{EXAMPLES}/obama/obama2.jpg"))
    width = one_face(engine, photo).box.width
    for i, target in enumerate((42.0, 46.0, 44.0, 48.0)):
        frame = poor(photo, width, target)
        selector.offer(frame, 1, one_face(engine, frame), i * 0.2, i * 10)
    shots = selector.shots(1)
    assert shots and not any(s.quality.passed for s in shots)

    decision = store(env, analyser, TrackShots(track(4), shots), "poor")
    assert decision.verdict == "undecided" and decision.identity is None
    assert "too poor to judge" in decision.reasons[-1]
    # Stored and visible, but no "seen" credit and no case.
    outbox = EventOutbox(env.database)
    consumer = CaseConsumer(env.cases, outbox, on_known=duties.reconciler.on_sighting)
    assert consumer.poll() == []
    assert ids["obama"] in {t.person_id for t in duties.reconciler.tasks()}
    [row] = env.sightings.list()
    assert row.decision == "undecided" and row.person_id is None

    # The same track then comes closer: its good faces rank first and decide.
    for i in range(2):
        selector.offer(photo, 1, one_face(engine, photo), 1.0 + i * 0.2, 50 + i * 10)
    shots = selector.shots(1)
    assert [s.quality.passed for s in shots[:2]] == [True, True]
    env.clock.advance(minutes=1)
    decision = store(env, analyser, TrackShots(track(6), shots), "closer")
    assert decision.verdict == "known" and decision.identity == str(ids["obama"])
    consumer.poll()
    assert ids["obama"] not in {t.person_id for t in duties.reconciler.tasks()}
