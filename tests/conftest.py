"""Shared fixtures: the real face data beside the repository, and one face engine per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from argon2 import PasswordHasher, Type

import cunan.auth.service
from cunan.faces.engine import EngineConfig, FaceEngine
from tests.storage.dbfixtures import DropQueue

#: ../shared/data seen from the repository root (CI puts shared/ beside the clone).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL runs of parametrisations marked ``sqlite_only`` (reported as
    deselected): for expensive tests whose variants differ in what the engines share."""
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_url") == "postgresql"
        if on_postgres and item.get_closest_marker("sqlite_only") is not None:
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it where CI promised the data and tools (CUNAN_REQUIRE_DATA=1)."""
    if os.environ.get("CUNAN_REQUIRE_DATA") == "1":
        pytest.fail(reason + " and CUNAN_REQUIRE_DATA=1")
    # allow_module_level: a module whose imports are missing skips (or fails) as a whole.
    pytest.skip(reason, allow_module_level=True)


def require_data(relative: str) -> Path:
    """A path under ../shared/data, or a skip (a failure when CUNAN_REQUIRE_DATA=1)."""
    path = SHARED_DATA / relative
    if not path.exists():
        skip_or_fail(f"real face data not available: {path} is missing (see docs/testing.md)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data("")


@pytest.fixture(scope="session")
def examples(data_dir: Path) -> Path:
    return require_data("face_recognition_examples/examples")


@pytest.fixture(scope="session")
def test_images(data_dir: Path) -> Path:
    return require_data("face_recognition_examples/tests/test_images")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Keep converted models out of the developer's home, but share them across tests.
    old = os.environ.get("CUNAN_CACHE_DIR")
    if old is None:
        os.environ["CUNAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cunan-cache"))
    yield
    if old is None:
        os.environ.pop("CUNAN_CACHE_DIR", None)


class CheapHasher(PasswordHasher):
    """Real argon2id at its cheapest parameters (argon2's own test profile, a longer hash)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1, hash_len=16, type=Type.ID)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    # The production cost (64 MiB, ~1 s of a core per hash or check) is deliberate, and the
    # in-process tests hash hundreds of times: account set-ups, logins, every AuthService's
    # decoy hash. The same code runs with argon2 cheap; `cunan serve` subprocesses and
    # GatedHasher (tests/api/test_login_bound.py) keep the production parameters.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cunan.auth.service, "PasswordHasher", CheapHasher)
        yield


@pytest.fixture(scope="session", autouse=True)
def _shared_face_engines() -> Iterator[None]:
    # Loading the models costs seconds, and every application, CLI command and fixture of the
    # run builds its own engine. FaceEngine is stateless, so one engine per configuration
    # serves them all (a user's ONNX model is loaded afresh: its file may change under a path).
    built: dict[EngineConfig, FaceEngine] = {}
    load = FaceEngine.from_config

    def shared(config: EngineConfig | None = None) -> FaceEngine:
        config = config or EngineConfig()
        if config.onnx_model is not None:
            return load(config)
        if config not in built:
            built[config] = load(config)
        return built[config]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FaceEngine, "from_config", staticmethod(shared))
        yield


@pytest.fixture(scope="session")
def postgres_drops() -> Iterator[DropQueue]:
    """Where every test module's PostgreSQL database goes to be dropped (see DropQueue)."""
    queue = DropQueue()
    try:
        yield queue
    finally:
        queue.finish()


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    """The default engine (dlib HOG + dlib ResNet, ONNX Runtime when available)."""
    return FaceEngine.from_config(EngineConfig())


@pytest.fixture(scope="session")
def dlib_engine() -> FaceEngine:
    """The same weights run by dlib itself, the reference the ONNX path must match."""
    return FaceEngine.from_config(EngineConfig(embed_runtime="dlib"))
