"""Gallery vector index: one protocol, in-process exact and ANN backends, and a factory."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cunan.domain import Embeddings
from cunan.errors import Unavailable

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "exact", "numpy", "routed", "ivf", "hnsw", "pgvector", "milvus"]

#: Past this many templates ``build_index(kind="auto")`` picks the ANN backend. Below it an
#: exact scan is already well under a millisecond per query (10k: ~0.1 ms) and has no recall
#: loss; see docs/search.md for the measurements behind it.
DEFAULT_ANN_THRESHOLD = 100_000
#: Vectors whose norm is further than this from 1 are refused: the inner-product to
#: Euclidean conversion below is only valid for unit vectors.
NORM_TOLERANCE = 1e-3
#: Most float32 scores the numpy backend holds at once (64 Mi floats = 256 MB).
SCORE_BLOCK_FLOATS = 64 * 1024 * 1024
#: Distance reported for padding entries (id -1).
PAD_DISTANCE = np.float32(np.inf)


class GalleryIndexError(ValueError):
    """A request the index cannot serve (bad shape, wrong model, bad ids)."""


class DimensionMismatchError(GalleryIndexError):
    """Vectors whose dimension differs from the index's."""


class ModelMismatchError(GalleryIndexError):
    """Vectors made by another model than the one the index holds."""


class IndexUnavailableError(RuntimeError, Unavailable):
    """The chosen external index (pgvector, Milvus) cannot be used: its database extension,
    server or client package is missing or unreachable."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The k nearest templates per query, nearest first.

    ``ids`` (n, k) int64 template ids, -1 where the index holds fewer than k templates;
    ``distances`` (n, k) float32 Euclidean distances between unit vectors (0..2), ``inf``
    where the id is -1.
    """

    ids: NDArray[np.int64]
    distances: NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.ids.shape != self.distances.shape or self.ids.ndim != 2:
            raise ValueError(
                f"ids {self.ids.shape} and distances {self.distances.shape} must be equal 2-D"
            )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])


