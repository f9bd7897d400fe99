"""A real browser on a phone-size screen: staff enrol a person by photo upload and read the
verdict in plain words (a face too small, then a good photo)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.api.conftest import PASSWORD
from tests.conftest import require_data
from tests.web.test_browser import DEADLINE_S, PHONE, served

__all__ = ["served"]


def _far_away(data: bytes) -> bytes:
    """The same portrait as if taken from too far: the face about 50 px wide."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    small = image.resize((200, round(image.size[1] * 200 / image.size[0])))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_staff_enrol_a_person_by_photo_on_a_phone(served: str, browser: Any) -> None:
    portrait = (require_data("face_recognition_examples/examples") / "obama.jpg").read_bytes()
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(served + "/people/new")
    page.get_by_label("用户名").fill("staff")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(served + "/people/new")
    assert page.get_by_role("heading", name="登记人员").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    # The file input offers the phone's front camera as well as the gallery.
    photo = page.get_by_label("照片：上传，或用手机摄像头拍摄")
    assert photo.get_attribute("capture") == "user"
    assert photo.get_attribute("accept") == "image/*"

    page.get_by_label("姓名", exact=True).fill("欧阳明")
    photo.set_input_files(
        {"name": "far.jpg", "mimeType": "image/jpeg", "buffer": _far_away(portrait)}
    )
    page.get_by_role("button", name="登记", exact=True).click()
    verdict = page.get_by_role("alert")
    verdict.wait_for()
    assert "脸太小，请走近一些" in verdict.inner_text()
    assert "px" not in verdict.inner_text()
    # What was typed is still there; a closer photo is accepted.
    assert page.get_by_label("姓名", exact=True).input_value() == "欧阳明"
    page.get_by_label("照片：上传，或用手机摄像头拍摄").set_input_files(
        {"name": "near.jpg", "mimeType": "image/jpeg", "buffer": portrait}
    )
    page.get_by_role("button", name="登记", exact=True).click()
    page.wait_for_url(served + "/people/*?done=enrolled")
    status = page.get_by_role("status")
    assert "照片合格" in status.inner_text()
    assert page.get_by_role("heading", name="欧阳明").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    # Every registry page fits the phone (wide tables scroll inside their own box).
    person = page.url.split("?")[0]
    for path in ("/people", "/houses", "/houses/1", "/rooms", "/registry", "/imports"):
        page.goto(served + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    page.goto(person + "?house=1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (person, width)
    # The refused photo's page is answered with 422 on purpose (the form again, with the
    # verdict); the browser logs that status, and nothing else may go wrong.
    assert [p for p in problems if "status of 422" not in p] == []
    assert len(problems) <= 1
    context.close()
