"""Gallery index contract: every in-process backend against exact numpy search."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from cunan.domain import Embeddings
from cunan.matching.index import (
    DimensionMismatchError,
    FaissFlatIndex,
    FaissHNSWIndex,
    FaissIVFIndex,
    FaissRoutedIndex,
    GalleryIndex,
    GalleryIndexError,
    ModelMismatchError,
    NumpyExactIndex,
    build_index,
)

DIM = 16
MODEL = "test_model"

MakeIndex = Callable[[], GalleryIndex]


def unit_rows(n: int, dim: int = DIM, seed: int = 0) -> NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    out: NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def reference(ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> NumpyExactIndex:
    ref = NumpyExactIndex(dim=vectors.shape[1], model_id=MODEL)
    ref.add(ids, vectors)
    return ref


# --- contract checks, shared with the pgvector and milvus tests -------------------------------


def check_same_neighbours(make: MakeIndex, n: int = 300, k: int = 5) -> None:
    vectors = unit_rows(n)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    index = make()
    index.add(ids, vectors)
    queries = unit_rows(20, seed=1)
    got = index.search(queries, k)
    want = reference(ids, vectors).search(queries, k)
    assert got.ids.dtype == np.int64 and got.distances.dtype == np.float32
    assert got.ids.shape == (20, k)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.distances, want.distances, atol=2e-3)
    assert np.all(np.diff(got.distances, axis=1) >= -1e-6)
    assert len(index) == n
    np.testing.assert_array_equal(index.ids(), ids)


def check_add_replace_remove(make: MakeIndex) -> None:
    vectors = unit_rows(50)
    index = make()
    index.add(np.arange(50), vectors)
    # Replacing id 3 with the vector of id 10: a query for vector 10 now finds both.
    index.add(np.array([3]), vectors[10:11])
    assert len(index) == 50
    hit = index.search(vectors[10:11], 2)
    assert set(hit.ids[0].tolist()) == {3, 10}
    np.testing.assert_allclose(hit.distances[0], [0.0, 0.0], atol=2e-3)
    # The old vector of id 3 no longer finds id 3 at distance 0.
    old = index.search(vectors[3:4], 1)
    assert old.ids[0, 0] != 3 or old.distances[0, 0] > 0.1
    index.remove(np.array([10, 3, 999]))  # 999 was never added: a no-op
    index.remove(np.array([10]))  # removing twice: a no-op
    assert len(index) == 48
    assert not {3, 10} & set(index.ids().tolist())
    everything = index.search(vectors, 48)
    assert not {3, 10} & set(everything.ids.ravel().tolist())


def check_empty_and_large_k(make: MakeIndex) -> None:
    index = make()
    empty = index.search(unit_rows(3), 4)
    assert empty.ids.shape == (3, 4)
    assert (empty.ids == -1).all() and np.isinf(empty.distances).all()
    assert len(index) == 0 and index.ids().size == 0
    index.add(np.arange(3), unit_rows(3))
    wide = index.search(unit_rows(2, seed=5), 10)
    assert wide.ids.shape == (2, 10)
    assert (wide.ids[:, :3] >= 0).all() and (wide.ids[:, 3:] == -1).all()
    assert np.isfinite(wide.distances[:, :3]).all() and np.isinf(wide.distances[:, 3:]).all()


def check_errors(make: MakeIndex) -> None:
    index = make()
    with pytest.raises(DimensionMismatchError, match="dimension 8"):
        index.add(np.arange(2), unit_rows(2, dim=8))
    with pytest.raises(DimensionMismatchError):
        index.search(unit_rows(1, dim=DIM + 1), 1)
    other = Embeddings(vectors=unit_rows(2), model_id="other_model")
    with pytest.raises(ModelMismatchError, match="other_model"):
        index.add(np.arange(2), other)
    with pytest.raises(ModelMismatchError):
        index.search(other, 1)
    with pytest.raises(GalleryIndexError, match="normalised"):
        index.add(np.arange(1), np.full((1, DIM), 3.0, dtype=np.float32))
    with pytest.raises(GalleryIndexError, match="duplicate"):
        index.add(np.array([1, 1]), unit_rows(2))
    with pytest.raises(GalleryIndexError, match="ids for"):
        index.add(np.arange(3), unit_rows(2))
    with pytest.raises(GalleryIndexError, match="k must"):
        index.search(unit_rows(1), 0)
    # The matching model's Embeddings are accepted as they are.
    index.add(np.arange(2), Embeddings(vectors=unit_rows(2), model_id=index.model_id))
    assert len(index) == 2


def check_concurrent(make: MakeIndex, rounds: int = 30) -> None:
    vectors = unit_rows(400, seed=3)
    index = make()
    index.add(np.arange(200), vectors[:200])
    removed: set[int] = set()
    failures: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for r in range(rounds):
                gone = np.arange(r * 5, r * 5 + 5)
                index.remove(gone)
                removed.update(gone.tolist())
                index.add(np.arange(200 + r * 5, 205 + r * 5), vectors[200 + r * 5 : 205 + r * 5])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                # Snapshot before the search: anything removed by then must not come back.
                gone_before = set(removed)
                got = index.search(vectors[:50], 10)
                assert not gone_before & set(got.ids.ravel().tolist())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert len(index) == 200
    assert not removed & set(index.ids().tolist())


ALL_CHECKS = (
    check_same_neighbours,
    check_add_replace_remove,
    check_empty_and_large_k,
    check_errors,
    check_concurrent,
)

# --- the in-process backends ------------------------------------------------------------------


def _ivf() -> GalleryIndex:
    # Small training threshold so the tests exercise the trained IVF, and every list probed
    # so the comparison with exact search is exact.
    index = FaissIVFIndex(dim=DIM, model_id=MODEL, nlist=8, nprobe=8, min_train=40)
    return index


def _routed() -> GalleryIndex:
    # Trained after 8 buckets so the tests exercise the IVF routing, every list probed so the
    # comparison with exact search is exact; no recheck band, so the plain path is tested.
    return FaissRoutedIndex(
        dim=DIM, model_id=MODEL, nlist=4, nprobe=4, train_at=8, recheck_band=None
    )


BACKENDS: dict[str, MakeIndex] = {
    "numpy": lambda: NumpyExactIndex(dim=DIM, model_id=MODEL),
    "faiss_flat": lambda: FaissFlatIndex(dim=DIM, model_id=MODEL),
    "hnsw": lambda: FaissHNSWIndex(dim=DIM, model_id=MODEL, ef_search=256),
    "ivf": _ivf,
    "routed": _routed,
}


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_contract(backend: str, check: Callable[[MakeIndex], None]) -> None:
    check(BACKENDS[backend])


def test_protocol_is_satisfied() -> None:
    for make in BACKENDS.values():
        assert isinstance(make(), GalleryIndex)


def test_hnsw_tombstones_then_compacts() -> None:
    vectors = unit_rows(200)
    index = FaissHNSWIndex(dim=DIM, model_id=MODEL, compact_fraction=0.5)
    index.add(np.arange(200), vectors)
    index.remove(np.arange(50))  # 50 tombstones < 0.5 * 150 live: still tombstoned
    assert index._n_dead == 50
    got = index.search(vectors[:50], 5)
    assert (got.ids >= 50).all()
    index.remove(np.arange(50, 120))  # now past the fraction: rebuilt without them
    assert index._n_dead == 0
    assert len(index) == 80
    np.testing.assert_array_equal(index.ids(), np.arange(120, 200))
    check = index.search(vectors[120:130], 1)
    np.testing.assert_array_equal(check.ids[:, 0], np.arange(120, 130))


def test_ivf_searches_before_training() -> None:
    index = FaissIVFIndex(dim=DIM, model_id=MODEL, min_train=1000)
    vectors = unit_rows(30)
    index.add(np.arange(30), vectors)
    got = index.search(vectors[:5], 1)
    np.testing.assert_array_equal(got.ids[:, 0], np.arange(5))


def test_factory_picks_by_size() -> None:
    assert isinstance(build_index(dim=DIM, model_id=MODEL), FaissFlatIndex)
    big = build_index(dim=DIM, model_id=MODEL, expected_size=500, ann_threshold=100)
    assert isinstance(big, FaissRoutedIndex)
    assert isinstance(build_index("hnsw", dim=DIM, model_id=MODEL), FaissHNSWIndex)
    assert isinstance(build_index("routed", dim=DIM, model_id=MODEL), FaissRoutedIndex)
    assert isinstance(build_index("numpy", dim=DIM, model_id=MODEL), NumpyExactIndex)
    assert isinstance(build_index("ivf", dim=DIM, model_id=MODEL), FaissIVFIndex)
    with pytest.raises(GalleryIndexError, match="pg_url"):
        build_index("pgvector", dim=DIM, model_id=MODEL)
    with pytest.raises(GalleryIndexError, match="milvus_uri"):
        build_index("milvus", dim=DIM, model_id=MODEL)
    with pytest.raises(GalleryIndexError, match="unknown"):
        build_index("nope", dim=DIM, model_id=MODEL)  # type: ignore[arg-type]
    with pytest.raises(GalleryIndexError, match="model_id"):
        build_index(dim=DIM, model_id="")


def test_numpy_blocks_large_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import cunan.matching.index as index_module

    monkeypatch.setattr(index_module, "SCORE_BLOCK_FLOATS", 100)  # forces blocks of 1 query
    vectors = unit_rows(100)
    index = NumpyExactIndex(dim=DIM, model_id=MODEL)
    index.add(np.arange(100), vectors)
    got = index.search(vectors[:7], 3)
    np.testing.assert_array_equal(got.ids[:, 0], np.arange(7))


def test_synthetic_gallery_has_face_like_distances() -> None:
    from cunan.bench.search import synthetic_gallery

    data = synthetic_gallery(2000, n_queries=10, seed=1)
    x, ident = data.vectors, data.identities
    d = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * x[:200] @ x.T))
    same = ident[:200, None] == ident[None, :]
    within = d[same & (d > 1e-4)]
    between = d[~same]
    assert 0.3 < float(np.median(within)) < 0.45
    assert 0.8 < float(np.median(between)) < 1.1


def test_pgvector_names_stay_distinct_for_long_model_ids() -> None:
    from cunan.matching.pgvector_index import table_name

    table = table_name("arcface_" + "r100_glint360k_finetuned_site_v2" * 3 + "-0123456789ab")
    for derived in (table, f"{table}_hnsw", f"staging_{table}"):
        assert len(derived.encode()) <= 63
    assert len({table, f"{table}_hnsw"[:63]}) == 2
