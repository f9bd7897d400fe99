"""1:1 comparison with the East Asian population statistic: two tests, and how sure it is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cunan.faces.verify import compare_vectors
from cunan.matching.adaptive import load_prior, population_prior_for
from tests.conftest import require_data
from tests.test_cli import run


def test_packaged_prior_describes_dlib_embeddings_only() -> None:
    prior = load_prior("east_asian")
    assert prior.model_id == "dlib_resnet_v1" and prior.mean.shape == (128,)
    assert population_prior_for("east_asian", "dlib_resnet_v1", 128) is prior
    # Another model's embeddings live in another space: no statistic applies.
    assert population_prior_for("east_asian", "arcface_r100", 512) is None
    assert population_prior_for("none", "dlib_resnet_v1", 128) is None


def test_both_distances_must_pass_and_the_rates_follow_the_tables() -> None:
    prior = load_prior()
    rng = np.random.default_rng(0)
    a = rng.standard_normal(128).astype(np.float32)
    a /= np.linalg.norm(a)
    same = compare_vectors(a, a, prior=prior)
    assert same.same_person and same.distance == 0.0 and same.population_distance == 0.0
    assert same.false_match_rate == 0.0 and "不同的人" in same.certainty()
    b = -a
    different = compare_vectors(a, b, prior=prior)
    assert not different.same_person
    assert different.population_distance is not None
    assert different.false_non_match_rate == pytest.approx(
        prior.genuine_miss_rate(different.population_distance)
    )
    assert different.false_non_match_rate < 0.01
    assert "同一个人" in different.certainty()
    # Raw rule passes, population rule refuses: the verdict is "different".
    strict = compare_vectors(a, a, prior=prior, population_threshold=-1.0)
    assert not strict.same_person
    raw_only = compare_vectors(a, b, prior=None)
    assert raw_only.population is None and raw_only.certainty() == ""


def test_compare_tells_apart_east_asian_look_alikes_that_the_raw_distance_confuses() -> None:
    lfw = require_data("lfw/lfw-deepfunneled")
    # Different people (LFW half B) about 0.29 apart: the raw 0.43 rule called them the same.
    a = lfw / "Chen_Shui-bian" / "Chen_Shui-bian_0001.jpg"
    b = lfw / "Kim_Jin-sun" / "Kim_Jin-sun_0001.jpg"
    proc = run("faces", "compare", "--json", a, b)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["distance"] <= result["threshold"]  # the raw rule alone would accept
    assert result["population"] == "east_asian"
    assert result["population_distance"] > result["population_threshold"]
    assert "同一个人" in result["certainty"]
    same = run(
        "faces",
        "compare",
        lfw / "Hu_Jintao" / "Hu_Jintao_0001.jpg",
        lfw / "Hu_Jintao" / "Hu_Jintao_0002.jpg",
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "east_asian population distance" in same.stdout and "不同的人" in same.stdout
