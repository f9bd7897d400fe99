"""The camera pages over the real application on both engines: list with health, add, edit,
zone, test connection (a real wrong URL, a real video file), snapshot, roles; and a real
browser dragging the detection zone on the snapshot while the health updates live."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.capture import BackoffPolicy, CameraReader, SourceConfig
from cunan.pipeline.camera_health import HEALTH_EVENT, CameraHealthStore
from tests.api.conftest import ORIGIN, PASSWORD
from tests.capture.fake_servers import closed_port
from tests.served import serving
from tests.videos import small_video

#: Hang guards only: no timing is asserted.
DEADLINE_S = 60.0


def _until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"waited {DEADLINE_S:.0f} s for {what}")
        time.sleep(0.05)


def _page_login(api: FastAPI, username: str) -> TestClient:
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


@pytest.fixture(scope="module")
def pages(api: FastAPI) -> dict[str, TestClient]:
    return {n: _page_login(api, n) for n in ("admin", "staff", "auditor", "landlord_a")}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("video") / "gate.mp4", frames=20)


def _failing_health(url: str) -> Any:
    """A real reader's health after a few refused connections."""
    policy = BackoffPolicy(initial_s=0.05, max_s=0.1, jitter=0.0)
    with CameraReader("probe", SourceConfig(url), backoff=policy) as reader:
        _until(lambda: reader.health().consecutive_failures >= 2, "two refused attempts")
        return reader.health()


def _id_from(answer: Any) -> int:
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/cameras/(\d+)\?saved=1", answer.headers["location"])
    assert match, answer.headers["location"]
    return int(match.group(1))


def test_staff_add_a_camera_with_the_notice_and_its_reason(
    pages: dict[str, TestClient], core: CunanApp
) -> None:
    staff = pages["staff"]
    form = staff.get("/cameras/new")
    assert form.status_code == 200 and "添加摄像头" in form.text
    assert 'name="reason"' in form.text and 'name="notice"' in form.text
    # A LAN address (staff may not point cameras at the server itself); nothing connects.
    url = "rtsp://admin:pw9secret@192.0.2.10:554/live"
    camera_id = _id_from(
        staff.post(
            "/cameras",
            data={
                "name": "东门",
                "url": url,
                "enabled": "1",
                "notice": "1",
                "reason": "村委会决议 2026-3 号；告示贴在东门右侧",
            },
        )
    )
    record = core.cameras.get(camera_id)
    assert record.public_notice_posted and record.enabled and record.stream_url == url
    assert record.public_notice_reason == "村委会决议 2026-3 号；告示贴在东门右侧"
    page = staff.get(f"/cameras/{camera_id}?saved=1")
    assert page.status_code == 200
    assert "已保存" in page.text and "告示贴在东门右侧" in page.text
    assert "pw9secret" not in page.text and "/live" not in page.text  # scheme, host, port only
    assert "未运行" in page.text  # no process reports on it yet
    # The API shows the same, with the health field.
    api_view = staff.get(f"/api/v1/cameras/{camera_id}").json()
    assert api_view["public_notice_reason"].startswith("村委会决议")
    assert api_view["health"]["state"] == "not_running"
    # A refused form comes back with what was typed and the reason.
    again = staff.post("/cameras", data={"name": "东门", "url": url, "notice": "1"})
    assert again.status_code == 422 and "东门" in again.text and "未保存" in again.text
    # Staff may not point a camera at the server's own files.
    local = staff.post("/cameras", data={"name": "file", "url": "/etc/hostname"})
    assert local.status_code == 403


def test_edit_keeps_the_url_when_left_empty_and_clears_the_notice(
    pages: dict[str, TestClient], core: CunanApp
) -> None:
    staff = pages["staff"]
    url = f"rtsp://127.0.0.1:{closed_port()}/edit"
    camera_id = core.cameras.add("北门", url, public_notice_posted=True)
    answer = staff.post(
        f"/cameras/{camera_id}",
        data={"name": "北门二号", "url": "", "enabled": "1", "reason": ""},
    )
    assert _id_from(answer) == camera_id
    record = core.cameras.get(camera_id)
    assert record.name == "北门二号" and record.stream_url == url
    assert not record.public_notice_posted  # the box was not ticked
    page = staff.get(f"/cameras/{camera_id}")
    assert "未张贴：识别已关闭" in page.text or "未张贴" in page.text
    # A new address replaces the old one.
    new_url = "rtsp://192.0.2.11:554/other"
    staff.post(f"/cameras/{camera_id}", data={"name": "北门二号", "url": new_url, "notice": "1"})
    assert core.cameras.get(camera_id).stream_url == new_url


