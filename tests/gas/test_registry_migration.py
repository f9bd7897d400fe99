"""Migration 0014 lets accounts and tokens be business or maintainer, keeping every id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cunan.storage.database import Database
from cunan.storage.migrate import current_revision, downgrade, upgrade
from tests.storage.dbfixtures import db_url

__all__ = ["db_url"]

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
def at_0013(db_url: str) -> Iterator[Database]:
    """A fresh database per test, migrated to 0013 (each test walks the migration itself)."""
    database = Database.open(db_url, connect_timeout_s=3)
    with database.engine.begin() as conn:
        # The module's database is shared: start from nothing each time.
        if database.is_sqlite:
            names = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for name in names:
                conn.exec_driver_sql(f'DROP TABLE "{name}"')
        else:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    database.dispose()
    database = Database.open(db_url, connect_timeout_s=3)
    upgrade(database, "0013")
    try:
        yield database
    finally:
        database.dispose()


def _add_user(database: Database, username: str, role: str) -> int:
    with database.engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO users (username, role, password_hash, created_at) "
                    "VALUES (:u, :r, 'x', :t) RETURNING id"
                ),
                {"u": username, "r": role, "t": NOW},
            ).scalar_one()
        )


def _add_token(database: Database, name: str, role: str) -> int:
    with database.engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, role, created_by, created_at) "
                    "VALUES (:n, :h, :r, 'tests', :t) RETURNING id"
                ),
                {"n": name, "h": name.ljust(64, "0"), "r": role, "t": NOW},
            ).scalar_one()
        )


def _users(database: Database) -> list[tuple[int, str, str]]:
    with database.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, username, role FROM users ORDER BY id")).all()
    return [(int(i), str(u), str(r)) for i, u, r in rows]


def test_roles_accepted_after_0014_ids_kept_and_round_trip(at_0013: Database) -> None:
    database = at_0013
    first = _add_user(database, "admin", "admin")
    landlord = _add_user(database, "landlord", "landlord")
    gone = _add_user(database, "gone", "staff")
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO auth_sessions (token_hash, user_id, created_at, last_seen_at, "
                "expires_at) VALUES (:h, :u, :t, :t, :t)"
            ),
            {"h": "a" * 64, "u": landlord, "t": NOW},
        )
        conn.execute(text("DELETE FROM users WHERE id = :i"), {"i": gone})
    # Before 0014 the stored CHECK refuses the new roles.
    with pytest.raises(IntegrityError):
        _add_user(database, "shop", "business")

    upgrade(database)
    assert _users(database) == [(first, "admin", "admin"), (landlord, "landlord", "landlord")]
    shop = _add_user(database, "shop", "business")
    fixer = _add_user(database, "fixer", "maintainer")
    token = _add_token(database, "shop-token", "business")
    # The deleted account's id never comes back (AUTOINCREMENT and its high-water mark kept).
    assert shop > gone and fixer > shop
    with pytest.raises(IntegrityError):
        _add_user(database, "nobody", "superuser")
    with database.engine.connect() as conn:
        # The session of the account survived the rebuild (nothing cascaded).
        assert conn.execute(text("SELECT user_id FROM auth_sessions")).scalar_one() == landlord
        if database.is_sqlite:
            users_sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'users'"
            ).scalar_one()
            assert "AUTOINCREMENT" in users_sql
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            fks = conn.exec_driver_sql("PRAGMA foreign_key_list(users)").fetchall()
            assert [(r[2], r[3]) for r in fks] == [("villages", "village_id")]

    # A downgrade refuses while such accounts or tokens exist, and changes nothing.
    head = current_revision(database)
    with pytest.raises(RuntimeError, match="business or maintainer"):
        downgrade(database, "0013")
    # Nothing changed, the later migrations' downgrades included (one transaction).
    assert current_revision(database) == head
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE role IN ('business', 'maintainer')"))
    with pytest.raises(RuntimeError, match="api_tokens"):
        downgrade(database, "0013")
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM api_tokens WHERE id = :i"), {"i": token})

    downgrade(database, "0013")
    assert current_revision(database) == "0013"
    assert _users(database) == [(first, "admin", "admin"), (landlord, "landlord", "landlord")]
    with pytest.raises(IntegrityError):
        _add_user(database, "shop2", "business")
    again = _add_user(database, "staff2", "staff")
    assert again > fixer
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT user_id FROM auth_sessions")).scalar_one() == landlord
    upgrade(database)
    assert _add_user(database, "shop3", "business") > again
