"""The live gallery: equal to whole-gallery decisions, follows the registry, survives a crash."""

from __future__ import annotations

import numpy as np
import pytest
from tests.registry.helpers import MODEL, NOW, consent
from tests.storage.dbfixtures import database, db_url

from cunan.matching.index import NumpyExactIndex
from cunan.matching.live import LiveGallery
from cunan.matching.openset import MIN_COHORT_STD, Gallery, OpenSetConfig, decide_many
from cunan.registry.records import NewPerson, TemplateInput
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database

__all__ = ["database", "db_url"]

DIM = 128


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _near(rng: np.random.Generator, centre: np.ndarray, n: int, noise: float) -> np.ndarray:
    v = centre + noise * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _synthetic(seed: int = 5, people: int = 60) -> tuple[np.ndarray, list[int], np.ndarray]:
    """People with 1-3 noisy templates around a centre; probes near some people and strangers."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng, people)
    vectors, labels = [], []
    for person, centre in enumerate(centres):
        count = 1 + person % 3
        vectors.append(_near(rng, centre, count, 0.35))
        labels += [person] * count
    known = np.vstack([_near(rng, centres[p], 1, 0.35) for p in range(0, people, 3)])
    strangers = _unit(rng, 20)
    return np.vstack(vectors), labels, np.vstack([known, strangers])


@pytest.mark.parametrize("aggregation", ["mean", "min"])
def test_decisions_equal_the_whole_gallery_rules(aggregation: str) -> None:
    vectors, labels, probes = _synthetic()
    config = OpenSetConfig(aggregation=aggregation)  # type: ignore[arg-type]
    live = LiveGallery(model_id=MODEL, dim=DIM, config=config)
    live._add_many([(i, p, vectors[i]) for i, p in enumerate(labels)])
    gallery = Gallery.build(vectors, [str(p) for p in labels], model_id=MODEL)
    expected = decide_many(gallery, probes, config)
    got = live.identify(probes)
    assert [g.decision.decision for g in got] == [e.decision for e in expected]
    assert [g.decision.identity for g in got] == [e.identity for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.decision.distance == pytest.approx(e.distance, abs=1e-5)
        assert g.decision.runner_up_distance == pytest.approx(e.runner_up_distance, abs=1e-5)
        assert g.decision.score == pytest.approx(e.score, abs=1e-4, nan_ok=True)
    assert any(g.decision.known for g in got) and not all(g.decision.known for g in got)


def test_empty_gallery_says_unknown_with_a_reason() -> None:
    live = LiveGallery(model_id=MODEL, dim=DIM, index=NumpyExactIndex(dim=DIM, model_id=MODEL))
    result = live.identify(_unit(np.random.default_rng(1), 1))[0]
    assert result.person_id is None and result.candidates == ()
    assert result.decision.reasons == ("gallery is empty",)


def _service(database: Database) -> RegistryService:
    return RegistryService(database, FieldCipher(KeyRing.generate()), clock=lambda: NOW)


def _enrol(service: RegistryService, village: int, vectors: np.ndarray) -> int:
    return service.add_person(
        NewPerson(name="x", village_id=village),
        consent=consent(),
        templates=[TemplateInput(vector=v, model_id=MODEL) for v in vectors],
    )


def test_follows_the_registry_live(database: Database) -> None:
    service = _service(database)
    village = service.add_village("v")
    rng = np.random.default_rng(9)
    centres = _unit(rng, 30)
    people = [_enrol(service, village, _near(rng, c, 2, 0.3)) for c in centres[:29]]
    live = LiveGallery.load(service, model_id=MODEL, dim=DIM)
    service.add_listener(live)
    assert len(live) == 58 and live.people == 29

    newcomer_probe = _near(rng, centres[29], 1, 0.3)
    assert live.identify(newcomer_probe)[0].person_id is None
    newcomer = _enrol(service, village, _near(rng, centres[29], 2, 0.3))
    assert live.identify(newcomer_probe)[0].person_id == newcomer  # no restart needed

    probe = _near(rng, centres[0], 1, 0.3)
    assert live.identify(probe)[0].person_id == people[0]
    service.remove_person(people[0])
    result = live.identify(probe)[0]
    assert result.person_id is None
    assert people[0] not in [c.person_id for c in result.candidates]


def test_crash_between_commit_and_index_update_is_repaired(database: Database) -> None:
    service = _service(database)
    village = service.add_village("v")
    rng = np.random.default_rng(4)
    centres = _unit(rng, 25)
    people = [_enrol(service, village, _near(rng, c, 1, 0.3)) for c in centres[:24]]
    live = LiveGallery.load(service, model_id=MODEL, dim=DIM)
    # The process "crashes" after these commits: no listener hears them.
    late = _enrol(service, village, _near(rng, centres[24], 2, 0.3))
    service.remove_person(people[3])
    assert live.identify(_near(rng, centres[24], 1, 0.3))[0].person_id is None

    # On restart (or on the next poll) the change feed brings the index up to date.
    assert live.catch_up(service) == 3
    assert live.identify(_near(rng, centres[24], 1, 0.3))[0].person_id == late
    assert live.identify(_near(rng, centres[3], 1, 0.3))[0].person_id is None
    report = live.verify(service)
    assert report.consistent and report.database_templates == len(live) == 25


def test_verify_repairs_an_index_that_drifted(database: Database) -> None:
    service = _service(database)
    village = service.add_village("v")
    rng = np.random.default_rng(2)
    for c in _unit(rng, 10):
        _enrol(service, village, _near(rng, c, 1, 0.3))
    live = LiveGallery.load(service, model_id=MODEL, dim=DIM)
    live._remove_many([int(live._index.ids()[0])])  # lost from the index
    live._add_many([(999_999, 424_242, _unit(rng, 1)[0])])  # a template the database lacks
    report = live.verify(service)
    assert (report.missing_added, report.stale_removed) == (1, 1)
    assert live.verify(service).consistent


def test_a_person_with_many_templates_keeps_the_score_rule() -> None:
    """More templates than the candidate window must not silence the cohort score."""
    rng = np.random.default_rng(12)
    centres = _unit(rng, 40)
    rows = []
    for person, centre in enumerate(centres):
        count = 40 if person == 0 else 1
        for v in _near(rng, centre, count, 0.35):
            rows.append((len(rows), person, v))
    vectors = np.vstack([r[2] for r in rows])
    labels = [str(r[1]) for r in rows]
    live = LiveGallery(model_id=MODEL, dim=DIM, candidates=16)
    live._add_many(rows)
    probes = np.vstack([_near(rng, centres[0], 1, 0.35), _near(rng, centres[5], 1, 0.35)])
    expected = decide_many(Gallery.build(vectors, labels, model_id=MODEL), probes)
    got = live.identify(probes)
    for g, e in zip(got, expected, strict=True):
        assert not np.isnan(g.decision.score)
        assert g.decision.decision == e.decision and g.decision.identity == e.identity
        assert g.decision.score == pytest.approx(e.score, abs=1e-4)


def test_wrong_probe_shape_is_refused() -> None:
    live = LiveGallery(model_id=MODEL, dim=DIM, index=NumpyExactIndex(dim=DIM, model_id=MODEL))
    with pytest.raises(ValueError, match=r"\(n, 128\)"):
        live.identify(np.zeros((2, 64), dtype=np.float32))


def test_identity_cohorts_from_the_index_equal_the_exact_definition() -> None:
    """Cohorts come from bounded index searches; on an exact index they must equal the
    definition (mean/std of the kk nearest other people by nearest template pair)."""
    vectors, labels, _ = _synthetic(seed=9, people=400)
    live = LiveGallery(model_id=MODEL, dim=DIM)
    live._add_many([(i, p, vectors[i]) for i, p in enumerate(labels)])
    kk = live.config.cohort_k
    owners = np.asarray(labels)
    for person in range(0, 400, 7):
        d = np.linalg.norm(vectors[owners == person][:, None, :] - vectors[None, :, :], axis=2)
        nearest = d.min(axis=0)
        per_person = [nearest[owners == q].min() for q in range(400) if q != person]
        near = np.sort(per_person)[:kk]
        mean, std = live._identity_cohort(person)
        assert mean == pytest.approx(float(near.mean()), abs=1e-5)
        assert std == pytest.approx(max(float(near.std()), MIN_COHORT_STD), abs=1e-5)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(40, {"FaissRoutedIndex"}), (10_000, {"FaissFlatIndex", "NumpyExactIndex"})],
)
def test_loading_picks_the_index_from_the_template_count(
    database: Database, threshold: int, expected: set[str]
) -> None:
    service = _service(database)
    village = service.add_village("v")
    rng = np.random.default_rng(4)
    centres = _unit(rng, 25)
    people = [_enrol(service, village, _near(rng, c, 2, 0.3)) for c in centres]
    live = LiveGallery.load(service, model_id=MODEL, dim=DIM, ann_threshold=threshold)
    service.add_listener(live)
    assert type(live._index).__name__ in expected  # 50 templates: past 40, under 10,000
    # Either index answers the same questions, and follows the registry.
    assert live.identify(_near(rng, centres[3], 1, 0.3))[0].person_id == people[3]
    service.remove_person(people[3])
    assert live.identify(_near(rng, centres[3], 1, 0.3))[0].person_id is None
