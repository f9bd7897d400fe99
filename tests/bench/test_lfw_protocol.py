"""LFW protocol: pairs.txt parsing and the 10-fold threshold choice on synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cunan.bench.lfw_data import PairsFormatError, image_path, parse_pairs
from cunan.bench.verification import best_threshold, tar_at_far, ten_fold


def test_parse_pairs_folds_and_kinds(tmp_path: Path) -> None:
    text = (
        "2\t2\n"
        "Alice\t1\t2\nBob 3 4\n"
        "Alice\t1\tCarol\t2\nBob 2 Dave 1\n"
        "Carol\t1\t3\nDave\t1\t2\n"
        "Eve\t1\tFrank\t1\nAlice 2 Bob 1\n"
    )
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    pairs = parse_pairs(path)
    assert len(pairs) == 8
    assert [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[1].name_a == pairs[1].name_b == "Bob"
    assert (pairs[1].number_a, pairs[1].number_b) == (3, 4)
    assert (pairs[3].name_a, pairs[3].number_a, pairs[3].name_b, pairs[3].number_b) == (
        "Bob",
        2,
        "Dave",
        1,
    )
    assert image_path(tmp_path, "Bob", 3) == tmp_path / "Bob" / "Bob_0003.jpg"


def test_parse_pairs_rejects_wrong_counts(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("1\t2\nAlice\t1\t2\n")
    with pytest.raises(PairsFormatError):
        parse_pairs(path)
    path.write_text("1\t1\nAlice\t1\t2\nAlice\t1\tBob\n")
    with pytest.raises(PairsFormatError):
        parse_pairs(path)


def test_best_threshold_separable() -> None:
    d = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([True, True, True, False, False, False])
    t = best_threshold(d, same)
    assert 0.3 < t < 0.7
    assert t == pytest.approx(0.5)


def test_best_threshold_never_splits_ties() -> None:
    d = np.array([0.4, 0.4, 0.4, 0.9])
    same = np.array([True, True, False, False])
    t = best_threshold(d, same)
    # Accepting all three 0.4s (2 right + 0.9 rejected right = 3/4) beats rejecting them (2/4).
    assert 0.4 < t < 0.9


def test_ten_fold_chooses_threshold_on_other_folds() -> None:
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(10), 60)
    same = np.tile(np.repeat([True, False], 30), 10)
    # Genuine pairs below 0.5, impostors above: every fold's threshold lies in the gap.
    d = np.where(same, rng.uniform(0.1, 0.45, same.size), rng.uniform(0.55, 1.0, same.size))
    results = ten_fold(d, same, folds)
    assert len(results) == 10
    assert all(r.accuracy == 1.0 for r in results)
    assert all(0.45 <= r.threshold <= 0.55 for r in results)


def test_ten_fold_threshold_ignores_the_test_fold() -> None:
    # Fold 0 alone would want a threshold near 0.8; the other folds say 0.5.
    folds = np.repeat(np.arange(10), 4)
    same = np.tile([True, True, False, False], 10)
    d = np.tile([0.3, 0.4, 0.6, 0.7], 10).astype(float)
    d[:4] = [0.7, 0.75, 0.85, 0.9]
    results = ten_fold(d, same, folds)
    assert results[0].threshold == pytest.approx(0.5)
    assert results[0].accuracy == 0.5


def test_tar_at_far_counts_allowed_false_accepts() -> None:
    genuine = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    impostor = np.concatenate([[0.35], np.linspace(0.45, 1.0, 99)])
    tar, threshold = tar_at_far(genuine, impostor, 0.01)
    # One false accept allowed: threshold just below the second-smallest impostor.
    assert impostor[0] <= threshold < impostor[1]
    assert tar == pytest.approx(4 / 5)
    tar0, _ = tar_at_far(genuine, impostor, 0.0)
    assert tar0 == pytest.approx(3 / 5)
