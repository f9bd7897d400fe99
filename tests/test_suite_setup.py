"""The suite's own time savers (tests/conftest.py) do what they claim and nothing more."""

from __future__ import annotations

import pytest

import cunan.auth.service
from cunan.faces.engine import EngineConfig, FaceEngine


@pytest.mark.sqlite_only
@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"])
def test_a_sqlite_only_parametrisation_never_runs_on_postgresql(db_url: str) -> None:
    assert db_url == "sqlite"


def test_password_hashes_are_real_argon2_at_the_cheapest_cost() -> None:
    hasher = cunan.auth.service.PasswordHasher()
    stored = hasher.hash("Correct-horse-battery-9")
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert hasher.verify(stored, "Correct-horse-battery-9")
    with pytest.raises(Exception, match="does not match"):
        hasher.verify(stored, "Correct-horse-battery-8")


def test_face_engines_are_shared_per_configuration() -> None:
    assert FaceEngine.from_config(EngineConfig()) is FaceEngine.from_config()
    jittered = FaceEngine.from_config(EngineConfig(enrol_jitter=2))
    assert jittered is not FaceEngine.from_config() and jittered.enrol_jitter == 2
