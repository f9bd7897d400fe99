"""The page tests share the API tests' installation: each database engine, a small village,
one logged-in client per role (fixtures imported from tests/api/conftest.py), and one headless
chromium for the whole run (each test opens its own context: cookies and storage are not shared)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import api, clients, core, db_url, village
from tests.conftest import skip_or_fail

__all__ = ["api", "browser", "clients", "core", "db_url", "village"]

#: Debian's chromium (.ci/run installs it); Playwright never downloads a browser here.
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Chromium started once: a launch costs seconds, a fresh context per test is isolation."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install '.[test]')")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        skip_or_fail("chromium is not installed (apt-get install chromium, as .ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
