"""Several templates per person: the prior's two-photo table and the calibration using it
(issue 12 item 6)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from tests.matching.test_adaptive import ADAPTIVE, _prior
from tests.matching.test_live import _unit

from cunan.matching.adaptive import PopulationPrior, calibrate, load_prior


def test_two_photo_table_is_used_by_photos_per_person() -> None:
    one = _prior()
    two = replace(one, stranger_score_2=one.stranger_score - 0.1)
    assert two.stranger_min_score(2, 0.01) == pytest.approx(0.5)  # one photo: as before
    assert two.stranger_min_score(2, 0.01, photos=2.0) == pytest.approx(0.4)
    assert two.stranger_min_score(2, 0.01, photos=1.5) == pytest.approx(0.45)
    assert two.stranger_min_score(2, 0.01, photos=5.0) == pytest.approx(0.4)  # clamped
    assert one.stranger_min_score(2, 0.01, photos=2.0) == pytest.approx(0.5)  # no table
    # Stored and read back with the table; a prior without it reads back without.
    back = PopulationPrior.from_json(json.loads(json.dumps(two.as_json())))
    assert back.stranger_score_2 is not None
    assert np.allclose(back.stranger_score_2, two.stranger_score_2)
    assert PopulationPrior.from_json(one.as_json()).stranger_score_2 is None


def test_calibration_of_a_two_photo_gallery_uses_the_two_photo_table() -> None:
    rng = np.random.default_rng(3)
    people = 5  # below the stand-in minimum: the prior alone decides
    one_each = _unit(rng, people)
    two_each = np.repeat(one_each, 2, axis=0)
    prior = replace(_prior(), stranger_score_2=_prior().stranger_score - 0.1)
    adaptive = ADAPTIVE.adaptive
    assert adaptive is not None
    single = calibrate(one_each, np.arange(people), ADAPTIVE, adaptive, prior=prior)
    double = calibrate(two_each, np.arange(0, 2 * people, 2), ADAPTIVE, adaptive, prior=prior)
    assert double.min_score == pytest.approx(single.min_score - 0.1)
    assert double.prior_min_score == pytest.approx(single.prior_min_score - 0.1)


def test_the_packaged_prior_has_a_two_photo_table_below_the_one_photo_table() -> None:
    prior = load_prior("east_asian")
    assert prior.stranger_score_2 is not None
    assert prior.stranger_score_2.shape == prior.stranger_score.shape
    # A stranger's best score against people with two photos each is lower.
    assert (prior.stranger_score_2 <= prior.stranger_score + 1e-9).mean() > 0.8
