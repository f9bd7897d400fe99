"""``matching.index`` chosen in the settings reaches the gallery CunanApp builds: pgvector in
the site's PostgreSQL (or ``matching.pg_url``), Milvus at ``matching.milvus_uri``, and a clear
error where the choice cannot work (SQLite, no ``vector`` extension, no server)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from cunan.app import CunanApp
from cunan.config import MatchingSettings, Settings
from cunan.errors import InvalidInput, Unavailable
from cunan.matching.index import IndexUnavailableError
from cunan.registry.datadir import initialise
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.storage.enums import PersonCategory
from tests.matching.pgfixtures import pg_url
from tests.storage.dbfixtures import db_url

__all__ = ["db_url", "pg_url"]

PASSWORD = "Correct-horse-battery-9"


def _site(tmp_path: Path, settings: Settings) -> Path:
    data = tmp_path / "data"
    initialise(
        data, settings, admin_username="admin", admin_password=PASSWORD, village_name="桃源村"
    ).close()
    return data


def _has_vector_extension(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first()
    finally:
        engine.dispose()
    return found is not None


def _unit(seed: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _enrol_and_identify(app: CunanApp) -> None:
    """Two people with one template each; the gallery finds the right one for each."""
    engine = app.face_engine
    dim = engine.embedder.dim
    service = app.registry.service
    ids = []
    for n in range(2):
        ids.append(
            service.add_person(
                NewPerson(
                    name=f"租客{n}",
                    village_id=service.default_village_id(),
                    category=PersonCategory.TENANT,
                ),
                consent=ConsentInput(collected_by="王", collected_at=datetime.now(UTC)),
                templates=[TemplateInput(vector=_unit(n, dim), model_id=engine.model_id)],
            )
        )
    gallery = app.gallery
    for n, person_id in enumerate(ids):
        [result] = gallery.identify(_unit(n, dim)[None, :], top=1)
        assert result.candidates[0].person_id == person_id


def test_pgvector_on_sqlite_is_refused_when_the_app_opens(tmp_path: Path) -> None:
    data = _site(tmp_path, Settings())
    with pytest.raises(InvalidInput, match="needs PostgreSQL"):
        CunanApp.open(Settings(matching=MatchingSettings(index="pgvector")), data)


def test_milvus_without_a_server_address_is_refused(tmp_path: Path) -> None:
    data = _site(tmp_path, Settings())
    with pytest.raises(InvalidInput, match="milvus_uri"):
        CunanApp.open(Settings(matching=MatchingSettings(index="milvus")), data)


def test_milvus_server_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket closes
    data = _site(tmp_path, Settings())
    settings = Settings(
        matching=MatchingSettings(index="milvus", milvus_uri=f"http://127.0.0.1:{closed_port}")
    )
    app = CunanApp.open(settings, data)
    try:
        with pytest.raises(IndexUnavailableError, match="cannot use the Milvus server"):
            _ = app.gallery
    finally:
        app.close()


@pytest.fixture
def site_db(db_url: str) -> str:
    """The local PostgreSQL only (the index lives in PostgreSQL, SQLite is tested above)."""
    if db_url.startswith("sqlite"):
        pytest.skip("pgvector needs PostgreSQL")
    return db_url


def test_pgvector_in_the_sites_database_or_at_matching_pg_url(
    tmp_path: Path, site_db: str, pg_url: str
) -> None:
    data = _site(tmp_path, Settings(database_url=site_db))
    own = Settings(database_url=site_db, matching=MatchingSettings(index="pgvector"))
    app = CunanApp.open(own, data)
    try:
        if _has_vector_extension(site_db):
            _enrol_and_identify(app)
            return
        # The local server has no pgvector: the error names the missing extension.
        with pytest.raises(IndexUnavailableError, match="no 'vector' extension") as caught:
            _ = app.gallery
        assert isinstance(caught.value, Unavailable)
    finally:
        app.close()
    # matching.pg_url: the index in another PostgreSQL, one that has the extension (the
    # bundled server of the pgvector tests).
    elsewhere = Settings(
        database_url=site_db,
        matching=MatchingSettings(index="pgvector", pg_url=pg_url),
    )
    app = CunanApp.open(elsewhere, data)
    try:
        _enrol_and_identify(app)
        import psycopg

        from cunan.matching.pgvector_index import libpq_url, table_name

        with psycopg.connect(libpq_url(pg_url)) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {table_name(app.face_engine.model_id)}"
            ).fetchone()
        assert row is not None and row[0] == 2  # the templates live in pgvector's table
    finally:
        app.close()
