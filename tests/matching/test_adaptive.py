"""Gallery-adaptive recognition: stand-in scores, calibration, and the live gallery using it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tests.matching.test_live import DIM, _enrol, _near, _service, _synthetic, _unit
from tests.registry.helpers import MODEL
from tests.storage.dbfixtures import database, db_url

from cunan.audit.log import AuditLog
from cunan.matching.adaptive import (
    TARGET_MARGIN,
    Calibration,
    PopulationPrior,
    adapt,
    calibrate,
    centre,
    load_prior,
    stand_in_scores,
)
from cunan.matching.live import CALIBRATE_ACTION, LiveGallery, audit_calibration
from cunan.matching.openset import AdaptiveConfig, Gallery, OpenSetConfig, match_arrays
from cunan.storage.database import Database

__all__ = ["database", "db_url"]

ADAPTIVE = OpenSetConfig(adaptive=AdaptiveConfig())


def _prior(dim: int = DIM) -> PopulationPrior:
    levels = np.linspace(0.0, 1.0, 11)
    return PopulationPrior(
        name="test",
        model_id=MODEL,
        mean=np.full(dim, 0.05, dtype=np.float32),
        pair_threshold=0.8,
        pair_far=0.005,
        levels=levels,
        impostor=np.linspace(0.5, 1.5, 11),
        genuine=np.linspace(0.2, 1.0, 11),
        raw_impostor=np.linspace(0.2, 1.2, 11),
        targets=np.asarray([0.001, 0.01, 0.1]),
        sizes=np.asarray([2.0, 30.0]),
        stranger_score=np.asarray([[0.7, 0.6], [0.5, 0.3], [0.3, 0.2]]),
        stand_in_z=np.asarray([4.0, 3.0, 1.5]),
        made_by="test",
    )


def test_centre_is_unit_length_without_the_mean() -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 6)
    mean = vectors.mean(axis=0)
    c = centre(vectors, mean)
    assert np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    # What every row shared is gone: the centred rows' mean is (about) zero on that axis.
    axis = mean / np.linalg.norm(mean)
    assert abs(float((c @ axis).mean())) < abs(float((vectors @ axis).mean()))


def test_prior_tables_interpolate_in_log_size_and_target() -> None:
    prior = _prior()
    assert prior.stranger_min_score(2, 0.01) == pytest.approx(0.5)
    assert prior.stranger_min_score(30, 0.01) == pytest.approx(0.3)
    assert prior.stranger_min_score(1000, 0.01) == pytest.approx(0.3)  # clamped
    between = 0.5 + (0.3 - 0.5) * np.log(8 / 2) / np.log(30 / 2)
    assert prior.stranger_min_score(8, 0.01) == pytest.approx(between, abs=1e-9)
    assert prior.z(0.01) == pytest.approx(3.0)
    assert prior.z(np.sqrt(0.01 * 0.1)) == pytest.approx(2.25)
    assert prior.impostor_rate(1.0) == pytest.approx(0.5)
    assert prior.genuine_miss_rate(0.6) == pytest.approx(0.5)


@pytest.mark.parametrize("aggregation", ["mean", "min"])
def test_stand_in_scores_equal_the_gallery_without_that_person(aggregation: str) -> None:
    vectors, labels, _ = _synthetic(seed=11, people=14)
    config = OpenSetConfig(aggregation=aggregation, cohort_k=4)  # type: ignore[arg-type]
    gallery = Gallery.build(vectors, [f"{p:03d}" for p in labels], model_id=MODEL)
    people = np.arange(len(gallery), dtype=np.int64)
    scores, distances = stand_in_scores(gallery.vectors, gallery.starts, config, people)
    ends = np.append(gallery.starts[1:], len(gallery.vectors))
    for i in people:
        keep = np.ones(len(gallery.vectors), dtype=bool)
        keep[gallery.starts[i] : ends[i]] = False
        others = [gallery.identities[k] for k in gallery.template_identity[keep]]
        without = Gallery.build(gallery.vectors[keep], others, model_id=MODEL)
        probe = gallery.vectors[gallery.starts[i]].reshape(1, -1)
        expected = match_arrays(without, probe, config)
        assert distances[i] == pytest.approx(float(expected.distance[0]), abs=1e-5)
        assert scores[i] == pytest.approx(float(expected.score[0]), abs=1e-4)


def test_first_enrolments_follow_the_prior_then_the_site() -> None:
    prior = _prior()
    adaptive = AdaptiveConfig(target=0.01, prior_weight=30.0)
    aim = 0.01 * TARGET_MARGIN  # the calibration keeps a margin below the target
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 10):
        vectors = _unit(rng, n) if n else np.zeros((0, DIM), np.float32)
        cal = calibrate(vectors, np.arange(n, dtype=np.int64), ADAPTIVE, adaptive, prior=prior)
        # Too few stand-ins to trust their spread: the prior alone.
        assert cal.site_min_score is None and cal.stand_ins == 0
        assert cal.min_score == pytest.approx(prior.stranger_min_score(max(n, 1), aim))
        # One person enrolled has no score: faces compare's population rule decides.
        assert cal.fallback_max_distance == ADAPTIVE.fallback_max_distance
        assert cal.fallback_population_distance == pytest.approx(
            prior.centred_impostor_distance(aim)
        )
        assert cal.population_centre is not None and np.allclose(cal.population_centre, prior.mean)
    vectors = _unit(rng, 40)
    starts = np.arange(40, dtype=np.int64)
    cal = calibrate(vectors, starts, ADAPTIVE, adaptive, prior=prior)
    scores, _ = stand_in_scores(vectors, starts, ADAPTIVE, starts)
    site = float(scores.mean() + prior.z(aim) * scores.std())
    assert cal.stand_ins == 40 and cal.site_min_score == pytest.approx(site, abs=1e-5)
    blend = (30 * prior.stranger_min_score(40, aim) + 40 * site) / 70
    assert cal.min_score == pytest.approx(blend, abs=1e-5)
    # A stricter target asks for a higher score.
    strict = calibrate(vectors, starts, ADAPTIVE, replace(adaptive, target=0.001), prior=prior)
    assert strict.min_score > cal.min_score


def test_unresolved_adaptive_config_is_refused_by_the_whole_gallery_path() -> None:
    vectors, labels, probes = _synthetic(people=6)
    gallery = Gallery.build(vectors, [str(p) for p in labels], model_id=MODEL)
    with pytest.raises(ValueError, match="calibrated first"):
        match_arrays(gallery, probes, ADAPTIVE)


def test_live_adaptive_decisions_equal_the_adapted_whole_gallery() -> None:
    vectors, labels, probes = _synthetic(seed=7, people=45)
    live = LiveGallery(model_id=MODEL, dim=DIM, config=ADAPTIVE)
    live._add_many([(i, p, vectors[i]) for i, p in enumerate(labels)])
    adapted = adapt(vectors, [str(p) for p in labels], ADAPTIVE, model_id=MODEL)
    expected = match_arrays(adapted.gallery, probes, adapted.config)
    got = live.identify(probes)
    assert live.calibration is not None
    assert live.calibration.min_score == pytest.approx(adapted.calibration.min_score)
    assert live.calibration.stand_ins == 45
    known = [g.decision.known for g in got]
    assert known == expected.known.tolist()
    assert 0 < sum(known) < len(known)  # the check means something: both answers occur
    for g, d, best in zip(got, expected.distance, expected.best, strict=True):
        assert g.decision.distance == pytest.approx(float(d), abs=1e-5)
        assert g.decision.identity == adapted.gallery.identities[int(best)]
    # The decision's reasons name the calibrated threshold, not the configured one.
    assert any(f"min_score {adapted.config.min_score:.3f}" in r for r in got[0].decision.reasons)


def test_live_gallery_recalibrates_as_people_enrol_and_leave() -> None:
    seen: list[tuple[Calibration, Calibration | None]] = []
    live = LiveGallery(
        model_id=MODEL, dim=DIM, config=ADAPTIVE, on_calibrated=lambda n, p: seen.append((n, p))
    )
    rng = np.random.default_rng(4)
    for person, c in enumerate(_unit(rng, 14)):
        live.on_added(100 + person, person, _near(rng, c, 1, 0.3)[0], MODEL)
    assert [n.people for n, _ in seen] == list(range(1, 15))
    assert seen[0][1] is None and seen[1][1] is seen[0][0]
    # From 11 people the site's own stand-ins enter the threshold.
    assert seen[9][0].stand_ins == 0 and seen[10][0].stand_ins == 11
    live.on_removed([100])
    assert seen[-1][0].people == 13


def test_large_gallery_recalibrates_on_a_relative_change_only() -> None:
    config = replace(ADAPTIVE, adaptive=AdaptiveConfig(always_below=5, recalibrate_change=0.5))
    calls: list[int] = []
    live = LiveGallery(
        model_id=MODEL, dim=DIM, config=config, on_calibrated=lambda n, p: calls.append(n.people)
    )
    rng = np.random.default_rng(8)
    for person, v in enumerate(_unit(rng, 12)):
        live.on_added(person, person, v, MODEL)
    # Every change below 5 people, then only a change of 50 %: 4 -> 6 -> 9 (12 is +33 %).
    assert calls == [1, 2, 3, 4, 6, 9]


def test_calibrations_are_audited_once_per_change(database: Database) -> None:
    service = _service(database)
    village = service.add_village("v")
    audit = AuditLog(database)
    service.audit = audit
    rng = np.random.default_rng(12)
    for c in _unit(rng, 4):
        _enrol(service, village, _near(rng, c, 1, 0.3))
    before = len(audit.recent(limit=100, action=CALIBRATE_ACTION))
    LiveGallery.load(service, model_id=MODEL, dim=DIM, config=ADAPTIVE)
    entries = audit.recent(limit=100, action=CALIBRATE_ACTION)
    assert len(entries) == before + 1
    assert entries[0].target_id == MODEL and entries[0].details["people"] == 4
    # Another process loading the same gallery finds nothing new to record.
    LiveGallery.load(service, model_id=MODEL, dim=DIM, config=ADAPTIVE)
    assert len(audit.recent(limit=100, action=CALIBRATE_ACTION)) == before + 1
    live = LiveGallery.load(service, model_id=MODEL, dim=DIM, config=ADAPTIVE)
    service.add_listener(live)
    _enrol(service, village, _near(rng, _unit(rng, 1)[0], 1, 0.3))
    entries = audit.recent(limit=100, action=CALIBRATE_ACTION)
    assert len(entries) == before + 2
    assert entries[0].details["people"] == 5
    assert entries[0].details["previous_min_score"] == entries[1].details["min_score"]


def test_audit_listener_refuses_nothing_it_records() -> None:
    recorded: list[dict[str, object]] = []

    class Sink:
        def record(self, action: str, **kwargs: object) -> None:
            recorded.append({"action": action, **kwargs})

        def recent(self, **_: object) -> list[object]:
            return []

    listener = audit_calibration(Sink(), MODEL)  # type: ignore[arg-type]
    cal = calibrate(
        _unit(np.random.default_rng(0), 5),
        np.arange(5, dtype=np.int64),
        ADAPTIVE,
        AdaptiveConfig(),
        prior=load_prior(),
    )
    listener(cal, None)
    assert recorded and recorded[0]["action"] == CALIBRATE_ACTION


def test_one_person_gallery_decides_by_both_distances_in_both_paths() -> None:
    prior = load_prior("east_asian")
    rng = np.random.default_rng(21)
    # Near the East Asian mean, as the model's East Asian faces are: raw distances are
    # small for everyone there, the centred distance tells people apart.
    base = prior.mean / np.linalg.norm(prior.mean)
    enrolled = base + 0.02 * rng.standard_normal(DIM).astype(np.float32)
    enrolled /= np.linalg.norm(enrolled)
    away = rng.standard_normal(DIM).astype(np.float32)
    away -= (away @ enrolled) * enrolled
    away /= np.linalg.norm(away)
    probes = []
    for step in (0.05, 0.2, 0.38):  # about the raw distance of each probe
        p = enrolled + step * away
        probes.append(p / np.linalg.norm(p))
    probes_arr = np.asarray(probes, dtype=np.float32)
    live = LiveGallery(model_id=MODEL, dim=DIM, config=ADAPTIVE)
    live.on_added(1, 7, enrolled.astype(np.float32), MODEL)
    got = live.identify(probes_arr)
    adapted = adapt(enrolled.reshape(1, -1), ["7"], ADAPTIVE, model_id=MODEL)
    expected = match_arrays(adapted.gallery, probes_arr, adapted.config)
    assert [g.decision.known for g in got] == expected.known.tolist()
    assert expected.population_distance is not None
    limit = adapted.config.fallback_population_distance
    assert limit is not None
    # Every probe passes the raw 0.43; the centred distance alone decides among them.
    assert all(g.decision.distance <= 0.43 for g in got)
    assert expected.known.tolist() == (expected.population_distance <= limit).tolist()
    assert 0 < sum(expected.known) < len(probes)  # both answers occur
    assert any("population distance" in r for r in got[-1].decision.reasons)


def test_new_settings_while_running_calibrate_again_for_the_new_target() -> None:
    seen: list[Calibration] = []
    live = LiveGallery(
        model_id=MODEL, dim=DIM, config=ADAPTIVE, on_calibrated=lambda n, p: seen.append(n)
    )
    vectors, labels, probes = _synthetic(seed=3, people=20)
    live._add_many([(i, p, vectors[i]) for i, p in enumerate(labels)])
    live.identify(probes[:1])
    assert seen[-1].target == 0.01
    live.config = replace(ADAPTIVE, adaptive=AdaptiveConfig(target=0.001))
    live.identify(probes[:1])
    assert seen[-1].target == 0.001 and seen[-1].min_score > seen[-2].min_score
    # Adaptation off: the configured rules decide, no calibration.
    live.config = OpenSetConfig()
    assert live.identify(probes[:1])[0].decision.reasons
    assert live.calibration is None
