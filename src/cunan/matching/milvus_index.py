"""Gallery index in Milvus (city scale) through pymilvus; milvus-lite runs the same client code."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cunan.domain import Embeddings
from cunan.matching.index import (
    DimensionMismatchError,
    SearchResult,
    check_batch,
    check_ids,
    check_k,
    check_vectors,
    empty_result,
    pad_result,
)

logger = logging.getLogger(__name__)

#: Rows per upsert request; keeps each gRPC message far below Milvus's 64 MB default limit.
UPSERT_BATCH = 5_000
#: Queries per search request. Milvus takes up to 16384, but milvus-lite materialises a
#: (queries x templates x dim) array per request (1000 queries at 100k = 48 GiB).
SEARCH_BATCH = 8


def collection_name(model_id: str) -> str:
    """The collection holding one model's vectors (Milvus names: letters, digits, ``_``)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_") or "model"
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:8]
    return f"face_vectors_{slug[:180]}_{digest}"


class MilvusIndex:
    """Templates of one model in a Milvus collection (HNSW, L2, strong consistency).

    ``uri`` is a Milvus server (``http://host:19530``) or, for tests, a milvus-lite file
    path ending in ``.db``. Strong consistency makes an upsert or delete visible to the next
    search, which the registry relies on (a removed person must not match). Milvus reports
    *squared* L2; it is converted to Euclidean distance here.
    """

    def __init__(
        self,
        uri: str,
        *,
        dim: int,
        model_id: str,
        m: int = 16,
        ef_construction: int = 64,
        ef_search: int = 100,
        token: str = "",
    ) -> None:
        from pymilvus import DataType, MilvusClient  # type: ignore[import-untyped]

        self.dim = dim
        self.model_id = model_id
        self.ef_search = ef_search
        self.collection = collection_name(model_id)
        self._lock = threading.Lock()
        self._client: Any = MilvusClient(uri=uri, token=token)
        if self._client.has_collection(self.collection):
            existing = self._existing_dim()
            if existing != dim:
                self._client.close()
                raise DimensionMismatchError(
                    f"collection {self.collection} for model {model_id!r} holds dimension "
                    f"{existing}, not {dim}"
                )
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("template_id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        index_params = self._client.prepare_index_params()
        index_params.add_index(
            field_name="embedding",
            index_type="HNSW",
            metric_type="L2",
            params={"M": int(m), "efConstruction": int(ef_construction)},
        )
        self._client.create_collection(
            self.collection,
            schema=schema,
            index_params=index_params,
            consistency_level="Strong",
        )

    def _existing_dim(self) -> int | None:
        info = self._client.describe_collection(self.collection)
        for field in info.get("fields", []):
            if field.get("name") == "embedding":
                return int(field.get("params", {}).get("dim", -1))
        return None

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def __len__(self) -> int:
        with self._lock:
            rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def ids(self) -> NDArray[np.int64]:
        out: list[int] = []
        with self._lock:
            iterator = self._client.query_iterator(
                self.collection,
                batch_size=10_000,
                filter="template_id >= 0",
                output_fields=["template_id"],
            )
            try:
                while batch := iterator.next():
                    out.extend(int(row["template_id"]) for row in batch)
            finally:
                iterator.close()
        return np.sort(np.array(out, dtype=np.int64))

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        with self._lock:
            for start in range(0, id_arr.size, UPSERT_BATCH):
                rows = [
                    {"template_id": t, "embedding": v}
                    for t, v in zip(
                        id_arr[start : start + UPSERT_BATCH].tolist(),
                        vec[start : start + UPSERT_BATCH].tolist(),
                        strict=True,
                    )
                ]
                # Upsert replaces an existing primary key, which is the protocol's add.
                self._client.upsert(self.collection, rows)

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        if id_arr.size == 0:
            return
        with self._lock:
            self._client.delete(self.collection, ids=id_arr.tolist())

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        if q.shape[0] == 0:
            return empty_result(0, k)
        hits: list[Any] = []
        params = {"metric_type": "L2", "params": {"ef": max(self.ef_search, k)}}
        with self._lock:
            for start in range(0, q.shape[0], SEARCH_BATCH):
                hits.extend(
                    self._client.search(
                        self.collection,
                        data=q[start : start + SEARCH_BATCH].tolist(),
                        limit=k,
                        output_fields=["template_id"],
                        search_params=params,
                    )
                )
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        for row, row_hits in enumerate(hits):
            for col, hit in enumerate(row_hits[:k]):
                ids[row, col] = int(hit["template_id"])
                dist[row, col] = np.sqrt(max(float(hit["distance"]), 0.0))
        return pad_result(ids, dist, k)