def test_the_zone_is_typed_checked_and_cleared(
    pages: dict[str, TestClient], core: CunanApp
) -> None:
    staff = pages["staff"]
    camera_id = core.cameras.add("西门", "rtsp://127.0.0.1/x", public_notice_posted=True)
    saved = staff.post(
        f"/cameras/{camera_id}/zone",
        data={"left": "100", "top": "50", "right": "900", "bottom": "700"},
    )
    assert _id_from(saved) == camera_id
    record = core.cameras.get(camera_id)
    assert json.loads(record.zone_json or "") == {"rectangle": [100, 50, 900, 700]}
    assert record.zone is not None and record.zone.contains(500, 300)
    page = staff.get(f"/cameras/{camera_id}")
    assert 'id="zone-left" name="left" value="100"' in page.text
    backwards = staff.post(
        f"/cameras/{camera_id}/zone",
        data={"left": "900", "top": "50", "right": "100", "bottom": "700"},
    )
    assert backwards.status_code == 422 and "zone" in backwards.text
    assert 'value="900"' in backwards.text  # what was typed comes back
    words = staff.post(
        f"/cameras/{camera_id}/zone", data={"left": "a", "top": "1", "right": "2", "bottom": "3"}
    )
    assert words.status_code == 422 and "zone left" in words.text
    assert core.cameras.get(camera_id).zone_json == record.zone_json  # unchanged
    cleared = staff.post(f"/cameras/{camera_id}/zone", data={"whole": "1"})
    assert cleared.status_code == 303 and core.cameras.get(camera_id).zone_json is None


def test_test_connection_says_in_words_why_a_wrong_url_fails(
    pages: dict[str, TestClient], core: CunanApp
) -> None:
    staff = pages["staff"]
    camera_id = core.cameras.add(
        "南门", f"rtsp://u:topsecret@127.0.0.1:{closed_port()}/user=u_password=topsecret"
    )
    result = staff.post(f"/cameras/{camera_id}/test")
    assert result.status_code == 200
    assert "连接失败" in result.text and "该地址和端口没有应答" in result.text
    assert "topsecret" not in result.text
    # The snapshot of an unreachable camera is "not available now", not a broken page.
    assert staff.get(f"/cameras/{camera_id}/snapshot.jpg").status_code == 503


def test_a_video_file_camera_connects_and_its_snapshot_is_never_cached(
    pages: dict[str, TestClient], core: CunanApp, clip: Path
) -> None:
    admin = pages["admin"]
    camera_id = _id_from(
        admin.post("/cameras", data={"name": "录像", "url": str(clip), "notice": "1"})
    )
    result = admin.post(f"/cameras/{camera_id}/test")
    assert "连接成功" in result.text and "320 × 240" in result.text
    shot = admin.get(f"/cameras/{camera_id}/snapshot.jpg")
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
    assert shot.content[:2] == b"\xff\xd8"
    assert shot.headers["cache-control"] == "no-store, private"
    assert shot.headers["x-frame-width"] == "320" and shot.headers["x-frame-height"] == "240"
    # The auditor reads cameras but does not make the server connect to them.
    assert pages["auditor"].get(f"/cameras/{camera_id}/snapshot.jpg").status_code == 403


def test_health_from_a_real_failing_reader_shows_on_list_page_dashboard_and_api(
    pages: dict[str, TestClient], core: CunanApp
) -> None:
    url = f"rtsp://127.0.0.1:{closed_port()}/x"
    camera_id = core.cameras.add("坏门", url, public_notice_posted=True)
    database = core.registry.database
    before = core.outbox.last_id()
    CameraHealthStore(database).report(camera_id, "坏门", _failing_health(url), stream_url=url)
    events = [e for e in core.outbox.live_after(before) if e.kind == HEALTH_EVENT]
    assert [e.payload["state"] for e in events] == ["failing"]
    staff = pages["staff"]
    listing = staff.get("/cameras")
    assert listing.status_code == 200
    row = listing.text[listing.text.index(f'id="health-{camera_id}"') :]
    assert row.index("连接失败，仍在重试") < row.index("</td>")
    assert "connection refused" in row[: row.index("</td>")]
    assert 'src="/static/cameras.js"' in listing.text and "<script>" not in listing.text
    dashboard = staff.get("/")
    cell = dashboard.text[dashboard.text.index(f'id="health-{camera_id}"') :]
    assert cell.index("连接失败，仍在重试") < cell.index("</td>")
    health = staff.get(f"/api/v1/cameras/{camera_id}").json()["health"]
    assert health["state"] == "failing" and health["consecutive_failures"] >= 2
    assert health["last_frame_at"] is None and "refused" in health["last_error"]
    listed = {c["id"]: c for c in staff.get("/api/v1/cameras").json()}
    assert listed[camera_id]["health"]["state"] == "failing"


