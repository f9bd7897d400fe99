"""A village's story in a real browser against a real ``cunan serve`` process.

The administrator sets up a house, a room and a landlord account, enrols a resident by photo
upload and adds a video-file camera with its notice posted; the stranger in the video becomes a
case that appears on a staff member's phone without a reload; the staff member resolves it by
补录 into the room; the landlord, on a phone, sees only their own tenants and reports the
move-out; the auditor finds all of it in the audit log, no edit control anywhere, and the API
refuses their writes. Screenshots of the main pages (desktop and phone, Chinese) are saved
under ``$CUNAN_SCREENSHOTS`` when it is set (that is how ``docs/screenshots/`` is made).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_data
from tests.test_serve_api import PASSWORD, environment, photo, server

__all__ = ["environment", "server"]

pytestmark = pytest.mark.slow

#: Hang guards only: no timing is asserted.
DEADLINE_S = 240.0
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def db_url() -> str:
    """The story runs on the embedded default: ``serve`` makes its own SQLite database."""
    return "sqlite://"


class Shots:
    """Screenshots of the pages, kept only where ``$CUNAN_SCREENSHOTS`` points."""

    def __init__(self, fallback: Path) -> None:
        chosen = os.environ.get("CUNAN_SCREENSHOTS")
        self.folder = Path(chosen) if chosen else fallback
        self.folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page: Any, name: str) -> None:
        path = self.folder / f"{name}.png"
        # Faces (case crops, enrolment photos) are masked: screenshots go into the docs.
        page.screenshot(path=str(path), full_page=True, mask=[page.locator("main img")])
        self.taken.append(path)


def _session(browser: Any, base: str, username: str, *, phone: bool) -> tuple[Any, Any]:
    """A fresh browser (phone or desktop, Chinese) logged in as ``username``."""
    context = browser.new_context(
        viewport=PHONE if phone else DESKTOP, is_mobile=phone, locale="zh-CN"
    )
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    page.goto(base + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()[:2000]
    return context, page


def _watch(page: Any, problems: list[str]) -> None:
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 500 else None,
    )


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a phone"


def test_a_village_story_in_the_browser(
    server: tuple[subprocess.Popen[str], str],
    environment: dict[str, str],
    browser: Any,
    tmp_path: Path,
) -> None:
    proc, base = server
    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    shots = Shots(tmp_path / "shots")
    problems: list[str] = []

    # 1. The administrator (created from CUNAN_ADMIN_PASSWORD) sets up the registry.
    admin_ctx, admin = _session(browser, base, "admin", phone=False)
    _watch(admin, problems)
    admin.goto(base + "/registry")
    admin.locator("#l-name").fill("房东 李")
    admin.locator("form[action='/registry/landlords'] button[type=submit]").click()
    admin.wait_for_load_state()
    admin.goto(base + "/houses")
    admin.locator("#address").fill("桃源路 1号")
    admin.locator("#landlord_id").select_option(label="房东 李")
    admin.locator("form[action='/houses'][method=post] button[type=submit]").click()
    admin.wait_for_url(re.compile(r".*/houses/\d+$"))
    house_id = int(admin.url.rsplit("/", 1)[1])
    admin.locator("#label").fill("201")
    admin.locator("#capacity").fill("2")
    admin.locator(f"form[action='/houses/{house_id}/rooms'] button[type=submit]").click()
    admin.wait_for_load_state()
    assert "201" in admin.locator("main").inner_text()

    # Accounts: the landlord's (linked to the landlord record), a staff member, an auditor.
    for username, role, landlord in (
        ("li", "landlord", "房东 李"),
        ("wang", "staff", None),
        ("zhao", "auditor", None),
    ):
        admin.goto(base + "/settings/users")
        admin.locator("#u-name").fill(username)
        admin.locator("#u-role").select_option(role)
        if landlord is not None:
            admin.locator("#u-landlord").select_option(label=landlord)
        admin.locator("#u-password").fill(PASSWORD)
        admin.locator("form[action='/settings/users'] button[type=submit]").click()
        admin.wait_for_load_state()
        assert username in admin.locator("main").inner_text(), admin.content()[:3000]

    # Another landlord's house and tenant, through the API: the landlord must never see them.
    api = httpx.Client(base_url=base, timeout=60.0, headers={"origin": base})
    try:
        assert (
            api.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        ).status_code == 200
        other = api.post("/api/v1/landlords", json={"name": "房东 张"}).json()["id"]
        other_house = api.post(
            "/api/v1/houses", json={"address": "桃源路 9号", "landlord_id": other}
        ).json()["id"]
        other_room = api.post(
            f"/api/v1/houses/{other_house}/rooms", json={"label": "101", "capacity": 1}
        ).json()["id"]
        made = api.post(
            "/api/v1/people",
            data={"name": "Joe Biden", "consent_by": "网格员 王", "room_id": str(other_room)},
            files=[("photos", photo("biden.jpg"))],
        )
        assert made.status_code == 201, made.text
    finally:
        api.close()

    # 2. A resident enrolled by photo upload, on the enrolment page.
    obama = require_data("face_recognition_examples/examples/obama.jpg")
    admin.goto(base + "/people/new")
    admin.locator("#name").fill("Barack Obama")
    admin.locator("#category").select_option("resident")
    admin.locator("#photo").set_input_files(str(obama))
    admin.locator("form[action='/people/new'][method=post] button[type=submit]").click()
    admin.wait_for_load_state()
    assert re.search(r"/people/\d+(\?.*)?$", admin.url), admin.locator("main").inner_text()
    assert "Barack Obama" in admin.locator("main").inner_text()
    shots.take(admin, "person-desktop")

    # 3. A staff member watches the dashboard on a phone before the camera is added.
    staff_ctx, staff = _session(browser, base, "wang", phone=True)
    _watch(staff, problems)
    staff.goto(base + "/")
    staff.locator('#open-cases[data-live="open"]').wait_for()
    staff.evaluate("() => { window.noReload = 1; }")

    # 4. The administrator adds the video-file camera with its public notice posted.
    admin.goto(base + "/cameras/new")
    admin.locator("#cam-name").fill("stage")
    admin.locator("#cam-url").fill(str(clip))
    admin.locator("#cam-notice").check()
    admin.locator("#cam-reason").fill("村口已张贴人脸识别告知牌")
    admin.locator("form[action='/cameras'] button[type=submit]").click()
    admin.wait_for_load_state()
    assert "stage" in admin.locator("main").inner_text()

    # 5. The stranger's case reaches the phone without a reload.
    item = staff.locator("#open-cases [id^=live-case-]").first
    item.wait_for()
    assert staff.evaluate("() => window.noReload") == 1
    case_id = int((item.get_attribute("id") or "").removeprefix("live-case-"))
    _fits(staff)
    shots.take(staff, "dashboard-phone")

    # 6. On site he turns out to be a tenant: 补录 into room 201 from the case page.
    staff.goto(f"{base}/cases/{case_id}")
    _fits(staff)
    shots.take(staff, "case-phone")
    # With script, choosing the house fills its rooms in place (/static/case.js).
    staff.locator("form[action$='#h-enrol'] #house").select_option(str(house_id))
    enrol = staff.locator(f"form[action='/cases/{case_id}/enrol']")
    option = enrol.locator("#room_id option", has_text="201").first
    option.wait_for(state="attached")
    room = option.get_attribute("value")
    assert room, enrol.inner_text()
    enrol.locator("#room_id").select_option(room)
    enrol.locator("#name").fill("Lin-Manuel Miranda")
    enrol.locator("button[type=submit]").click()
    staff.wait_for_load_state()
    status = staff.request.get(f"{base}/api/v1/cases/{case_id}")
    assert status.ok and status.json()["status"] == "closed", status.text()
    tenant_id = status.json()["person_id"]
    staff_ctx.close()

    # 7. The landlord, on a phone: their tenant, nobody else's; reports the move-out.
    landlord_ctx, landlord = _session(browser, base, "li", phone=True)
    _watch(landlord, problems)
    assert landlord.url.rstrip("/").endswith("/portal")
    text = landlord.locator("main").inner_text()
    assert "Lin-Manuel Miranda" in text and "桃源路 1号" in text
    assert "Joe Biden" not in text and "桃源路 9号" not in text
    _fits(landlord)
    shots.take(landlord, "portal-phone")
    assert landlord.request.get(f"{base}/portal/houses/{other_house}").status == 404
    landlord.goto(f"{base}/portal/houses/{house_id}")
    move_out = landlord.locator("form.moveout").first
    move_out.locator("button[type=submit]").click()
    landlord.wait_for_load_state()
    assert "/login" not in landlord.url
    landlord_ctx.close()

    # 8. The auditor sees it all in the log, finds no edit control, and may not write.
    auditor_ctx, auditor = _session(browser, base, "zhao", phone=False)
    _watch(auditor, problems)
    auditor.goto(base + "/audit")
    log = auditor.locator("main").inner_text()
    shots.take(auditor, "audit-desktop")
    full = auditor.request.get(f"{base}/api/v1/audit?limit=200")
    assert full.ok, full.text()
    actions = {entry["action"] for entry in full.json()["items"]}
    assert {"camera.add", "person.create", "case.transition", "user.create"} <= actions, actions
    assert {"tenancy.move_out", "departure.report"} & actions, actions
    assert log.strip()
    for path in (
        "/",
        "/cases",
        f"/cases/{case_id}",
        "/people",
        f"/people/{tenant_id}",
        "/houses",
        f"/houses/{house_id}",
        "/cameras",
        "/statistics",
        "/audit",
        "/audit/privacy",
    ):
        auditor.goto(base + path)
        posts = auditor.locator("form[method=post]:not([action='/logout'])").count()
        assert posts == 0, f"{path} shows the auditor {posts} edit form(s)"
    refused = auditor.request.post(
        f"{base}/api/v1/landlords", data={"name": "不该有"}, headers={"origin": base}
    )
    assert refused.status == 403, refused.text()
    auditor_ctx.close()

    # Screenshots of the other main pages (desktop).
    for path, name in (
        ("/", "dashboard-desktop"),
        ("/cases?status=all", "cases-desktop"),
        (f"/cases/{case_id}", "case-desktop"),
        ("/cameras", "cameras-desktop"),
        ("/statistics", "statistics-desktop"),
        (f"/houses/{house_id}", "house-desktop"),
    ):
        admin.goto(base + path)
        shots.take(admin, name)
    admin_ctx.close()

    assert problems == [], problems
    assert proc.poll() is None, "the server died during the story"
    assert all(p.stat().st_size > 0 for p in shots.taken)
