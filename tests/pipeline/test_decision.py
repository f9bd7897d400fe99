"""Track decision rules on synthetic open-set decisions."""

from __future__ import annotations

import math

import pytest

from cunan.matching.openset import OpenSetDecision
from cunan.pipeline.decision import FaceVote, TrackDecisionConfig, decide_track


def known(identity: str, distance: float = 0.35, *, good: bool = True) -> FaceVote:
    d = OpenSetDecision("known", identity, distance, None, math.inf, math.nan, 0.5, "symmetric")
    return FaceVote(decision=d, good=good)


def unknown(distance: float = 0.7, identity: str | None = "1", *, good: bool = True) -> FaceVote:
    d = OpenSetDecision("unknown", identity, distance, None, math.inf, math.nan, 0.0, "symmetric")
    return FaceVote(decision=d, good=good)


def test_agreeing_faces_make_a_known_track() -> None:
    result = decide_track([known("7", 0.30), known("7", 0.40), unknown()])
    assert result.verdict == "known"
    assert result.identity == "7"
    assert result.faces_agreeing == 2
    assert result.distance == pytest.approx(0.35)
    assert "known: 2 of 3" in result.reasons[-1]


def test_too_few_good_faces_is_undecided() -> None:
    result = decide_track([known("7"), known("7", good=False), unknown(good=False)])
    assert result.verdict == "undecided"
    assert result.faces_good == 1
    assert "min_faces 2" in result.reasons[-1]


def test_no_faces_is_undecided() -> None:
    assert decide_track([]).verdict == "undecided"


def test_one_agreeing_face_is_not_enough() -> None:
    result = decide_track([known("7"), unknown(0.45), unknown(0.5)])
    # One face for "7" is below min_agreeing, and the rest are unknown: a stranger majority.
    assert result.verdict == "unknown"
    assert result.identity is None


def test_a_contradicting_known_face_blocks_the_decision() -> None:
    result = decide_track([known("7"), known("7"), known("9"), known("7")])
    assert result.verdict == "undecided"
    assert result.votes == {"7": 3, "9": 1}
    assert "different people" in result.reasons[-1]


def test_agreeing_faces_in_a_minority_are_undecided() -> None:
    result = decide_track([known("7"), known("7"), unknown(), unknown(), unknown()])
    assert result.verdict == "undecided"


def test_unknown_majority_makes_an_unknown_track() -> None:
    result = decide_track([unknown(0.8), unknown(0.6), unknown(0.9)])
    assert result.verdict == "unknown"
    assert result.distance == pytest.approx(0.6)  # the nearest any face came
    assert result.faces_agreeing == 3


def test_half_unknown_without_consensus_is_undecided() -> None:
    result = decide_track([known("7"), unknown()])
    assert result.verdict == "undecided"


def test_empty_gallery_decisions_give_unknown_without_distance() -> None:
    d = OpenSetDecision("unknown", None, math.inf, None, math.inf, math.nan, math.nan, "symmetric")
    result = decide_track([FaceVote(d, True), FaceVote(d, True)])
    assert result.verdict == "unknown"
    assert result.distance is None
    assert result.to_json()["distance"] is None


def test_settings_change_the_thresholds() -> None:
    config = TrackDecisionConfig(min_faces=1, min_agreeing=1)
    assert decide_track([known("3")], config).verdict == "known"
    strict = TrackDecisionConfig(min_faces=3, min_agreeing=3)
    assert decide_track([known("3"), known("3"), unknown()], strict).verdict == "undecided"


def test_failed_quality_faces_can_be_counted_when_configured() -> None:
    faces = [known("3", good=False), known("3", good=False)]
    assert decide_track(faces).verdict == "undecided"
    assert decide_track(faces, TrackDecisionConfig(use_failed_quality=True)).verdict == "known"


def test_reasons_keep_every_number() -> None:
    data = decide_track([known("7", 0.31), known("7", 0.33)]).to_json()
    assert data["verdict"] == "known"
    assert [f["distance"] for f in data["faces"]] == [0.31, 0.33]
    assert data["votes"] == {"7": 2}


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError):
        TrackDecisionConfig(min_faces=0)
    with pytest.raises(ValueError):
        TrackDecisionConfig(unknown_fraction=1.0)


def test_exactly_the_agreeing_fraction_is_enough() -> None:
    # 2 of 4 good faces agree: a share of exactly min_agreeing_fraction 0.5 decides "known"
    # ("at least", not "more than")...
    result = decide_track([known("7"), known("7"), unknown(), unknown()])
    assert result.verdict == "known" and result.identity == "7"
    assert "fraction 0.50 >= 0.50" in result.reasons[-1]
    # ...and just below it (2 of 5) does not.
    assert decide_track([known("7"), known("7"), *[unknown()] * 3]).verdict == "undecided"