@runtime_checkable
class GalleryIndex(Protocol):
    """Top-k nearest templates of one model; ids are template ids; thread-safe."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        """Add templates; an id already present is replaced."""
        ...

    def remove(self, ids: ArrayLike) -> None:
        """Remove templates; unknown ids are ignored."""
        ...

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        """The k nearest templates of each query row."""
        ...

    def __len__(self) -> int: ...

    def ids(self) -> NDArray[np.int64]:
        """Every template id held, sorted (to verify the index against the database)."""
        ...


# --- validation shared by every backend ---------------------------------------------------


def check_ids(ids: ArrayLike, *, unique: bool) -> NDArray[np.int64]:
    """Template ids as a 1-D int64 array; with ``unique``, duplicates are an error."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise GalleryIndexError(f"ids must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise GalleryIndexError(f"ids must be integers, got {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if out.size and int(out.min()) < 0:
        # -1 is the padding id of SearchResult, so negative template ids would be ambiguous.
        raise GalleryIndexError("template ids must be >= 0")
    if unique and np.unique(out).size != out.size:
        raise GalleryIndexError("duplicate ids in one call")
    return out


def check_vectors(
    vectors: NDArray[np.float32] | Embeddings, *, dim: int, model_id: str
) -> NDArray[np.float32]:
    """C-contiguous float32 (n, dim) unit rows; raises on a wrong model, dim or norm."""
    if isinstance(vectors, Embeddings):
        if vectors.model_id != model_id:
            raise ModelMismatchError(
                f"vectors are from model {vectors.model_id!r}, this index holds {model_id!r}"
            )
        vectors = vectors.vectors
    arr = np.asarray(vectors)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise GalleryIndexError(f"vectors must be 2-D, got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"vectors have dimension {arr.shape[1]}, index {model_id!r} has {dim}"
        )
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.shape[0]:
        if not np.isfinite(out).all():
            raise GalleryIndexError("vectors contain NaN or infinity")
        norms = np.linalg.norm(out, axis=1)
        if float(np.abs(norms - 1.0).max()) > NORM_TOLERANCE:
            raise GalleryIndexError("vectors must be L2-normalised (unit rows)")
    return out


def check_batch(
    ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings, *, dim: int, model_id: str
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The checked ids and vectors of one ``add`` call: unique ids, one per vector."""
    id_arr = check_ids(ids, unique=True)
    vec = check_vectors(vectors, dim=dim, model_id=model_id)
    if id_arr.size != vec.shape[0]:
        raise GalleryIndexError(f"{id_arr.size} ids for {vec.shape[0]} vectors")
    return id_arr, vec


_Rows = TypeVar("_Rows", bound=np.generic)


def _grown(array: NDArray[_Rows], capacity: int, used: int, fill: int) -> NDArray[_Rows]:
    """A copy of ``array`` with room for ``capacity`` rows, its first ``used`` rows kept and
    the rest set to ``fill``."""
    out = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
    out[:used] = array[:used]
    return out


def check_k(k: int) -> int:
    if int(k) < 1:
        raise GalleryIndexError(f"k must be >= 1, got {k}")
    return int(k)


def ip_to_distance(ip: NDArray[np.float32]) -> NDArray[np.float32]:
    """Euclidean distance between unit vectors from their inner product: sqrt(2 - 2 ip)."""
    # Clipping first also tames faiss's -3.4e38 padding scores (they become 2, then inf).
    clipped = np.clip(ip, -1.0, 1.0)
    out: NDArray[np.float32] = np.sqrt(2.0 - 2.0 * clipped).astype(np.float32)
    return out


def pad_result(ids: NDArray[np.int64], dist: NDArray[np.float32], k: int) -> SearchResult:
    """Widen (n, m <= k) results to k columns and mark every id -1 entry with ``inf``."""
    n, m = ids.shape
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_dist = np.full((n, k), PAD_DISTANCE, dtype=np.float32)
    out_ids[:, :m] = ids
    out_dist[:, :m] = dist
    out_dist[out_ids < 0] = PAD_DISTANCE
    return SearchResult(ids=out_ids, distances=out_dist)


def empty_result(n: int, k: int) -> SearchResult:
    return pad_result(np.empty((n, 0), np.int64), np.empty((n, 0), np.float32), k)


# --- in-process backends ---------------------------------------------------------------------


class NumpyExactIndex:
    """Exact search with numpy: a row-major matrix, one matrix multiply per query batch.

    Kept as the dependency-free reference; :class:`FaissFlatIndex` is the same search,
    faster (see docs/search.md).
    """

    def __init__(self, *, dim: int, model_id: str) -> None:
        self.dim = dim
        self.model_id = model_id
        self._lock = threading.Lock()
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._row_ids = np.empty(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}
        self._n = 0

    def __len__(self) -> int:
        with self._lock:
            return self._n

    def ids(self) -> NDArray[np.int64]:
        with self._lock:
            return np.sort(self._row_ids[: self._n])

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        with self._lock:
            fresh = [i for i, t in enumerate(id_arr.tolist()) if t not in self._row_of]
            self._grow(self._n + len(fresh))
            for i, t in enumerate(id_arr.tolist()):
                row = self._row_of.get(t)
                if row is None:
                    row = self._n
                    self._n += 1
                    self._row_of[t] = row
                    self._row_ids[row] = t
                self._matrix[row] = vec[i]

    def _grow(self, need: int) -> None:
        cap = self._matrix.shape[0]
        if need <= cap:
            return
        # Doubling keeps a stream of single adds amortised O(1).
        new_cap = max(need, 2 * cap, 64)
        self._matrix = _grown(self._matrix, new_cap, self._n, 0)
        self._row_ids = _grown(self._row_ids, new_cap, self._n, -1)

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        with self._lock:
            for t in id_arr.tolist():
                row = self._row_of.pop(t, None)
                if row is None:
                    continue
                last = self._n - 1
                if row != last:
                    # Move the last row into the hole so the live rows stay contiguous.
                    moved = int(self._row_ids[last])
                    self._matrix[row] = self._matrix[last]
                    self._row_ids[row] = moved
                    self._row_of[moved] = row
                self._row_ids[last] = -1
                self._n = last

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        with self._lock:
            n = self._n
            if n == 0 or q.shape[0] == 0:
                return empty_result(q.shape[0], k)
            # Blocks of queries bound the (queries x templates) score matrix to ~256 MB.
            block = max(1, SCORE_BLOCK_FLOATS // n)
            parts = [
                self._top_k(q[s : s + block] @ self._matrix[:n].T, k)
                for s in range(0, q.shape[0], block)
            ]
            row_ids = self._row_ids[:n].copy()
        top = np.concatenate([p[0] for p in parts])
        top_scores = np.concatenate([p[1] for p in parts])
        return pad_result(row_ids[top], ip_to_distance(top_scores), k)

    @staticmethod
    def _top_k(scores: NDArray[np.float32], k: int) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        n = scores.shape[1]
        m = min(k, n)
        if m < n:
            top = np.argpartition(-scores, m - 1, axis=1)[:, :m]
        else:
            top = np.broadcast_to(np.arange(n), scores.shape)
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        return top, top_scores


class _FaissIndexBase:
    """Shared bookkeeping of the faiss backends: lock, id set, result conversion."""

    def __init__(self, *, dim: int, model_id: str) -> None:
        self.dim = dim
        self.model_id = model_id
        self._lock = threading.Lock()
        self._present: set[int] = set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._present)

    def ids(self) -> NDArray[np.int64]:
        with self._lock:
            return np.sort(np.fromiter(self._present, dtype=np.int64, count=len(self._present)))

    @staticmethod
    def _to_result(scores: NDArray[np.float32], labels: NDArray[np.int64], k: int) -> SearchResult:
        # faiss pads missing neighbours with label -1 and a huge negative inner product.
        return pad_result(labels.astype(np.int64), ip_to_distance(scores), k)


class FaissFlatIndex(_FaissIndexBase):
    """Exact search with faiss ``IndexFlatIP`` behind ``IndexIDMap2`` (the village default)."""

    def __init__(self, *, dim: int, model_id: str) -> None:
        super().__init__(dim=dim, model_id=model_id)
        import faiss

        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        if id_arr.size == 0:
            return
        with self._lock:
            self._remove_locked(id_arr)
            self._index.add_with_ids(vec, id_arr)
            self._present.update(id_arr.tolist())

    def _remove_locked(self, id_arr: NDArray[np.int64]) -> None:
        import faiss

        known = np.array([t for t in id_arr.tolist() if t in self._present], dtype=np.int64)
        if known.size:
            self._index.remove_ids(faiss.IDSelectorBatch(known))
            self._present.difference_update(known.tolist())

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        with self._lock:
            self._remove_locked(id_arr)

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        with self._lock:
            if not self._present or q.shape[0] == 0:
                return empty_result(q.shape[0], k)
            scores, labels = self._index.search(q, k)
        return self._to_result(scores, labels, k)


class FaissIVFIndex(_FaissIndexBase):
    """Approximate search with faiss ``IndexIVFFlat`` (inner product), removals in place.

    The coarse quantiser is trained once enough vectors were added (``min_train``, at least
    39 per list as faiss asks; until then searches are exact over a staging matrix).
    ``nlist`` defaults to about 4 * sqrt(``expected_size``); ``nprobe`` lists are scanned per
    query. IVF removes ids natively, so a deleted template is gone at once without a rebuild.
    """

    def __init__(
        self,
        *,
        dim: int,
        model_id: str,
        nlist: int | None = None,
        nprobe: int = 32,
        min_train: int | None = None,
        expected_size: int = 100_000,
    ) -> None:
        super().__init__(dim=dim, model_id=model_id)
        self._nlist = nlist or max(16, int(4 * np.sqrt(max(expected_size, 1))))
        if min_train is None:
            min_train = 39 * self._nlist
        self.nprobe = nprobe
        self._min_train = min_train
        # Until trained, templates live in an exact staging index.
        self._staging: FaissFlatIndex | None = FaissFlatIndex(dim=dim, model_id=model_id)
        self._index: Any = None

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        if id_arr.size == 0:
            return
        with self._lock:
            if self._staging is not None:
                self._staging.add(id_arr, vec)
                self._present.update(id_arr.tolist())
                if len(self._staging) >= self._min_train:
                    self._train_locked()
                return
            self._remove_locked(id_arr)
            self._ivf().add_with_ids(vec, id_arr)
            self._present.update(id_arr.tolist())

    def _ivf(self) -> Any:
        assert self._index is not None
        return self._index

    def _train_locked(self) -> None:
        import faiss

        assert self._staging is not None
        staging = self._staging._index
        n = staging.ntotal
        ids = faiss.vector_to_array(staging.id_map).astype(np.int64)
        vec = staging.index.reconstruct_n(0, n)
        nlist = min(self._nlist, n)
        quantiser = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantiser, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # 64 training points per list is faiss's own guidance; more only costs time.
        rng = np.random.default_rng(0)
        sample = vec if n <= nlist * 64 else vec[rng.choice(n, nlist * 64, replace=False)]
        ivf.train(sample)
        ivf.add_with_ids(vec, ids)
        ivf.nprobe = self.nprobe
        # faiss's quantiser must outlive the IVF index; keep a reference on the instance.
        self._quantiser = quantiser
        self._index = ivf
        self._staging = None
        logger.info("trained IVF index: %d lists over %d templates", nlist, n)

    def _remove_locked(self, id_arr: NDArray[np.int64]) -> None:
        import faiss

        known = np.array([t for t in id_arr.tolist() if t in self._present], dtype=np.int64)
        if known.size:
            self._ivf().remove_ids(faiss.IDSelectorBatch(known))
            self._present.difference_update(known.tolist())

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        with self._lock:
            if self._staging is not None:
                self._staging.remove(id_arr)
                self._present.difference_update(id_arr.tolist())
                return
            self._remove_locked(id_arr)

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        with self._lock:
            if self._staging is not None:
                return self._staging.search(q, k)
            if not self._present or q.shape[0] == 0:
                return empty_result(q.shape[0], k)
            ivf = self._ivf()
            ivf.nprobe = self.nprobe
            scores, labels = ivf.search(q, k)
        return self._to_result(scores, labels, k)


class FaissHNSWIndex(_FaissIndexBase):
    """Approximate search with faiss ``IndexHNSWFlat`` (inner product); the in-process ANN.

    faiss's HNSW graph cannot delete nodes, so a removed or replaced template is
    tombstoned: its graph label is dropped from a bitmap that faiss applies *during* the
    graph search (``SearchParametersHNSW(sel=IDSelectorBitmap)``), so a removed template is
    never returned and no extra k is needed. When tombstones exceed ``compact_fraction`` of
    the live templates the graph is rebuilt from the stored vectors (under the lock: searches
    wait for the rebuild; see docs/search.md for its cost).
    """

    def __init__(
        self,
        *,
        dim: int,
        model_id: str,
        m: int = 32,
        ef_construction: int = 64,
        ef_search: int = 128,
        compact_fraction: float = 0.2,
    ) -> None:
        super().__init__(dim=dim, model_id=model_id)
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.compact_fraction = compact_fraction
        self._index = self._new_graph()
        # Graph label -> template id (labels are faiss's insertion positions).
        self._label_ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._label_of: dict[int, int] = {}
        self._n_dead = 0
        self._selector: Any = None
        self._bitmap: NDArray[np.uint8] | None = None

    def _new_graph(self) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        if id_arr.size == 0:
            return
        with self._lock:
            self._tombstone_locked(id_arr)
            self._append_locked(id_arr, vec)
            self._maybe_compact_locked()

    def _append_locked(self, id_arr: NDArray[np.int64], vec: NDArray[np.float32]) -> None:
        start = int(self._label_ids.size)
        self._index.add(vec)
        self._label_ids = np.concatenate([self._label_ids, id_arr])
        self._alive = np.concatenate([self._alive, np.ones(id_arr.size, dtype=bool)])
        for offset, t in enumerate(id_arr.tolist()):
            self._label_of[t] = start + offset
        self._present.update(id_arr.tolist())
        self._selector = None

    def _tombstone_locked(self, id_arr: NDArray[np.int64]) -> None:
        for t in id_arr.tolist():
            label = self._label_of.pop(t, None)
            if label is None:
                continue
            self._alive[label] = False
            self._present.discard(t)
            self._n_dead += 1
            self._selector = None

    def _maybe_compact_locked(self) -> None:
        if self._n_dead and self._n_dead > self.compact_fraction * max(len(self._present), 1):
            self._compact_locked()

    def _compact_locked(self) -> None:
        live = np.flatnonzero(self._alive)
        vec = (
            self._index.reconstruct_batch(live)
            if live.size
            else np.empty((0, self.dim), dtype=np.float32)
        )
        ids = self._label_ids[live]
        logger.info("rebuilding HNSW graph: %d live, %d tombstoned", live.size, self._n_dead)
        self._index = self._new_graph()
        self._label_ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._label_of = {}
        self._present = set()
        self._n_dead = 0
        if ids.size:
            self._append_locked(ids, np.ascontiguousarray(vec, dtype=np.float32))

    def compact(self) -> None:
        """Rebuild the graph without the tombstoned templates now."""
        with self._lock:
            self._compact_locked()

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        with self._lock:
            self._tombstone_locked(id_arr)
            self._maybe_compact_locked()

    def _params_locked(self) -> Any:
        import faiss

        # faiss's bundled stubs omit SearchParametersHNSW.
        fa: Any = faiss

        if self._n_dead == 0:
            return fa.SearchParametersHNSW(efSearch=self.ef_search)
        if self._selector is None:
            # faiss reads bit (label & 7) of byte (label >> 3): little-endian bit order.
            self._bitmap = np.packbits(self._alive, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(
                int(self._alive.size), faiss.swig_ptr(self._bitmap)
            )
        return fa.SearchParametersHNSW(sel=self._selector, efSearch=self.ef_search)

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        with self._lock:
            if not self._present or q.shape[0] == 0:
                return empty_result(q.shape[0], k)
            # HNSW's beam must be at least k wide or it returns fewer than k neighbours.
            params = self._params_locked()
            params.efSearch = max(self.ef_search, k)
            scores, labels = self._index.search(q, k, params=params)
            label_ids = self._label_ids
        ids = np.where(labels >= 0, label_ids[np.maximum(labels, 0)], -1)
        return self._to_result(scores, ids, k)


class FaissRoutedIndex(_FaissIndexBase):
    """Templates grouped under routing points ("leaders"); exact distances inside groups.

    A template within ``radius`` (Euclidean) of a leader's routing vector joins that
    leader's bucket, else it founds a new bucket; a routing vector is the normalised mean
    of its bucket. A search finds the ``probe`` nearest routing vectors (at least k) and
    scores every template of their buckets exactly. A person's templates lie close together
    and far from everyone else's, so buckets are roughly people and the routing index holds
    one vector per person (1/5 of the templates on the benchmark's data). No identity labels
    are needed.

    Routing vectors live in a faiss ``IndexIVFScalarQuantizer`` (float16, inner product,
    ``nlist`` lists, ``nprobe`` probed; removal and update in place through a hash-table
    direct map); until ``train_at`` buckets exist they are scanned exactly instead, and the
    lists are retrained each time the buckets double. Graphs
    (HNSW) were measured and rejected here: on face-like data they miss whole people
    (docs/search.md). When the nearest template found lies in ``recheck_band`` (the zone
    where the open-set decision is decided, e.g. a stranger near a few people at once), the
    query is searched again over every list (``recheck_nprobe``, default all) and
    ``recheck_probe`` buckets; ``rechecks`` counts such queries.

    Removal is in place: the template leaves its bucket, the bucket's routing vector is
    updated, and an emptied bucket's routing vector is deleted, so a removed template is
    never returned.
    """

    def __init__(
        self,
        *,
        dim: int,
        model_id: str,
        expected_size: int = 100_000,
        radius: float = 0.5,
        nlist: int | None = None,
        nprobe: int = 32,
        probe: int = 32,
        train_at: int | None = None,
        recheck_band: tuple[float, float] | None = (0.5, 0.65),
        recheck_nprobe: int | None = None,
        recheck_probe: int = 256,
        assign_nprobe: int = 16,
        chunk: int = 2048,
    ) -> None:
        super().__init__(dim=dim, model_id=model_id)
        # ~4-5 templates per person: sqrt(buckets) lists of ~sqrt(buckets) routing vectors.
        self.nlist = nlist or max(16, int(np.sqrt(max(expected_size, 1) / 4)) * 2)
        self.radius = radius
        self.nprobe = nprobe
        self.probe = probe
        # k-means needs at least one point per list (faiss raises otherwise).
        self.train_at = max(train_at if train_at is not None else 39 * self.nlist, self.nlist)
        self.recheck_band = recheck_band
        self.recheck_nprobe = recheck_nprobe
        self.recheck_probe = recheck_probe
        self.assign_nprobe = assign_nprobe
        self.chunk = chunk
        self.rechecks = 0
        self._ip_radius = np.float32(1.0 - radius * radius / 2.0)
        # Templates: rows of a growable matrix, kept contiguous (a removal moves the last row).
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._row_ids = np.empty(0, dtype=np.int64)
        self._row_bucket = np.empty(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}
        self._n = 0
        # Buckets: label -> template rows and routing vector; emptied labels are reused.
        self._buckets: list[list[int]] = []
        self._routing_vecs = np.empty((0, dim), dtype=np.float32)
        self._free: list[int] = []
        self._routing: Any = self._new_flat_routing()
        self._trained = False
        self._trained_at = 0  # live buckets when the routing IVF was last trained
        self._params: dict[int, Any] = {}  # faiss search parameters per nprobe, reused

    def _new_flat_routing(self) -> Any:
        import faiss

        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    @property
    def n_buckets(self) -> int:
        """Buckets (routing vectors) holding at least one template."""
        with self._lock:
            return len(self._buckets) - len(self._free)

    # --- routing index -------------------------------------------------------------------------

    def _route(self, q: NDArray[np.float32], k: int, nprobe: int) -> NDArray[np.int64]:
        """Labels of the k nearest routing vectors per row (-1 where fewer exist)."""
        import faiss

        k = max(1, min(k, len(self._buckets) - len(self._free)))
        if self._trained:
            params = self._params.get(nprobe)
            if params is None:
                fa: Any = faiss  # faiss's bundled stubs omit SearchParametersIVF.
                params = self._params[nprobe] = fa.SearchParametersIVF(
                    nprobe=min(nprobe, self.nlist)
                )
            _, labels = self._routing.search(q, k, params=params)
        else:
            _, labels = self._routing.search(q, k)
        out: NDArray[np.int64] = labels.astype(np.int64, copy=False)
        return out

    def _drop_routing(self, labels: NDArray[np.int64]) -> None:
        import faiss

        if labels.size == 0:
            return
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if self._trained:
            # The hash-table direct map removes in O(1) per id, but only by IDSelectorArray.
            sel = faiss.IDSelectorArray(int(labels.size), faiss.swig_ptr(labels))
            self._routing.remove_ids(sel)
        else:
            self._routing.remove_ids(faiss.IDSelectorBatch(labels))

    def _set_routing(self, labels: NDArray[np.int64], existing: bool) -> None:
        """Recompute the routing vectors of ``labels`` from their buckets and index them."""
        if labels.size == 0:
            return
        vecs = np.empty((labels.size, self.dim), dtype=np.float32)
        for i, label in enumerate(labels.tolist()):
            vecs[i] = self._vectors[self._buckets[label]].sum(axis=0)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        self._routing_vecs[labels] = vecs
        if existing:
            self._drop_routing(labels)
        self._routing.add_with_ids(vecs, labels)

    def _maybe_train(self) -> None:
        import faiss

        live = len(self._buckets) - len(self._free)
        # Trained once train_at buckets exist, and again each time the buckets have doubled
        # since: lists trained on the first 39k of 200k buckets came out 30 % more unequal
        # (and searches ~15 % slower) than retrained ones; a retraining at 1M takes ~5 s.
        if live < max(self.train_at, 2 * self._trained_at):
            return
        labels = np.array([i for i, b in enumerate(self._buckets) if b], dtype=np.int64)
        vecs = np.ascontiguousarray(self._routing_vecs[labels])
        quantiser = faiss.IndexFlatIP(self.dim)
        # Half floats, not residuals: as precise as float32 for ranking, and scanned ~25 %
        # faster than 8-bit codes here (no per-list residual term, simpler decoding).
        ivf = faiss.IndexIVFScalarQuantizer(
            quantiser,
            self.dim,
            self.nlist,
            faiss.ScalarQuantizer.QT_fp16,
            faiss.METRIC_INNER_PRODUCT,
            False,
        )
        # 64 training points per list is faiss's own guidance; more only costs time.
        rng = np.random.default_rng(0)
        sample = (
            vecs
            if live <= 64 * self.nlist
            else vecs[rng.choice(live, 64 * self.nlist, replace=False)]
        )
        ivf.train(sample)
        fa: Any = faiss  # faiss's bundled stubs omit DirectMap.
        ivf.set_direct_map_type(fa.DirectMap.Hashtable)
        ivf.add_with_ids(vecs, labels)
        # faiss's quantiser must outlive the IVF index; keep a reference on the instance.
        self._quantiser = quantiser
        self._routing = ivf
        self._trained = True
        self._trained_at = live
        self._params = {}
        logger.info("trained routing IVF: %d lists over %d buckets", self.nlist, live)

    # --- adding ----------------------------------------------------------------------------------

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        if id_arr.size == 0:
            return
        with self._lock:
            self._remove_locked(id_arr)
            for start in range(0, id_arr.size, self.chunk):
                stop = start + self.chunk
                self._add_chunk_locked(id_arr[start:stop], vec[start:stop])
                self._maybe_train()

    def _grow_rows(self, need: int) -> None:
        cap = self._vectors.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 1024)
        self._vectors = _grown(self._vectors, new_cap, self._n, 0)
        self._row_ids = _grown(self._row_ids, new_cap, self._n, -1)
        self._row_bucket = _grown(self._row_bucket, new_cap, self._n, -1)

    def _new_labels(self, count: int) -> NDArray[np.int64]:
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        start = len(self._buckets)
        fresh = list(range(start, start + count - len(reused)))
        self._buckets.extend([] for _ in fresh)
        if len(self._buckets) > self._routing_vecs.shape[0]:
            cap = max(len(self._buckets), 2 * self._routing_vecs.shape[0], 1024)
            grown = np.zeros((cap, self.dim), dtype=np.float32)
            grown[:start] = self._routing_vecs[:start]
            self._routing_vecs = grown
        return np.asarray(reused + fresh, dtype=np.int64)

    def _add_chunk_locked(self, ids: NDArray[np.int64], vec: NDArray[np.float32]) -> None:
        m = ids.size
        first = self._n
        self._grow_rows(first + m)
        self._vectors[first : first + m] = vec
        self._row_ids[first : first + m] = ids
        self._n += m
        for offset, t in enumerate(ids.tolist()):
            self._row_of[t] = first + offset
        # 1. Leader clustering inside the chunk, exactly: each template not yet taken leads
        #    a group and takes every later untaken one within the radius.
        gram = vec @ vec.T
        group = np.full(m, -1, dtype=np.int64)
        for i in range(m):
            if group[i] < 0:
                group[i] = i
                group[(group < 0) & (gram[i] > self._ip_radius)] = i
        leads = np.flatnonzero(group == np.arange(m))
        # 2. A group whose leader is within the radius of an existing bucket's routing
        #    vector joins that bucket, with each member that is within the radius of it too.
        bucket = np.full(m, -1, dtype=np.int64)
        if len(self._buckets) > len(self._free):
            nearest = self._route(vec[leads], 1, self.assign_nprobe)[:, 0]
            for lead, label in zip(leads.tolist(), nearest.tolist(), strict=True):
                if label < 0:
                    continue
                members = np.flatnonzero(group == lead)
                near = members[vec[members] @ self._routing_vecs[label] > self._ip_radius]
                bucket[near] = label
        # 3. Everything else founds buckets: a group's leader if it joined none, and each
        #    member left behind by a group whose leader joined a bucket (rare) on its own.
        founders = [
            i for i in range(m) if bucket[i] < 0 and (group[i] == i or bucket[group[i]] >= 0)
        ]
        labels = self._new_labels(len(founders))
        bucket[np.asarray(founders, dtype=np.int64)] = labels
        rest = np.flatnonzero(bucket < 0)
        bucket[rest] = bucket[group[rest]]
        self._row_bucket[first : first + m] = bucket
        buckets = self._buckets
        for row, label in zip(range(first, first + m), bucket.tolist(), strict=True):
            buckets[label].append(row)
        self._present.update(ids.tolist())
        changed = np.unique(bucket)
        is_new = np.isin(changed, labels)
        self._set_routing(changed[~is_new], existing=True)
        self._set_routing(changed[is_new], existing=False)

    # --- removing --------------------------------------------------------------------------------

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        with self._lock:
            self._remove_locked(id_arr)

    def _remove_locked(self, id_arr: NDArray[np.int64]) -> None:
        touched: set[int] = set()
        for t in id_arr.tolist():
            row = self._row_of.pop(t, None)
            if row is None:
                continue
            self._present.discard(t)
            label = int(self._row_bucket[row])
            self._buckets[label].remove(row)
            touched.add(label)
            last = self._n - 1
            if row != last:
                # Move the last row into the hole so the live rows stay contiguous.
                moved = int(self._row_bucket[last])
                moved_rows = self._buckets[moved]
                moved_rows[moved_rows.index(last)] = row
                self._vectors[row] = self._vectors[last]
                self._row_ids[row] = self._row_ids[last]
                self._row_bucket[row] = moved
                self._row_of[int(self._row_ids[row])] = row
            self._row_ids[last] = -1
            self._row_bucket[last] = -1
            self._n = last
        if not touched:
            return
        labels = np.fromiter(touched, dtype=np.int64, count=len(touched))
        empty = np.array([lab for lab in labels.tolist() if not self._buckets[lab]], dtype=np.int64)
        self._drop_routing(empty)
        self._free.extend(empty.tolist())
        self._set_routing(np.setdiff1d(labels, empty), existing=True)

    # --- searching -------------------------------------------------------------------------------

    def _score(
        self,
        q: NDArray[np.float32],
        labels: NDArray[np.int64],
        k: int,
        out_ids: NDArray[np.int64],
        out_ip: NDArray[np.float32],
        which: NDArray[np.intp],
    ) -> None:
        """Exact top-k over the buckets of ``labels[j]`` for query row ``which[j]``."""
        bucket_of = self._buckets.__getitem__
        vectors, row_ids = self._vectors, self._row_ids
        for row_labels, i in zip(labels.tolist(), which.tolist(), strict=True):
            if row_labels[-1] < 0:  # fewer routing vectors found than asked
                row_labels = [lab for lab in row_labels if lab >= 0]
            rows = np.fromiter(chain.from_iterable(map(bucket_of, row_labels)), dtype=np.int64)
            out_ids[i] = -1
            out_ip[i] = -np.inf
            if rows.size == 0:
                continue
            scores = vectors[rows] @ q[i]
            kk = min(k, rows.size)
            top = np.argpartition(-scores, kk - 1)[:kk] if kk < rows.size else np.arange(kk)
            top = top[np.argsort(-scores[top], kind="stable")]
            out_ids[i, :kk] = row_ids[rows[top]]
            out_ip[i, :kk] = scores[top]

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        n_q = q.shape[0]
        with self._lock:
            if not self._present or n_q == 0:
                return empty_result(n_q, k)
            out_ids = np.empty((n_q, k), dtype=np.int64)
            out_ip = np.empty((n_q, k), dtype=np.float32)
            # Each bucket holds at least one template, so k buckets give >= k candidates.
            labels = self._route(q, max(self.probe, k), self.nprobe)
            self._score(q, labels, k, out_ids, out_ip, np.arange(n_q))
            # Too few found (the probed lists held fewer buckets than asked), or the nearest
            # template in the band where the decision is made: search every list again.
            again = (out_ids[:, min(k, self._n) - 1] < 0) if self._trained else np.zeros(n_q, bool)
            if self.recheck_band is not None and self._trained:
                # Distance d between unit vectors <-> inner product 1 - d^2 / 2.
                lo, hi = self.recheck_band
                best_ip = out_ip[:, 0]
                again |= (best_ip <= 1.0 - lo * lo / 2.0) & (best_ip > 1.0 - hi * hi / 2.0)
            which = np.flatnonzero(again)
            if which.size:
                self.rechecks += int(which.size)
                wide = self._route(
                    q[which],
                    max(self.recheck_probe, k),
                    self.recheck_nprobe or self.nlist,
                )
                self._score(q, wide, k, out_ids, out_ip, which)
        return self._to_result(out_ip, out_ids, k)


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """Which gallery index to build and where an external one lives (``matching.*``)."""

    kind: IndexKind = "auto"
    ann_threshold: int = DEFAULT_ANN_THRESHOLD
    #: PostgreSQL for ``pgvector`` (the site's database unless ``matching.pg_url`` is set).
    pg_url: str | None = None
    #: Milvus server for ``milvus`` (``matching.milvus_uri``).
    milvus_uri: str | None = None

    def build(self, *, dim: int, model_id: str, expected_size: int = 0) -> GalleryIndex:
        return build_index(
            self.kind,
            dim=dim,
            model_id=model_id,
            ann_threshold=self.ann_threshold,
            expected_size=expected_size,
            pg_url=self.pg_url,
            milvus_uri=self.milvus_uri,
        )


def build_index(
    kind: IndexKind = "auto",
    *,
    dim: int,
    model_id: str,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    expected_size: int = 0,
    pg_url: str | None = None,
    milvus_uri: str | None = None,
) -> GalleryIndex:
    """A gallery index of ``kind`` for one model.

    ``auto`` picks exact search (faiss flat; numpy when faiss is missing) below
    ``ann_threshold`` templates and the routed index (:class:`FaissRoutedIndex`) at or
    above it; ``expected_size`` is the number
    of templates the caller is about to load (the database count on start), because the
    choice is made once, when the index is built. ``pgvector`` needs ``pg_url`` (a
    SQLAlchemy or libpq PostgreSQL URL), ``milvus`` needs ``milvus_uri``.
    """
    if dim < 1:
        raise GalleryIndexError(f"dim must be >= 1, got {dim}")
    if not model_id:
        raise GalleryIndexError("model_id must be set")
    if kind == "auto":
        kind = "routed" if expected_size >= ann_threshold else "exact"
        if kind == "exact" and not _has_faiss():
            kind = "numpy"
        logger.info(
            "gallery index for %s: %s (%d templates expected)", model_id, kind, expected_size
        )
    if kind == "numpy":
        return NumpyExactIndex(dim=dim, model_id=model_id)
    if kind == "exact":
        return FaissFlatIndex(dim=dim, model_id=model_id)
    if kind == "routed":
        return FaissRoutedIndex(dim=dim, model_id=model_id, expected_size=max(expected_size, 1))
    if kind == "hnsw":
        return FaissHNSWIndex(dim=dim, model_id=model_id)
    if kind == "ivf":
        return FaissIVFIndex(dim=dim, model_id=model_id, expected_size=max(expected_size, 1))
    if kind == "pgvector":
        if not pg_url:
            raise GalleryIndexError("the pgvector index needs pg_url")
        return _pgvector(pg_url, dim=dim, model_id=model_id)
    if kind == "milvus":
        if not milvus_uri:
            raise GalleryIndexError("the milvus index needs milvus_uri")
        return _milvus(milvus_uri, dim=dim, model_id=model_id)
    raise GalleryIndexError(f"unknown index kind {kind!r}")


def _pgvector(pg_url: str, *, dim: int, model_id: str) -> GalleryIndex:
    """A pgvector index, or an error that says what is missing (package, server, extension)."""
    try:
        from cunan.matching.pgvector_index import PgVectorIndex
    except ImportError as exc:
        raise IndexUnavailableError(
            f"matching.index = pgvector needs the psycopg and pgvector packages ({exc})"
        ) from None
    import psycopg

    try:
        return PgVectorIndex(pg_url, dim=dim, model_id=model_id)
    except psycopg.errors.FeatureNotSupported as exc:
        # CREATE EXTENSION on a server without the extension's files installed.
        raise IndexUnavailableError(
            "matching.index = pgvector: the PostgreSQL server has no 'vector' extension "
            f"installed ({_first_line(exc)}); install pgvector on the server or choose "
            "another matching.index"
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise IndexUnavailableError(
            "matching.index = pgvector: the 'vector' extension is not created in this "
            f"database and this account may not create it ({_first_line(exc)}); run "
            "'CREATE EXTENSION vector' as a superuser"
        ) from None
    except psycopg.OperationalError as exc:
        raise IndexUnavailableError(
            f"matching.index = pgvector: cannot connect to PostgreSQL ({_first_line(exc)})"
        ) from None


def _milvus(uri: str, *, dim: int, model_id: str) -> GalleryIndex:
    """A Milvus index, or an error that says what is missing (package, server)."""
    try:
        import pymilvus  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise IndexUnavailableError(
            "matching.index = milvus needs the pymilvus package (pip install pymilvus)"
        ) from None
    from cunan.matching.milvus_index import MilvusIndex

    try:
        return MilvusIndex(uri, dim=dim, model_id=model_id)
    except GalleryIndexError:
        raise
    except Exception as exc:  # noqa: BLE001 - pymilvus raises its own types for every failure
        raise IndexUnavailableError(
            f"matching.index = milvus: cannot use the Milvus server at {uri} "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
