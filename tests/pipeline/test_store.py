"""Cameras, sightings (encrypted, stored once), the outbox, the bus and the gallery matcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from cunan.pipeline.cameras import CameraSettings, NoticeNotPostedError, parse_zone
from cunan.pipeline.events import EventBus, SightingDecided
from cunan.pipeline.matcher import RegistryGalleryMatcher
from cunan.pipeline.store import CameraStore, EventOutbox, NewSighting, SightingStore
from cunan.registry.datadir import Registry
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.storage.pipeline_tables import Sighting

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def new_sighting(key: str, camera_id: int | None = None, **extra: object) -> NewSighting:
    fields: dict[str, object] = {
        "camera_id": camera_id,
        "camera_name": "east-gate",
        "track_key": key,
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=3),
        "decision": "unknown",
        "person_id": None,
        "distance": None,
        "score": None,
        "faces_used": 3,
        "details": {"reasons": ["unknown: 3 of 3 good faces unknown"]},
        "model_id": "dlib_resnet_v1",
        "crop_jpeg": b"\xff\xd8jpeg-bytes",
        "embedding": unit(1),
    }
    fields.update(extra)
    return NewSighting(**fields)  # type: ignore[arg-type]


def test_cameras_add_list_enable_disable_remove(registry: Registry) -> None:
    store = CameraStore(registry.database, cipher=registry.service.cipher)
    camera_id = store.add(
        "east-gate",
        "rtsp://admin:secret@192.0.2.10:554/stream1",
        zone_json='{"rectangle": [0, 100, 1920, 1080]}',
        settings=CameraSettings(fps_cap=5),
    )
    camera = store.get("east-gate")
    assert camera.id == camera_id and camera.enabled and not camera.public_notice_posted
    assert camera.display_url == "rtsp://***@192.0.2.10:554/stream1"
    assert camera.zone is not None and camera.settings.fps_cap == 5
    with pytest.raises(NoticeNotPostedError, match="public notice"):
        camera.require_notice()
    store.update("east-gate", public_notice_posted=True)
    store.get(camera_id).require_notice()
    store.update(camera_id, enabled=False)
    assert store.list(enabled_only=True) == []
    with pytest.raises(ValueError, match="already exists"):
        store.add("east-gate", "rtsp://x/y")
    store.remove("east-gate")
    assert store.list() == []


def test_bad_zone_and_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_zone('{"circle": 3}')
    with pytest.raises(ValueError):
        parse_zone('{"rectangle": [10, 10, 5, 20]}')
    assert parse_zone('{"polygon": [[0, 0], [10, 0], [5, 8]]}') is not None
    with pytest.raises(ValueError, match="unknown camera setting"):
        CameraSettings.from_json('{"fps": 3}')
    with pytest.raises(ValueError):
        CameraSettings.from_json('{"fps_cap": 0}')


def test_sighting_is_encrypted_and_stored_once(registry: Registry) -> None:
    camera_id = CameraStore(registry.database).add("east-gate", "rtsp://cam/1")
    store = SightingStore(registry.database, registry.service.cipher)
    first = store.add(new_sighting("run1:4", camera_id))
    again = store.add(new_sighting("run1:4", camera_id))
    assert first.created and not again.created
    assert again.sighting_id == first.sighting_id and again.event is None
    assert first.event is not None and first.event.decision == "unknown"
    [view] = store.list()
    assert view.has_crop and view.has_embedding and view.faces_used == 3
    with registry.database.transaction() as session:
        row = session.scalars(select(Sighting)).one()
        assert b"jpeg-bytes" not in (row.crop_ciphertext or b"")
    assert store.crop(first.sighting_id) == b"\xff\xd8jpeg-bytes"
    embedding = store.embedding(first.sighting_id)
    assert embedding is not None and np.allclose(embedding, unit(1))


def test_outbox_redelivers_until_acknowledged(registry: Registry) -> None:
    store = SightingStore(registry.database, registry.service.cipher)
    outbox = EventOutbox(registry.database)
    ids = [store.add(new_sighting(f"run:{i}")).event for i in range(3)]
    assert all(e is not None for e in ids)
    pending = outbox.pending("alerts")
    assert [e.kind for e in pending] == ["sighting.decided"] * 3
    # The consumer handled only the first before it went down: the rest come again.
    outbox.ack("alerts", [pending[0].id])
    assert [e.id for e in outbox.pending("alerts")] == [pending[1].id, pending[2].id]
    assert len(outbox.pending("cases")) == 3  # consumers acknowledge independently
    outbox.ack("alerts", [pending[1].id, pending[2].id, pending[1].id])
    assert outbox.pending("alerts") == []
    event = SightingDecided.from_payload(pending[0].id, pending[0].payload)
    assert event.camera_name == "east-gate" and event.started_at == T0


def test_bus_delivers_by_type_and_survives_a_failing_subscriber() -> None:
    bus = EventBus()
    seen: list[SightingDecided] = []

    def broken(_: SightingDecided) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(SightingDecided, broken)
    unsubscribe = bus.subscribe(SightingDecided, seen.append)
    event = SightingDecided(1, 2, None, "cam", T0, T0, "known", 5, 0.3, 2)
    bus.publish(event)
    bus.publish("something else")
    assert seen == [event]
    unsubscribe()
    bus.publish(event)
    assert seen == [event]


def test_matcher_follows_template_changes(registry: Registry) -> None:
    service = registry.service
    matcher = RegistryGalleryMatcher(service, "dlib_resnet_v1", poll_interval_s=3600)
    service.add_listener(matcher)
    probe = unit(10)[None, :]
    [empty] = matcher.decide(probe, [None])
    assert empty.decision == "unknown" and "gallery is empty" in empty.reasons
    person = service.add_person(
        NewPerson(name="张三", village_id=service.default_village_id()),
        consent=ConsentInput(collected_by="王", collected_at=T0),
        templates=[TemplateInput(vector=unit(10), model_id="dlib_resnet_v1")],
    )
    [hit] = matcher.decide(probe, [None])  # told by the listener, not by polling
    assert hit.decision == "known" and hit.identity == str(person)
    service.purge_face_data(person)
    [gone] = matcher.decide(probe, [None])
    assert gone.decision == "unknown"


def test_matcher_sees_changes_made_by_other_processes(registry: Registry) -> None:
    clock = [0.0]
    matcher = RegistryGalleryMatcher(
        registry.service, "dlib_resnet_v1", poll_interval_s=5, clock=lambda: clock[0]
    )
    assert matcher.decide(unit(3)[None, :], [None])[0].decision == "unknown"
    # Not registered as a listener: like a template added by the UI process.
    registry.service.add_person(
        NewPerson(name="李四", village_id=registry.service.default_village_id()),
        consent=ConsentInput(collected_by="王", collected_at=T0),
        templates=[TemplateInput(vector=unit(3), model_id="dlib_resnet_v1")],
    )
    clock[0] = 6.0
    assert matcher.decide(unit(3)[None, :], [None])[0].decision == "known"
