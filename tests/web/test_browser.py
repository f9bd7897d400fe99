"""A real browser (Debian's chromium, headless, through Playwright) on a real server: login,
the dashboard on a phone-width screen, and a new case arriving without a reload."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from cunan.app import CunanApp
from cunan.pipeline.store import SightingStore
from tests.api.conftest import PASSWORD
from tests.conftest import skip_or_fail
from tests.served import serving
from tests.sightings import new_sighting

#: Debian's chromium (.ci/run installs it); Playwright never downloads a browser here.
CHROMIUM = Path("/usr/bin/chromium")
#: Hang guards only: no timing is asserted.
DEADLINE_S = 60.0
PHONE = {"width": 360, "height": 740}


@pytest.fixture
def served(api: FastAPI) -> Iterator[str]:
    with serving(api) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
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


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_a_new_case_appears_on_the_phone_dashboard_without_a_reload(
    served: str, browser: Any, core: CunanApp
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(r.url) if r.status >= 400 else None)

    page.goto(served + "/cases")
    assert page.url.startswith(served + "/login?next=/cases")
    page.get_by_label("用户名").fill("staff")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(served + "/cases")
    page.get_by_role("link", name="工作台").click()
    page.wait_for_url(served + "/")
    assert page.get_by_role("heading", name="待核实案件").is_visible()
    # Nothing wider than the phone: no sideways scrolling of the page itself.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    # live.js marks the list once its event stream is open; a case opened after that is
    # pushed to this page (the stream resumes from the outbox position it opened at).
    page.locator('#open-cases[data-live="open"]').wait_for()
    page.evaluate("() => { window.noReload = 1; }")
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    stored = store.add(
        new_sighting(_unit(4242), at=datetime.now(UTC), camera="south-gate", track_key="pw1")
    )
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None and outcome.opened
    item = page.locator(f"#live-case-{outcome.case_id}")
    item.wait_for()
    assert "south-gate" in item.inner_text() and "新案件" in item.inner_text()
    # The same page, not a reload: the marker set before is still there.
    assert page.evaluate("() => window.noReload") == 1
    item.get_by_role("link").click()
    page.wait_for_url(f"{served}/cases/{outcome.case_id}")
    assert page.get_by_role("heading", name=f"案件 #{outcome.case_id}").is_visible()
    assert problems == []
    context.close()
