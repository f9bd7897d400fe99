"""Jittered descriptors: N=1 is the plain descriptor, N>1 is seeded and still tells people apart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cunan.config import FaceSettings
from cunan.domain import DetectedFace, RGBImage
from cunan.faces.align import (
    JITTER_MAX_ROTATION_DEG,
    JITTER_MAX_SHIFT,
    JITTER_MIN_SCALE,
    MIRROR_JITTERS,
    NO_JITTER,
    ChipJitter,
    arcface_chip,
    arcface_jittered_chips,
    dlib_chips,
    dlib_jittered_chips,
    random_jitters,
)
from cunan.faces.engine import DEFAULT_ENROL_JITTER, EngineConfig, FaceEngine
from cunan.faces.imageio import load_image
from cunan.faces.landmarks import ARCFACE_REFERENCE_112, shape_from_points
from cunan.registry import importer

#: Default 1:1 threshold of the settings: jittered descriptors must keep working with it.
THRESHOLD = FaceSettings().match_threshold


def _face(engine: FaceEngine, path: Path) -> tuple[RGBImage, DetectedFace]:
    image = load_image(path)
    faces = engine.detect(image)
    assert len(faces) == 1
    return image, faces[0]


def test_random_jitters_are_seeded_and_within_range() -> None:
    assert random_jitters(1, seed=0) == (NO_JITTER,)
    assert random_jitters(2, seed=0) == MIRROR_JITTERS
    jitters = random_jitters(50, seed=7)
    assert jitters == random_jitters(50, seed=7)
    assert jitters != random_jitters(50, seed=8)
    assert jitters[:2] == MIRROR_JITTERS
    # Fewer copies are the first copies of more: results nest as N grows.
    assert random_jitters(10, seed=7) == jitters[:10]
    rest = jitters[2:]
    assert all(abs(j.rotation_deg) <= JITTER_MAX_ROTATION_DEG for j in rest)
    assert all(JITTER_MIN_SCALE <= j.scale <= 1.0 for j in rest)
    assert all(max(abs(j.shift_x), abs(j.shift_y)) <= JITTER_MAX_SHIFT for j in rest)
    # Both mirrored and unmirrored copies occur, and no two jitters are alike.
    assert 0 < sum(j.mirror for j in rest) < len(rest)
    assert len(set(rest)) == len(rest)
    with pytest.raises(ValueError):
        random_jitters(0, seed=0)


def test_unjittered_dlib_chip_is_the_plain_chip(engine: FaceEngine, examples: Path) -> None:
    image, face = _face(engine, examples / "obama.jpg")
    assert face.dlib_points is not None
    shape = shape_from_points(face.box, face.dlib_points)
    plain = dlib_chips(image, [shape])[0]
    chips = dlib_jittered_chips(image, shape, (*MIRROR_JITTERS, ChipJitter(rotation_deg=2.0)))
    assert np.array_equal(chips[0], plain)
    assert np.array_equal(chips[1], plain[:, ::-1])
    assert not np.array_equal(chips[2], plain)


def test_jittered_dlib_chips_have_no_black_borders(engine: FaceEngine, examples: Path) -> None:
    # The face is well inside the photo, so a perturbed alignment must still cut a chip
    # full of photo pixels; warping the finished chip would leave black corners.
    image, face = _face(engine, examples / "obama.jpg")
    assert face.dlib_points is not None
    shape = shape_from_points(face.box, face.dlib_points)
    extreme = ChipJitter(
        rotation_deg=JITTER_MAX_ROTATION_DEG,
        scale=JITTER_MIN_SCALE,
        shift_x=JITTER_MAX_SHIFT,
        shift_y=-JITTER_MAX_SHIFT,
    )
    chips = dlib_jittered_chips(image, shape, (extreme, *random_jitters(20, seed=0)))
    corners = chips[:, [0, 0, -1, -1], [0, -1, 0, -1], :]
    assert (corners.sum(axis=-1) > 0).all()


def test_arcface_jittered_chips_match_plain_and_mirror() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(200, 200, 3), dtype=np.uint8)
    landmarks = ARCFACE_REFERENCE_112.astype(np.float64) + 40.0
    plain = arcface_chip(image, landmarks)
    chips = arcface_jittered_chips(image, landmarks, (*MIRROR_JITTERS, ChipJitter(scale=0.97)))
    assert np.array_equal(chips[0], plain)
    assert np.array_equal(chips[1], plain[:, ::-1])
    assert not np.array_equal(chips[2], plain)


def test_one_jitter_is_todays_descriptor(engine: FaceEngine, examples: Path) -> None:
    image = load_image(examples / "two_people.jpg")
    faces = engine.detect(image)
    plain = engine.embed_faces(image, faces)
    assert np.array_equal(engine.embed_faces_jittered(image, faces, 1), plain)


def test_jittered_descriptor_is_deterministic_unit_and_different(
    engine: FaceEngine, examples: Path
) -> None:
    image = load_image(examples / "two_people.jpg")
    faces = engine.detect(image)
    first = engine.embed_faces_jittered(image, faces, 5)
    assert np.array_equal(first, engine.embed_faces_jittered(image, faces, 5))
    assert first.shape == (2, 128)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    plain = engine.embed_faces(image, faces)
    assert not np.allclose(first, plain, atol=1e-4)
    # Each face keeps its own identity: jittered face i is nearest to plain face i.
    distances = np.linalg.norm(first[:, None, :] - plain[None, :, :], axis=2)
    assert list(distances.argmin(axis=1)) == [0, 1]
    # Another seed jitters differently.
    other = FaceEngine(engine.detector, engine.embedder, jitter_seed=1)
    assert not np.array_equal(other.embed_faces_jittered(image, faces, 5), first)


def test_jittered_descriptors_match_obama_and_separate_biden(
    engine: FaceEngine, examples: Path, test_images: Path
) -> None:
    paths = [examples / "obama.jpg", examples / "obama2.jpg", test_images / "obama3.jpg"]
    obama = [engine.embed_faces_jittered(*_split(_face(engine, p)), 10)[0] for p in paths]
    biden = engine.embed_faces_jittered(*_split(_face(engine, examples / "biden.jpg")), 10)[0]
    for i in range(len(obama)):
        for j in range(i + 1, len(obama)):
            assert np.linalg.norm(obama[i] - obama[j]) < THRESHOLD
        assert np.linalg.norm(obama[i] - biden) > THRESHOLD
    # The asymmetric case of the product: a jittered template against a plain camera face.
    image, face = _face(engine, examples / "obama2.jpg")
    probe = engine.embed_faces(image, [face])[0]
    assert np.linalg.norm(obama[0] - probe) < THRESHOLD
    assert np.linalg.norm(biden - probe) > THRESHOLD


def _split(pair: tuple[RGBImage, DetectedFace]) -> tuple[RGBImage, list[DetectedFace]]:
    return pair[0], [pair[1]]


def test_enrolment_uses_the_jitter_setting(engine: FaceEngine, examples: Path) -> None:
    assert FaceSettings().enrol_jitter == DEFAULT_ENROL_JITTER
    config = EngineConfig.from_settings(FaceSettings(enrol_jitter=3))
    assert config.enrol_jitter == 3
    three = FaceEngine(engine.detector, engine.embedder, enrol_jitter=config.enrol_jitter)
    one = FaceEngine(engine.detector, engine.embedder, enrol_jitter=1)
    image, face = _face(engine, examples / "obama.jpg")
    enrolled = three.enrolment_face(image).embedding
    assert enrolled is not None
    assert np.array_equal(enrolled, engine.embed_faces_jittered(image, [face], 3)[0])
    plain = one.enrolment_face(image).embedding
    assert plain is not None
    assert np.array_equal(plain, engine.embed_faces(image, [face])[0])
    assert not np.allclose(enrolled, plain, atol=1e-4)
    with pytest.raises(ValueError):
        FaceEngine(engine.detector, engine.embedder, enrol_jitter=0)


def test_engine_from_config_carries_the_setting() -> None:
    engine = FaceEngine.from_config(EngineConfig(enrol_jitter=4))
    assert engine.enrol_jitter == 4
    assert FaceEngine.from_config(EngineConfig()).enrol_jitter == DEFAULT_ENROL_JITTER


def test_roster_import_engines_use_the_jitter_setting() -> None:
    # The importer builds a second, faster engine for the first detection attempt; it
    # must enrol with the configured jitter as well.
    importer._init_worker(replace(EngineConfig(), upsample=1, enrol_jitter=3), 10_000_000, None)
    engines = importer._worker_engines
    assert engines is not None
    fast, full = engines
    assert fast is not full
    assert fast.enrol_jitter == full.enrol_jitter == 3
