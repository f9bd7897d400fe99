"""A real browser (Debian's chromium, headless, through Playwright) on a real server: login,
the dashboard on a phone-width screen, and a new case arriving without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from cunan.app import CunanApp
from cunan.pipeline.store import SightingStore
from cunan.registry.records import NewPerson
from cunan.storage.enums import PersonCategory
from tests.api.conftest import PASSWORD, Village
from tests.served import serving
from tests.sightings import new_sighting

#: Hang guards only: no timing is asserted.
DEADLINE_S = 60.0
PHONE = {"width": 360, "height": 740}


@pytest.fixture
def served(api: FastAPI) -> Iterator[str]:
    with serving(api) as url:
        yield url


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


def test_a_landlord_reports_a_move_out_on_a_phone(
    served: str, browser: Any, core: CunanApp, village: Village
) -> None:
    service = core.registry.service
    room = service.add_room(village.house["a"], "phone", capacity=1)
    person = service.add_person(
        NewPerson(
            name="手机租客",
            village_id=service.default_village_id(),
            category=PersonCategory.TENANT,
            non_face_note="ID card",
        )
    )
    tenancy = service.add_tenancy(
        person, room, move_in=date.today() - timedelta(days=30), reported_by="tests"
    )
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(r.url) if r.status >= 400 else None)

    page.goto(served + "/login")
    page.get_by_label("用户名").fill("landlord_a")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(served + "/portal")
    assert page.get_by_role("heading", name="我的房屋和租客").is_visible()
    assert "手机租客" in page.content() and "租客b" not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("link", name="幸福路a号").click()
    page.wait_for_url(f"{served}/portal/houses/{village.house['a']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    form = page.locator(f'form[action="/portal/tenancies/{tenancy}/move-out"]')
    form.get_by_role("button", name="上报搬离").click()
    page.wait_for_url(served + "/portal?done=moved_out")
    assert page.get_by_text("谢谢：搬离已登记。").is_visible()
    assert problems == []
    context.close()


def test_the_statistics_print_as_a_report_without_the_menu(served: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    page.goto(served + "/login?next=/statistics")
    page.get_by_label("用户名").fill("auditor")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(served + "/statistics")
    assert page.locator("header.bar").is_visible()
    page.emulate_media(media="print")
    assert not page.locator("header.bar").is_visible()
    assert not page.locator("p.noprint").first.is_visible()
    assert page.locator("#figures").is_visible()
    # An A4 PDF of the report comes out of the browser's own print path.
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    context.close()
