"""Offline village PCs: no served page, stylesheet or script names another host."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.pipeline.store import SightingStore
from tests.sightings import new_sighting

#: A URL with a scheme, or protocol-relative (//host), anywhere in the text.
_EXTERNAL = re.compile(r"\b(?:https?|wss?|ftp):|(?<![:/\w])//[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_REFERENCES = re.compile(r'\b(?:src|href|action|data-events)="([^"]*)"')


def _case(core: CunanApp) -> int:
    v = np.random.default_rng(9).standard_normal(128).astype(np.float32)
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    stored = store.add(
        new_sighting(v / np.linalg.norm(v), at=datetime.now(UTC), track_key="offline")
    )
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None
    return outcome.case_id


def _assert_local(text: str, where: str) -> None:
    assert _EXTERNAL.search(text) is None, (where, _EXTERNAL.search(text))
    for url in _REFERENCES.findall(text):
        assert url.startswith(("/", "?", "#")) and not url.startswith("//"), (where, url)


def test_no_page_or_asset_references_another_host(
    core: CunanApp, clients: dict[str, TestClient]
) -> None:
    case_id = _case(core)
    camera_id = core.cameras.add("offline-gate", "rtsp://127.0.0.1:9/x")
    admin = clients["admin"]
    anonymous = clients["anonymous"]
    pages = {
        "/login": anonymous.get("/login"),
        "/": admin.get("/"),
        "/cases": admin.get("/cases"),
        f"/cases/{case_id}": admin.get(f"/cases/{case_id}?q=租客&house=1"),
        "/account": admin.get("/account?lang=en"),
        "/cases/999999": admin.get("/cases/999999"),
        "/cameras": admin.get("/cameras"),
        "/cameras/new": admin.get("/cameras/new"),
        f"/cameras/{camera_id}": admin.get(f"/cameras/{camera_id}"),
        "/audit": admin.get("/audit"),
        "/audit/verify": admin.get("/audit/verify"),
        "/audit/privacy": admin.get("/audit/privacy"),
        "/statistics": admin.get("/statistics"),
        "/portal": clients["landlord_a"].get("/portal"),
    }
    stylesheets: set[str] = set()
    scripts: set[str] = set()
    for path, page in pages.items():
        assert page.status_code in (200, 404), path
        _assert_local(page.text, path)
        # No inline script anywhere (the CSP forbids it; the test says so first).
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        stylesheets.update(re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text))
        scripts.update(re.findall(r'<script src="([^"]+)"', page.text))
    assert stylesheets == {"/static/cunan.css"}
    assert scripts == {
        "/static/live.js",
        "/static/cameras.js",
        "/static/zone.js",
        "/static/case.js",
    }
    for asset in stylesheets | scripts:
        answer = anonymous.get(asset)
        assert answer.status_code == 200, asset
        _assert_local(answer.text, asset)
        # Fonts and pictures in stylesheets come from this site too.
        for url in re.findall(r"url\(([^)]*)\)", answer.text):
            assert url.strip("'\"").startswith(("/", "data:")), (asset, url)


def test_the_external_host_check_catches_each_form() -> None:
    for bad in (
        '<script src="https://cdn.example/x.js"></script>',
        '<link href="//fonts.example/a.css">',
        "@import url(http://x.example/a.css);",
    ):
        try:
            _assert_local(bad, "sample")
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {bad}")
