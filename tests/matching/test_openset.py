"""Open-set decision rules on synthetic unit vectors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from cunan.domain import FaceQuality
from cunan.faces.quality import SIGHTING_THRESHOLDS
from cunan.matching.openset import (
    BASELINE_CONFIG,
    Gallery,
    OpenSetConfig,
    ScoreForm,
    decide,
    decide_many,
    identity_distances,
    match_arrays,
    pairwise_distances,
)


def unit(*xs: float) -> NDArray[np.float32]:
    v = np.zeros(8, dtype=np.float32)
    v[: len(xs)] = xs
    return np.asarray(v / np.linalg.norm(v), dtype=np.float32)


def rotate_towards(
    a: NDArray[np.float32], b: NDArray[np.float32], angle: float
) -> NDArray[np.float32]:
    """Unit vector at ``angle`` radians from ``a`` in the plane of ``a`` and ``b``."""
    b_perp = b - a * float(a @ b)
    b_perp /= np.linalg.norm(b_perp)
    return np.asarray(np.cos(angle) * a + np.sin(angle) * b_perp, dtype=np.float32)


def basis(i: int) -> NDArray[np.float32]:
    v = np.zeros(8, dtype=np.float32)
    v[i] = 1.0
    return v


def chord(angle: float) -> float:
    return float(2.0 * np.sin(angle / 2.0))


def plain(**kw: object) -> OpenSetConfig:
    base: dict[str, object] = {"min_margin": None, "normalisation": "none", "min_score": None}
    base.update(kw)
    return OpenSetConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def gallery() -> Gallery:
    vectors = np.stack([basis(i) for i in range(6)])
    return Gallery.build(vectors, ["a", "b", "c", "d", "e", "f"], model_id="test")


def test_distances_are_euclidean_on_unit_vectors() -> None:
    a = np.stack([basis(0), basis(1)])
    d = pairwise_distances(a, a)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, [[0, np.sqrt(2)], [np.sqrt(2), 0]], atol=1e-6)


def test_global_threshold_is_respected(gallery: Gallery) -> None:
    near = rotate_towards(basis(0), basis(7), 0.3)  # chord 0.2985
    d = chord(0.3)
    accepted = decide(gallery, near, plain(max_distance=d + 1e-3))
    rejected = decide(gallery, near, plain(max_distance=d - 1e-3))
    assert accepted.decision == "known" and accepted.identity == "a"
    assert rejected.decision == "unknown" and rejected.identity == "a"
    assert accepted.distance == pytest.approx(d, abs=1e-5)
    assert any("max_distance" in r for r in rejected.reasons)


def test_equidistant_probe_is_unknown_by_margin(gallery: Gallery) -> None:
    probe = unit(1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3)
    config = plain(max_distance=1.0, min_margin=0.05)
    result = decide(gallery, probe, config)
    assert result.distance < 1.0
    assert result.margin == pytest.approx(0.0, abs=1e-6)
    assert {result.identity, result.runner_up_identity} == {"a", "b"}
    assert result.decision == "unknown"
    assert any("margin" in r and "<" in r for r in result.reasons)
    # The same probe passes the baseline rule alone: the margin rule is what refuses it.
    assert decide(gallery, probe, plain(max_distance=1.0)).decision == "known"


def test_margin_is_to_runner_up_identity_not_template() -> None:
    # Identity "a" has two nearly identical templates: a template-level runner-up would
    # give a margin of ~0 and wrongly refuse a clear match.
    a1 = basis(0)
    a2 = rotate_towards(basis(0), basis(7), 0.02)
    vectors = np.stack([a1, a2, basis(1), basis(2)])
    g = Gallery.build(vectors, ["a", "a", "b", "c"], model_id="test")
    probe = rotate_towards(basis(0), basis(6), 0.2)
    result = decide(g, probe, plain(max_distance=0.5, min_margin=0.3))
    assert result.identity == "a" and result.runner_up_identity in {"b", "c"}
    assert result.margin > 1.0
    assert result.decision == "known"


def test_min_versus_mean_aggregation() -> None:
    # "a" has one template right on the probe and one far away; "b" is moderately close.
    probe = basis(0)
    vectors = np.stack([basis(0), basis(3), rotate_towards(basis(0), basis(5), 0.6), basis(4)])
    g = Gallery.build(vectors, ["a", "a", "b", "c"], model_id="test")
    d_min = identity_distances(g, probe[None, :], "min")[0]
    d_mean = identity_distances(g, probe[None, :], "mean")[0]
    assert d_min[0] == pytest.approx(0.0, abs=1e-6)
    assert d_mean[0] == pytest.approx(np.sqrt(2) / 2, abs=1e-5)
    assert decide(g, probe, plain(max_distance=0.3, aggregation="min")).identity == "a"
    by_mean = decide(g, probe, plain(max_distance=0.7, aggregation="mean"))
    assert by_mean.identity == "b" and by_mean.decision == "known"


def test_identity_normalisation_uses_identity_cohort() -> None:
    # "a" sits in a crowded corner (its nearest other identities are close), "d" is isolated.
    a = basis(0)
    crowd = [rotate_towards(a, basis(i), 0.5) for i in (1, 2, 3)]
    d = basis(6)
    g = Gallery.build(np.stack([a, *crowd, d]), ["a", "b", "c", "e", "d"], model_id="t")
    ia, id_ = g.identities.index("a"), g.identities.index("d")
    mean, std = g.cohort_stats(2)
    assert mean[ia] < mean[id_]
    probe_a = rotate_towards(a, basis(7), 0.25)
    probe_d = rotate_towards(d, basis(7), 0.25)
    forms: tuple[ScoreForm, ...] = ("log_ratio", "zscore")
    for form in forms:
        cfg = OpenSetConfig(
            max_distance=1.0, normalisation="identity", score_form=form, min_score=0.0, cohort_k=2
        )
        res = match_arrays(g, np.stack([probe_a, probe_d]), cfg)
        # Same distance to the claimed identity, but less telling in a's crowded corner.
        assert res.distance[0] == pytest.approx(res.distance[1], abs=1e-5)
        assert res.score[0] < res.score[1]
        if form == "log_ratio":
            expected = np.log(mean[ia] / res.distance[0])
        else:
            expected = (mean[ia] - res.distance[0]) / std[ia]
        assert res.score[0] == pytest.approx(expected, rel=1e-4)


def test_probe_normalisation_uses_probe_cohort(gallery: Gallery) -> None:
    probe = rotate_towards(basis(0), basis(7), 0.3)
    cfg = OpenSetConfig(
        max_distance=1.0, normalisation="probe", score_form="log_ratio", min_score=0.5, cohort_k=3
    )
    res = match_arrays(gallery, probe[None, :], cfg)
    others = np.sort(identity_distances(gallery, probe[None, :])[0])[1:4]
    assert res.probe_score[0] == pytest.approx(np.log(others.mean() / res.distance[0]), rel=1e-4)
    assert bool(res.known[0])
    strict = OpenSetConfig(max_distance=1.0, normalisation="probe", min_score=10.0, cohort_k=3)
    result = decide(gallery, probe, strict)
    assert result.decision == "unknown"
    assert any("probe side" in r and "<" in r for r in result.reasons)


def test_generic_probe_is_unknown_by_probe_normalisation(gallery: Gallery) -> None:
    # A probe roughly as close to every identity as to its best one is not anyone.
    probe = unit(1.1, 1.0, 1.0, 1.0, 1.0, 1.0)
    cfg = OpenSetConfig(max_distance=2.0, normalisation="probe", min_score=0.1, cohort_k=3)
    result = decide(gallery, probe, cfg)
    assert result.identity == "a"
    assert result.decision == "unknown"


def test_symmetric_is_mean_of_both_sides(gallery: Gallery) -> None:
    probe = rotate_towards(basis(1), basis(7), 0.4)
    cfg = OpenSetConfig(max_distance=1.0, normalisation="symmetric", min_score=0.0, cohort_k=3)
    res = match_arrays(gallery, probe[None, :], cfg)
    expected = (res.identity_score[0] + res.probe_score[0]) / 2
    assert res.score[0] == pytest.approx(expected, rel=1e-6)


def test_quality_gate_refuses_poor_faces(gallery: Gallery) -> None:
    probe = basis(0)
    good = FaceQuality(100, 40, 200, 0.9, 0.0, 0.0, 120, True)
    tiny = FaceQuality(20, 8, 200, 0.9, 0.0, 0.0, 120, False)
    cfg = plain(max_distance=0.5, quality=SIGHTING_THRESHOLDS)
    results = decide_many(gallery, np.stack([probe, probe]), cfg, qualities=[good, tiny])
    assert [r.decision for r in results] == ["known", "unknown"]
    assert any("quality gate failed" in r and "face width" in r for r in results[1].reasons)
    # Without a gate configured, quality is ignored.
    assert decide(gallery, probe, plain(max_distance=0.5), quality=tiny).decision == "known"


def test_empty_and_single_identity_galleries() -> None:
    empty = Gallery.build(np.zeros((0, 8), dtype=np.float32), [], model_id="t")
    result = decide(empty, basis(0), OpenSetConfig())
    assert result.decision == "unknown" and result.identity is None
    single = Gallery.build(basis(0)[None, :], ["a"], model_id="t")
    result = decide(single, basis(0), OpenSetConfig())
    # No runner-up and no cohort: the 1:1 fallback threshold decides, not the loose cap.
    assert result.decision == "known" and result.runner_up_identity is None
    assert np.isinf(result.margin)
    assert any("fallback_max_distance" in r for r in result.reasons)
    near_cap = (basis(0) + 0.5 * basis(1)) / np.linalg.norm(basis(0) + 0.5 * basis(1))
    # 0.43 < distance ~0.46 <= max_distance 0.55: known by the cap, unknown by the fallback.
    assert decide(single, near_cap.astype(np.float32), OpenSetConfig()).decision == "unknown"


def test_default_and_baseline_configs_are_valid() -> None:
    assert OpenSetConfig().max_distance > 0
    assert BASELINE_CONFIG.normalisation == "none"
    with pytest.raises(ValueError):
        OpenSetConfig(normalisation="identity", min_score=None)
    with pytest.raises(ValueError):
        OpenSetConfig(min_margin=-1.0)


def test_vectorised_matches_single_decisions(gallery: Gallery) -> None:
    rng = np.random.default_rng(1)
    probes = rng.normal(size=(50, 8)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    cfg = OpenSetConfig(
        max_distance=1.2, min_margin=0.02, normalisation="symmetric", min_score=0.05
    )
    batch = match_arrays(gallery, probes, cfg)
    singles = [decide(gallery, p, cfg) for p in probes]
    assert [s.known for s in singles] == list(batch.known)
    full = identity_distances(gallery, probes)
    np.testing.assert_allclose(batch.distance, full.min(axis=1), atol=1e-6)
    assert list(batch.best) == list(full.argmin(axis=1))
