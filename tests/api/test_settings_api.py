"""Administrators change thresholds, retention and deadlines from the API: validated, kept in
the database over the TOML file, audited; the environment still wins."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.config import Settings


def test_admin_changes_a_threshold_that_applies_now_and_after_a_restart(
    clients: dict[str, TestClient], core: CunanApp
) -> None:
    admin = clients["admin"]
    editable = admin.get("/api/v1/settings").json()["editable"]
    assert "matching.min_score" in editable and "duties.not_seen_days" in editable
    changed = admin.patch(
        "/api/v1/settings", json={"matching.min_score": 0.31, "duties.not_seen_days": 45}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "applied_now": ["matching.min_score"],
        "after_restart": ["duties.not_seen_days"],
    }
    view = admin.get("/api/v1/settings").json()
    assert view["matching"]["min_score"] == 0.31
    # A fresh start on the same data dir reads the change back over the file's settings.
    url = core.settings.database_url
    again = CunanApp.open(Settings(database_url=url), core.data_dir)
    try:
        assert again.settings.matching.min_score == 0.31
        assert again.settings.duties.not_seen_days == 45
        assert again.duties.reconciler.settings.not_seen_days == 45
    finally:
        again.close()
    [entry] = admin.get("/api/v1/audit", params={"action": "settings.change"}).json()["items"]
    assert "min_score" in entry["details"]


def test_bad_values_unknown_keys_and_other_roles_are_refused(
    clients: dict[str, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = clients["admin"]
    assert admin.patch("/api/v1/settings", json={"duties.not_seen_days": 0}).status_code == 422
    unknown = admin.patch("/api/v1/settings", json={"web.port": 80})
    assert unknown.status_code == 422 and "cannot be changed" in unknown.json()["detail"]
    assert admin.patch("/api/v1/settings", json={}).status_code == 422
    for role in ("staff", "auditor", "landlord_a"):
        refused = clients[role].patch("/api/v1/settings", json={"matching.min_score": 0.2})
        assert refused.status_code == 403
    monkeypatch.setenv("CUNAN_CASES__DEADLINE_DAYS", "5")
    pinned = admin.patch("/api/v1/settings", json={"cases.deadline_days": 2})
    assert pinned.status_code == 422
    assert "CUNAN_CASES__DEADLINE_DAYS" in pinned.json()["detail"]
