"""Milvus backend against exact search, through milvus-lite (the client code, not the engine)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.matching.test_index import ALL_CHECKS, DIM, MODEL, MakeIndex, unit_rows

from cunan.matching.index import DimensionMismatchError, GalleryIndex, build_index


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CUNAN_REQUIRE_DATA") == "1" or os.environ.get("CI") == "true":
        pytest.fail(reason + " (CUNAN_REQUIRE_DATA=1 or CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        import milvus_lite  # type: ignore[import-untyped]  # noqa: F401
        import pymilvus  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        _skip_or_fail(f"pymilvus / milvus-lite not installed: {exc}")
    path: Path = tmp_path_factory.mktemp("milvus") / "gallery.db"
    return str(path)


_models = itertools.count()


@pytest.fixture
def make(milvus_uri: str) -> Iterator[MakeIndex]:
    from cunan.matching.milvus_index import MilvusIndex

    made: list[MilvusIndex] = []

    def factory() -> GalleryIndex:
        index = MilvusIndex(milvus_uri, dim=DIM, model_id=f"{MODEL}_{next(_models)}")
        made.append(index)
        return index

    yield factory
    for index in made:
        index.close()


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_milvus_contract(make: MakeIndex, check: Callable[[MakeIndex], None]) -> None:
    if check.__name__ == "check_concurrent":
        check(make, 3)  # type: ignore[call-arg]
    else:
        check(make)


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
