"""FaissRoutedIndex on clustered face-like data: agreement with exact search, removal, recheck."""

from __future__ import annotations

import numpy as np
import pytest

from cunan.bench.search import SyntheticGallery, decisions, synthetic_gallery
from cunan.matching.index import FaissFlatIndex, FaissRoutedIndex, SearchResult

MODEL = "synthetic"
N = 20_000


@pytest.fixture(scope="module")
def data() -> SyntheticGallery:
    return synthetic_gallery(N, n_queries=2000, seed=3)


@pytest.fixture(scope="module")
def exact(data: SyntheticGallery) -> SearchResult:
    ref = FaissFlatIndex(dim=128, model_id=MODEL)
    ref.add(np.arange(N), data.vectors)
    return ref.search(data.queries, 10)


def routed(data: SyntheticGallery, **kwargs: object) -> FaissRoutedIndex:
    kwargs.setdefault("nlist", 64)  # trained at 39 * 64 buckets: the IVF routing is tested
    index = FaissRoutedIndex(dim=128, model_id=MODEL, **kwargs)  # type: ignore[arg-type]
    for start in range(0, N, 5000):
        index.add(np.arange(start, start + 5000), data.vectors[start : start + 5000])
    return index


def test_buckets_follow_people(data: SyntheticGallery) -> None:
    index = routed(data)
    # 5 templates per person, 0.3-0.45 apart, people 0.8+ apart: about one bucket each.
    assert N / 5 <= index.n_buckets < N / 5 * 1.1
    assert index._trained
    assert len(index) == N


def test_agrees_with_exact_search(data: SyntheticGallery, exact: SearchResult) -> None:
    index = routed(data)
    got = index.search(data.queries, 10)
    known = data.query_identities >= 0
    agree = decisions(got.ids, got.distances, data.identities) == decisions(
        exact.ids, exact.distances, data.identities
    )
    assert agree[known].all()  # every enrolled person is found
    assert agree[~known].mean() >= 0.998
    recall_10 = np.mean((got.ids[:, :, None] == exact.ids[:, None, :]).any(axis=2))
    assert recall_10 >= 0.9
    # Distances are exact for the templates that are returned.
    hit = got.ids[:, 0] == exact.ids[:, 0]
    np.testing.assert_allclose(got.distances[hit, 0], exact.distances[hit, 0], atol=1e-4)
    assert 0 < index.rechecks < len(data.queries)


def test_recheck_band_makes_a_narrow_search_exact(
    data: SyntheticGallery, exact: SearchResult
) -> None:
    # One probed list finds little; a band covering every distance re-searches all lists.
    narrow = routed(data, nprobe=1, probe=4, recheck_band=None)
    wide = routed(data, nprobe=1, probe=4, recheck_band=(0.0, 3.0), recheck_probe=512)
    missed = narrow.search(data.queries, 1).ids[:, 0] != exact.ids[:, 0]
    assert missed.mean() > 0.05
    got = wide.search(data.queries, 1)
    assert wide.rechecks == len(data.queries)
    assert np.mean(got.ids[:, 0] == exact.ids[:, 0]) >= 0.999


def test_removed_people_are_gone_at_once(data: SyntheticGallery) -> None:
    index = routed(data)
    buckets = index.n_buckets
    known = np.flatnonzero(data.query_identities >= 0)[:50]
    people = data.query_identities[known]
    gone = np.flatnonzero(np.isin(data.identities, people))
    index.remove(gone)
    assert len(index) == N - gone.size
    # Their buckets are empty and their routing vectors deleted.
    assert index.n_buckets <= buckets - np.unique(people).size + 5
    got = index.search(data.queries[known], 20)
    assert not set(gone.tolist()) & set(got.ids.ravel().tolist())
    assert (got.distances[:, 0] > 0.6).all()  # nobody else looks like them
    # Enrolled again under new ids: found at once, in a reused bucket.
    new_ids = gone + 10 * N
    index.add(new_ids, data.vectors[gone])
    again = index.search(data.queries[known], 1)
    assert set(again.ids[:, 0].tolist()) <= set(new_ids.tolist())
    assert index.n_buckets <= buckets + 5


def test_replaced_template_moves(data: SyntheticGallery) -> None:
    index = routed(data)
    # Template 0 takes the vector of a template of another person far away.
    index.add(np.array([0]), data.vectors[N - 1 : N])
    at_new = index.search(data.vectors[N - 1 : N], 2)
    assert set(at_new.ids[0].tolist()) == {0, N - 1}
    at_old = index.search(data.vectors[0:1], 5)
    assert 0 not in at_old.ids[0].tolist()
    assert len(index) == N


def test_search_bench_reports_disagreements_and_rechecks() -> None:
    from cunan.bench.search import run_search_bench

    report = run_search_bench([3000], ["exact", "routed"], n_queries=200, threads=1)
    by_backend = {r["backend"]: r for r in report["results"]}
    exact, routed_row = by_backend["exact"], by_backend["routed"]
    assert exact["decision_agreement"] == 1.0 and exact["recall_at_k"] == 1.0
    assert exact["disagree_known"] == exact["disagree_strangers"] == 0
    assert exact["rechecked_fraction"] is None
    # 3,000 templates stay below the routing IVF's training size: exact bucket routing.
    assert routed_row["decision_agreement"] == 1.0
    assert routed_row["single_queries"] == 200
    assert routed_row["rechecked_fraction"] == 0.0


def test_routing_is_retrained_as_the_gallery_doubles(
    data: SyntheticGallery, exact: SearchResult
) -> None:
    # 16 lists: trained at 624 buckets, again at >= 1,248 and >= 2,496 (4,000 in the end).
    index = routed(data, nlist=16)
    assert index._trained_at >= 2496
    got = index.search(data.queries, 1)
    known = data.query_identities >= 0
    assert np.mean(got.ids[known, 0] // 5 == exact.ids[known, 0] // 5) == 1.0
