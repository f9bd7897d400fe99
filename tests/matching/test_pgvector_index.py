"""pgvector backend against exact search, on a real bundled PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from tests.conftest import skip_or_fail
from tests.matching.backends import fresh_indexes, run_contract_check
from tests.matching.test_index import ALL_CHECKS, DIM, MakeIndex, unit_rows

from cunan.matching.index import DimensionMismatchError, build_index

try:
    import pgvector  # noqa: F401
    import psycopg  # noqa: F401
except ImportError as exc:  # pragma: no cover - both are dependencies; a broken install
    skip_or_fail(f"pgvector tests need psycopg and pgvector ({exc})")

from tests.matching.pgfixtures import pg_url

from cunan.matching.pgvector_index import PgVectorIndex, libpq_url, table_name

__all__ = ["pg_url"]


@pytest.fixture
def make(pg_url: str) -> Iterator[MakeIndex]:
    yield from fresh_indexes(lambda model: PgVectorIndex(pg_url, dim=DIM, model_id=model))


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_pgvector_contract(make: MakeIndex, check: Callable[[MakeIndex], None]) -> None:
    run_contract_check(make, check, concurrent_rounds=10)


def test_table_per_model_and_dim_checked(pg_url: str) -> None:
    a = PgVectorIndex(pg_url, dim=DIM, model_id="model/a")
    b = PgVectorIndex(pg_url, dim=DIM, model_id="model-a")
    assert a.table != b.table
    a.add(np.arange(3), unit_rows(3))
    assert len(b) == 0
    with pytest.raises(DimensionMismatchError, match="holds dimension"):
        PgVectorIndex(pg_url, dim=DIM * 2, model_id="model/a")
    # Reopening the same model sees the stored templates (the district's system of record).
    again = PgVectorIndex(pg_url, dim=DIM, model_id="model/a")
    assert len(again) == 3
    for index in (a, b, again):
        index.close()


def test_factory_and_urls(pg_url: str) -> None:
    index = build_index("pgvector", dim=DIM, model_id="factory", pg_url=pg_url)
    assert isinstance(index, PgVectorIndex)
    index.close()
    sqlalchemy_url = pg_url.replace("postgresql://", "postgresql+psycopg://")
    assert libpq_url(sqlalchemy_url) == pg_url
    assert len(table_name("x" * 200)) <= 63
