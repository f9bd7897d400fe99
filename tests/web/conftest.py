"""The page tests share the API tests' installation: each database engine, a small village,
one logged-in client per role (fixtures imported from tests/api/conftest.py)."""

from __future__ import annotations

from tests.api.conftest import api, clients, core, db_url, village

__all__ = ["api", "clients", "core", "db_url", "village"]