def test_roles_auditors_read_only_landlords_find_nothing(
    pages: dict[str, TestClient], core: CunanApp
) -> None:
    camera_id = core.cameras.add("审计看", "rtsp://127.0.0.1/a", public_notice_posted=True)
    auditor = pages["auditor"]
    listing = auditor.get("/cameras")
    assert listing.status_code == 200 and "审计看" in listing.text
    assert "/cameras/new" not in listing.text
    page = auditor.get(f"/cameras/{camera_id}")
    assert page.status_code == 200 and "审计看" in page.text
    assert "<form" not in page.text.replace('action="/logout"', "").split("<main", 1)[1]
    assert "zone.js" not in page.text
    assert auditor.get("/cameras/new").status_code == 404
    refused = auditor.post(f"/cameras/{camera_id}", data={"name": "x", "notice": "1"})
    assert refused.status_code == 403
    assert auditor.post(f"/cameras/{camera_id}/zone", data={"whole": "1"}).status_code == 403
    assert auditor.post(f"/cameras/{camera_id}/test").status_code == 403
    assert core.cameras.get(camera_id).name == "审计看"
    landlord = pages["landlord_a"]
    for path in ("/cameras", f"/cameras/{camera_id}", "/cameras/new"):
        assert landlord.get(path).status_code == 404, path
    assert landlord.post(f"/cameras/{camera_id}/test").status_code == 404
    assert 'href="/cameras"' not in landlord.get("/account").text
    assert 'href="/cameras"' in pages["staff"].get("/account").text


@pytest.fixture
def served(api: FastAPI) -> Iterator[str]:
    with serving(api) as url:
        yield url


def test_a_browser_drags_the_zone_on_the_snapshot_and_sees_health_live(
    served: str, browser: Any, core: CunanApp, clip: Path
) -> None:
    camera_id = core.cameras.add("拖动", str(clip), public_notice_posted=True)
    context = browser.new_context(viewport={"width": 1000, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{served}/cameras/{camera_id}")
    page.get_by_label("用户名").fill("staff")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{served}/cameras/{camera_id}")
    page.locator('#zone-editor[data-ready="1"]').wait_for()
    picture = page.locator("#zone-editor img.snapshot")
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    assert box is not None and box["width"] > 0
    # Drag from a quarter to three quarters of the picture.
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75, steps=5)
    page.mouse.up()
    assert page.locator(".zone-box").is_visible()
    typed = [
        int(page.locator(f"#zone-{n}").input_value()) for n in ("left", "top", "right", "bottom")
    ]
    # Full-frame pixels of the 320 x 240 video, whatever size the picture is shown at.
    for got, want in zip(typed, (80, 60, 240, 180), strict=True):
        assert abs(got - want) <= 3, typed
    page.get_by_role("button", name="保存区域").click()
    page.wait_for_url(f"{served}/cameras/{camera_id}?saved=1")
    assert json.loads(core.cameras.get(camera_id).zone_json or "") == {"rectangle": typed}
    # The health cell follows the camera over the event stream, without a reload.
    page.goto(f"{served}/cameras")
    page.locator('#camera-health[data-live="open"]').wait_for(state="attached")
    page.evaluate("() => { window.noReload = 1; }")
    url = f"rtsp://127.0.0.1:{closed_port()}/x"
    CameraHealthStore(core.registry.database).report(camera_id, "拖动", _failing_health(url))
    page.locator(f'#health-{camera_id}[data-state="failing"]').wait_for()
    assert "连接失败，仍在重试" in page.locator(f"#health-{camera_id}").inner_text()
    assert page.evaluate("() => window.noReload") == 1
    # The dashboard's camera card too, over the one stream the page shares with live.js.
    page.goto(f"{served}/")
    page.locator('#open-cases[data-live="open"]').wait_for()
    page.locator('#camera-health[data-live="open"]').wait_for(state="attached")
    with CameraReader("拖动", SourceConfig(str(clip), loop=True)) as reader:
        _until(lambda: reader.get(timeout=1.0) is not None, "a frame of the video")
        CameraHealthStore(core.registry.database).report(camera_id, "拖动", reader.health())
    page.locator(f'#health-{camera_id}[data-state="streaming"]').wait_for()
    assert "正常" in page.locator(f"#health-{camera_id}").inner_text()
    # cameras.js listened on live.js's stream rather than opening its own.
    assert page.evaluate("() => window.cunanEvents instanceof EventSource")
    assert problems == []
    context.close()


def test_the_api_renames_readdresses_and_records_the_reason(
    clients: dict[str, TestClient], core: CunanApp
) -> None:
    staff = clients["staff"]
    made = staff.post(
        "/api/v1/cameras",
        json={
            "name": "接口门",
            "url": "rtsp://192.0.2.12:9/a",
            "public_notice_posted": True,
            "public_notice_reason": "村规民约第 7 条",
        },
    )
    assert made.status_code == 201, made.text
    camera = made.json()
    assert camera["public_notice_reason"] == "村规民约第 7 条"
    assert camera["health"]["state"] == "not_running"
    changed = staff.patch(
        f"/api/v1/cameras/{camera['id']}",
        json={"name": "接口门二", "url": "rtsp://192.0.2.13:10/b", "public_notice_reason": ""},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "接口门二" and body["public_notice_reason"] is None
    assert body["url"] == "rtsp://192.0.2.13:10/…" and body["public_notice_posted"]
    assert core.cameras.get(camera["id"]).stream_url == "rtsp://192.0.2.13:10/b"
    refused = clients["auditor"].patch(f"/api/v1/cameras/{camera['id']}", json={"name": "x"})
    assert refused.status_code == 403
    taken = staff.patch(f"/api/v1/cameras/{camera['id']}", json={"name": "东门"})
    assert taken.status_code in (409, 422) and "东门" in taken.text
