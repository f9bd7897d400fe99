"""East Asian benchmark: the packaged name list, and the 1:1 and open-set arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import require_data

from cunan.bench.east_asian import (
    Population,
    east_asian_names,
    fixed_rule,
    open_set_figures,
    pair_distances,
    pair_figures,
)
from cunan.matching.openset import OpenSetConfig


def test_name_list_is_packaged_and_every_name_is_an_lfw_person() -> None:
    names = east_asian_names()
    assert 250 <= len(names) <= 300
    assert "Stanley_Tong" in names  # found after the first check (docs/benchmarks.md)
    assert {"Hu_Jintao", "Junichiro_Koizumi", "Roh_Moo-hyun"} <= names
    # Names whose face did not pass the check by eye stay out.
    assert not {"Kate_Lee", "Steve_Park", "Ben_Lee"} & names
    lfw = require_data("lfw/lfw-deepfunneled")
    missing = sorted(n for n in names if not (lfw / n).is_dir())
    assert missing == []


def _line(points: list[float]) -> np.ndarray:
    """Unit vectors on a circle: distances are chords, easy to reason about."""
    angles = np.asarray(points)
    v = np.zeros((len(angles), 4), dtype=np.float32)
    v[:, 0], v[:, 1] = np.cos(angles), np.sin(angles)
    return v


def test_pair_distances_and_figures() -> None:
    vectors = _line([0.0, 0.1, 1.0, 1.05, 2.0])
    people = {"a": [0, 1], "b": [2, 3], "c": [4]}
    genuine, impostor = pair_distances(vectors, people)
    assert len(genuine) == 2 and len(impostor) == 10 - 2
    chord = 2 * np.sin(np.asarray([0.1, 0.05]) / 2)
    assert np.allclose(np.sort(genuine), np.sort(chord), atol=1e-6)
    figures = pair_figures(genuine, impostor, threshold=0.2)
    assert figures.tar == 1.0 and figures.far == 0.0
    loose = pair_figures(genuine, impostor, threshold=1.0)
    # 0->2 and 1->2/1->3 (angles 0.9-1.0 apart) are the only impostors within chord 1.0.
    assert loose.far == pytest.approx(float((impostor <= 1.0).mean()))
    assert 0 < loose.far < 1


def test_open_set_figures_count_strangers_of_each_group_apart() -> None:
    rng = np.random.default_rng(3)
    names, vectors, numbers = [], [], []
    for group, count in (("EA", 14), ("XX", 14)):
        for p in range(count):
            centre = rng.standard_normal(16)
            for k in range(1 + p % 3):
                v = centre + 0.05 * rng.standard_normal(16)
                vectors.append(v / np.linalg.norm(v))
                names.append(f"{group}_{p}")
                numbers.append(k + 1)
    pop = Population(
        names=tuple(names),
        vectors=np.asarray(vectors, dtype=np.float32),
        numbers=np.asarray(numbers, dtype=np.int32),
        east_asian=np.asarray([n.startswith("EA") for n in names]),
        half=np.zeros(len(names), dtype=np.int64),
    )
    rule = fixed_rule(OpenSetConfig(), "m")
    f = open_set_figures(pop, rule, "east_asian", 0, half=0)
    eligible = [p for p in range(14) if 1 + p % 3 >= 2]
    assert f.size == len(eligible) and f.draws == 1
    assert f.n_probes == sum(p % 3 for p in eligible)
    # All eligible people are enrolled: the East Asian strangers are the singletons.
    assert f.n_strangers["east_asian"] == 14 - len(eligible)
    assert f.n_strangers["rest"] == len([n for n in names if n.startswith("XX")])
    # Well separated synthetic people: found, and no stranger taken for anyone.
    assert f.tpir == 1.0
    assert f.fpir == {"east_asian": 0.0, "rest": 0.0}
    small = open_set_figures(pop, rule, "east_asian", 3, half=0, draws=4)
    assert small.size == 3 and small.draws == 4
    # Left-out eligible people's images join the singletons as strangers.
    assert small.n_strangers["east_asian"] > f.n_strangers["east_asian"]


def test_other_half_strangers_are_counted_apart_and_pooled() -> None:
    rng = np.random.default_rng(11)
    names, vectors, numbers, halves = [], [], [], []

    def add(name: str, v: np.ndarray, number: int, half: int) -> None:
        vectors.append(v / np.linalg.norm(v))
        names.append(name)
        numbers.append(number)
        halves.append(half)

    centres = {f"EA_{p}": rng.standard_normal(16) for p in range(6)}
    for name, centre in centres.items():  # half A: six people with two images each
        for k in (1, 2):
            add(name, centre + 0.05 * rng.standard_normal(16), k, 0)
    add("EA_single", rng.standard_normal(16), 1, 0)  # half A's one stranger, unlike anyone
    for p in range(3):  # half B: three strangers unlike anyone ...
        add(f"EA_B{p}", rng.standard_normal(16), 1, 1)
    add("EA_twin", np.asarray(vectors[0], dtype=np.float64), 1, 1)  # ... and EA_0's look-alike
    pop = Population(
        names=tuple(names),
        vectors=np.asarray(vectors, dtype=np.float32),
        numbers=np.asarray(numbers, dtype=np.int32),
        east_asian=np.ones(len(names), dtype=bool),
        half=np.asarray(halves, dtype=np.int64),
    )
    rule = fixed_rule(OpenSetConfig(), "m")
    plain = open_set_figures(pop, rule, "east_asian", 0, half=0)
    assert plain.fpir_other_half is None and "other_half_same_group_strangers" not in (
        plain.as_json()
    )
    f = open_set_figures(pop, rule, "east_asian", 0, half=0, other_half=True)
    # The same half's figures do not change; the other half's look-alike is named.
    same = (f.tpir, f.fpir["east_asian"], f.tpir_at_fpir_1e2)
    assert same == (plain.tpir, plain.fpir["east_asian"], plain.tpir_at_fpir_1e2)
    assert f.fpir["east_asian"] == 0.0 and f.tpir_at_fpir_1e2 == 1.0
    assert f.other_half_strangers == 4 and f.fpir_other_half == pytest.approx(1 / 4)
    # Pooled, the look-alike sets the threshold at FPIR 1 %: EA_0's own probe scores lower.
    assert f.tpir_at_fpir_1e2_both_halves is not None and f.tpir_at_fpir_1e2_both_halves < 1.0
    block = f.as_json()["other_half_same_group_strangers"]
    assert isinstance(block, dict) and block["strangers"] == 4


def test_degrade_shrinks_the_face_to_the_width_asked_and_drops_colour() -> None:
    from cunan.bench.degraded import degrade

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(250, 250, 3), dtype=np.uint8)
    small = degrade(image, face_width=100.0, target_width=50.0)
    assert small.shape == (125, 125, 3) and small.dtype == np.uint8
    assert np.array_equal(small[..., 0], small[..., 1])
    assert np.array_equal(small[..., 1], small[..., 2])
    # Blurred: neighbouring pixels differ less than in the (noise) original.
    assert (
        np.abs(np.diff(small[..., 0].astype(int), axis=1)).mean()
        < np.abs(np.diff(image[..., 0].astype(int), axis=1)).mean()
    )


def test_degraded_figures_count_named_strangers_and_the_quality_gate() -> None:
    from cunan.bench.degraded import DegradedFaces, degraded_figures

    rng = np.random.default_rng(5)
    names, vectors, numbers = [], [], []
    centres = {}
    for group in ("EA", "XX"):
        for p in range(6):
            centres[f"{group}_{p}"] = rng.standard_normal(16)
            for k in range(2):
                v = centres[f"{group}_{p}"] + 0.05 * rng.standard_normal(16)
                vectors.append(v / np.linalg.norm(v))
                names.append(f"{group}_{p}")
                numbers.append(k + 1)
    pop = Population(
        names=tuple(names),
        vectors=np.asarray(vectors, dtype=np.float32),
        numbers=np.asarray(numbers, dtype=np.int32),
        east_asian=np.asarray([n.startswith("EA") for n in names]),
        half=np.ones(len(names), dtype=np.int64),
    )
    # Degraded faces of everyone's second image; two of them "look like" enrolled EA_0.
    rows = np.asarray([i for i, k in enumerate(numbers) if k == 2], dtype=np.int64)
    faces = pop.vectors[rows].copy()
    faces[[6, 7]] = pop.vectors[0]  # XX_0 and XX_1 degraded onto EA_0's enrolment photo
    quality_ok = np.ones(len(rows), dtype=bool)
    quality_ok[7] = False
    found = np.ones(len(rows), dtype=bool)
    found[8] = False
    degraded = DegradedFaces(rows, faces, found, quality_ok, np.full(len(rows), 50.0))
    f = degraded_figures(pop, fixed_rule(OpenSetConfig(), "m"), degraded, "east_asian", 0, 1)
    assert f.size == 6 and f.draws == 1
    assert f.strangers == 6  # the six XX people; every EA person is enrolled
    assert f.found == 11 and f.passed_quality == 11
    assert f.named_any == pytest.approx(2 / 6)
    assert f.named_passing_quality == pytest.approx(1 / 6)
