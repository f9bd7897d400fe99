"""``cunan calibrate``: the site's expected false-known rate and thresholds, from its gallery."""

from __future__ import annotations

import json

import numpy as np

from cunan.calibrate import site_calibration
from cunan.cli import app
from cunan.config import Settings
from cunan.registry.datadir import Registry
from cunan.registry.records import NewPerson, TemplateInput
from tests.cli_helpers import registry, runner
from tests.registry.helpers import MODEL, consent, vector

__all__ = ["registry"]


def _enrol(reg: Registry, people: int) -> None:
    village = reg.service.default_village_id()
    for seed in range(people):
        reg.service.add_person(
            NewPerson(name=f"居民{seed}", village_id=village),
            consent=consent(),
            templates=[TemplateInput(vector=vector(seed), model_id=MODEL)],
        )


def _calibrate(reg: Registry, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["calibrate", "--json", "--data-dir", str(reg.data_dir), *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert isinstance(data, dict)
    return data


def test_a_new_village_is_told_the_prior_decides(registry: Registry) -> None:
    _enrol(registry, 2)
    data = _calibrate(registry)
    assert data["people"] == 2 and data["expected_false_known_rate"] is None
    words = data["words"]
    assert isinstance(words, list) and "人数太少" in words[0] and "(2 people" in words[0]
    thresholds = data["thresholds_for_target"]
    assert isinstance(thresholds, dict) and thresholds["stand_ins"] == 0


def test_a_gallery_estimates_its_rate_and_a_stricter_target_raises_the_threshold(
    registry: Registry,
) -> None:
    _enrol(registry, 16)
    data = _calibrate(registry)
    rate = data["expected_false_known_rate"]
    assert isinstance(rate, float) and 0.0 < rate < 0.5
    assert data["adaptive"] is True and data["target"] == 0.01
    words = data["words"]
    assert isinstance(words, list) and words[0].startswith("按当前设置")
    strict = _calibrate(registry, "--target", "0.001")
    t1, t2 = data["thresholds_for_target"], strict["thresholds_for_target"]
    assert isinstance(t1, dict) and isinstance(t2, dict)
    assert t2["min_score"] > t1["min_score"]
    # Plain words without --json, Chinese first.
    result = runner.invoke(app, ["calibrate", "--data-dir", str(registry.data_dir)])
    assert result.exit_code == 0 and result.output.startswith("按当前设置")


def test_service_function_reports_the_fixed_rule_when_adaptive_is_off(registry: Registry) -> None:
    _enrol(registry, 14)
    settings = Settings.model_validate({"matching": {"adaptive": False, "min_score": 5.0}})
    report = site_calibration(registry.service, settings, model_id=MODEL)
    assert not report.estimate.adaptive
    assert report.estimate.current_min_score == 5.0
    # No stand-in reaches a score of 5 nats: the estimate is the lowest the tables give.
    assert report.estimate.current_rate is not None and report.estimate.current_rate < 0.001
    assert "matching.adaptive" in report.words()[-1]
    assert np.isfinite(report.estimate.for_target.min_score)
