"""Jittered LFW runs: the jitter spec, its cache, and descriptors rebuilt from cached faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import require_data

from cunan.bench.lfw import evaluate_pairs
from cunan.bench.lfw_data import image_path
from cunan.bench.lfw_embeddings import (
    JitterSpec,
    build_engine,
    jitter_cache_path,
    load_or_compute,
    load_or_compute_jittered,
)
from cunan.faces.align import MIRROR_JITTERS, random_jitters
from cunan.faces.embed import embed_jittered
from cunan.faces.imageio import load_image


def test_jitter_spec_parse_and_keys() -> None:
    assert JitterSpec.parse("1").is_plain
    assert JitterSpec.parse("mirror") == JitterSpec.parse("2")
    assert JitterSpec.parse("mirror").jitters() == MIRROR_JITTERS
    ten = JitterSpec.parse("10")
    assert not ten.is_plain
    assert ten.jitters() == random_jitters(10, ten.seed)
    keys = {JitterSpec.parse(v).key() for v in ("1", "2", "10", "30")}
    keys.add(JitterSpec(copies=10, seed=1).key())
    assert len(keys) == 5
    for bad in ("0", "-3", "ten", ""):
        with pytest.raises(ValueError):
            JitterSpec.parse(bad)
    base = Path("/cache/lfw-x.npz")
    assert jitter_cache_path(base, ten) != jitter_cache_path(base, JitterSpec.parse("30"))
    assert jitter_cache_path(base, ten) != base


def test_evaluate_pairs_separable() -> None:
    rng = np.random.default_rng(0)
    n = 600
    same = np.tile(np.repeat([True, False], 30), 10)
    folds = np.repeat(np.arange(10), 60)
    a = rng.normal(size=(n, 8)).astype(np.float32)
    # Genuine partners are near copies, impostors unrelated vectors.
    b = np.where(same[:, None], a + 0.01, rng.normal(size=(n, 8))).astype(np.float32)
    result = evaluate_pairs(a, b, same, folds)
    assert result.accuracy_mean == 1.0
    assert result.tar_at_far_1e2 == 1.0


@pytest.fixture(scope="module")
def small_lfw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three LFW people with two images each, linked (not copied) into a temporary folder."""
    lfw = require_data("lfw/lfw-deepfunneled")
    root = tmp_path_factory.mktemp("lfw")
    people = [p for p in sorted(lfw.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:3]
    for person in people:
        (root / person.name).mkdir()
        for image in sorted(person.glob("*.jpg"))[:2]:
            (root / person.name / image.name).symlink_to(image)
    return root


def test_cached_faces_rebuild_the_plain_descriptor(small_lfw: Path) -> None:
    base = load_or_compute(small_lfw, workers=1, show_progress=False)
    assert len(base.names) == 6
    embedder = build_engine("auto").embedder
    for row in range(len(base.names)):
        image = load_image(image_path(small_lfw, base.names[row], int(base.numbers[row])))
        vector = embedder.embed(image, [base.face(row)]).vectors[0]
        assert np.allclose(vector, base.vectors[row], atol=1e-5)


def test_jittered_vectors_are_cached_and_grow(small_lfw: Path) -> None:
    base = load_or_compute(small_lfw, workers=1, show_progress=False)
    spec = JitterSpec(copies=3)
    first = load_or_compute_jittered(small_lfw, base, [0, 1], spec, show_progress=False)
    assert first.have.tolist() == [True, True, False, False, False, False]
    assert first.images == 2
    assert np.allclose(np.linalg.norm(first.vectors[:2], axis=1), 1.0, atol=1e-5)
    assert np.isnan(first.vectors[2:]).all()
    # Close to, but not the same as, the plain descriptor of the same face.
    assert not np.allclose(first.vectors[:2], base.vectors[:2], atol=1e-4)
    assert (np.linalg.norm(first.vectors[:2] - base.vectors[:2], axis=1) < 0.2).all()
    # A later run asking for more rows computes only the new ones.
    second = load_or_compute_jittered(small_lfw, base, [0, 1, 2], spec, show_progress=False)
    assert second.images == 3
    assert np.array_equal(second.vectors[:2], first.vectors[:2])
    # Copies 1 and 2 (chip + mirror) were saved from the 3-copy run, and differ from it.
    mirror = load_or_compute_jittered(
        small_lfw, base, [0], JitterSpec.parse("mirror"), show_progress=False
    )
    assert mirror.images == 3
    assert mirror.derived_from == (spec.key(),)
    assert not np.allclose(mirror.vectors[0], first.vectors[0], atol=1e-5)


def test_random_run_fills_its_prefix_caches(small_lfw: Path) -> None:
    # The first p random jitters of an n-copy run are the p-copy run's jitters, so a
    # long run saves the shorter runs' descriptors as well.
    assert random_jitters(30, 0)[:10] == random_jitters(10, 0)
    base = load_or_compute(small_lfw, workers=1, show_progress=False)
    long = load_or_compute_jittered(
        small_lfw, base, [3, 4], JitterSpec(copies=6), show_progress=False
    )
    short = load_or_compute_jittered(
        small_lfw, base, [3], JitterSpec(copies=5), show_progress=False
    )
    assert short.derived_from == (JitterSpec(copies=6).key(),)
    assert short.images == 2
    embedder = build_engine("auto").embedder
    image = load_image(image_path(small_lfw, base.names[3], int(base.numbers[3])))
    direct = embed_jittered(embedder, [(image, base.face(3))], random_jitters(5, 0)).vectors[0]
    assert np.allclose(short.vectors[3], direct, atol=1e-5)
    assert not np.allclose(short.vectors[3], long.vectors[3], atol=1e-5)
