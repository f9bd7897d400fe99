"""Milvus backend against exact search, through milvus-lite (the client code, not the engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import skip_or_fail
from tests.matching.backends import fresh_indexes, run_contract_check
from tests.matching.test_index import ALL_CHECKS, DIM, MakeIndex, unit_rows

from cunan.matching.index import DimensionMismatchError, build_index


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        import milvus_lite  # type: ignore[import-untyped]  # noqa: F401
        import pymilvus  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"pymilvus / milvus-lite not installed: {exc}")
    path: Path = tmp_path_factory.mktemp("milvus") / "gallery.db"
    return str(path)


@pytest.fixture
def make(milvus_uri: str) -> Iterator[MakeIndex]:
    from cunan.matching.milvus_index import MilvusIndex

    yield from fresh_indexes(lambda model: MilvusIndex(milvus_uri, dim=DIM, model_id=model))


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_milvus_contract(make: MakeIndex, check: Callable[[MakeIndex], None]) -> None:
    run_contract_check(make, check, concurrent_rounds=3)


def test_collection_per_model_and_dim_checked(milvus_uri: str) -> None:
    from cunan.matching.milvus_index import MilvusIndex

    a = build_index("milvus", dim=DIM, model_id="m/a", milvus_uri=milvus_uri)
    a.add(np.arange(3), unit_rows(3))
    assert isinstance(a, MilvusIndex)
    a.close()
    with pytest.raises(DimensionMismatchError, match="holds dimension"):
        MilvusIndex(milvus_uri, dim=DIM * 2, model_id="m/a")
    again = MilvusIndex(milvus_uri, dim=DIM, model_id="m/a")
    assert len(again) == 3
    again.close()
