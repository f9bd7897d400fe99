"""The registry pages over the real application, on both database engines: each role sees what
it should (auditors no edit control, landlords only their own houses and tenants), the forms
store what they say without JavaScript, photos come through an authorised endpoint, and a
photo that cannot be used is explained in plain words."""

from __future__ import annotations

import io
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from cunan.app import CunanApp
from cunan.faces.plain_words import explain, plain_text
from cunan.registry.records import NewPerson
from cunan.storage.enums import PersonCategory
from tests.api.conftest import ORIGIN, PASSWORD, Village
from tests.conftest import require_data

#: Hang guard only: no timing is asserted.
DEADLINE_S = 300.0
HEADER = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期\n"
ROLES = ("admin", "staff", "auditor", "landlord_a")


def _browser(api: FastAPI, username: str) -> TestClient:
    """A logged-in browser whose form posts say where they come from (Origin)."""
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


@pytest.fixture(scope="module")
def browsers(api: FastAPI) -> dict[str, TestClient]:
    return {role: _browser(api, role) for role in (*ROLES, "landlord_b")}


def _posts(html: str) -> list[str]:
    """The actions of the page's forms that change something (logout is everyone's)."""
    return [a for a in re.findall(r'<form method="post" action="([^"]+)"', html) if a != "/logout"]


def _jpeg(path: Path, width: int | None = None) -> bytes:
    image = Image.open(path).convert("RGB")
    if width is not None:
        image = image.resize((width, round(image.size[1] * width / image.size[0])))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_each_role_sees_the_registry_pages_it_should(
    browsers: dict[str, TestClient], village: Village
) -> None:
    house_a, house_b = village.house["a"], village.house["b"]
    tenant_a, tenant_b = village.tenant["a"], village.tenant["b"]
    reads = [
        "/registry",
        "/houses",
        f"/houses/{house_a}",
        "/rooms",
        "/rooms?vacant=1",
        "/people",
        f"/people/{tenant_a}",
    ]
    for role in ("admin", "staff"):
        for path in reads:
            page = browsers[role].get(path)
            assert page.status_code == 200, (role, path, page.status_code)
        assert "/houses" in _posts(browsers[role].get("/houses").text)
        house = browsers[role].get(f"/houses/{house_a}").text
        assert {f"/houses/{house_a}/rooms", f"/houses/{house_a}/landlord"} <= set(_posts(house))
        person = browsers[role].get(f"/people/{tenant_a}").text
        assert f"/people/{tenant_a}/edit" in _posts(person)
        assert f'href="/people/{tenant_a}/remove"' in person
        assert browsers[role].get("/people/new").status_code == 200
        assert browsers[role].get("/imports").status_code == 200
    # Only administrators add villages.
    assert "/registry/villages" in _posts(browsers["admin"].get("/registry").text)
    assert "/registry/villages" not in _posts(browsers["staff"].get("/registry").text)

    auditor = browsers["auditor"]
    for path in reads:
        page = auditor.get(path)
        assert page.status_code == 200, (path, page.status_code)
        # Everything readable, nothing to change: no form posts, no remove link.
        assert _posts(page.text) == [], (path, _posts(page.text))
        assert "/remove" not in page.text and 'href="/people/new"' not in page.text
    assert "租客a" in auditor.get(f"/people/{tenant_a}").text
    assert auditor.get("/people/new").status_code == 403
    assert auditor.get("/imports").status_code == 403
    assert auditor.post(f"/people/{tenant_a}/edit", data={"name": "改名"}).status_code == 403

    landlord = browsers["landlord_a"]
    assert landlord.get("/registry").headers["location"] == "/houses"
    houses = landlord.get("/houses").text
    assert "幸福路a号" in houses and "幸福路b号" not in houses
    assert landlord.get(f"/houses/{house_a}").status_code == 200
    # Another landlord's records answer exactly like missing ones.
    assert landlord.get(f"/houses/{house_b}").status_code == 404
    assert landlord.get(f"/people/{tenant_b}").status_code == 404
    assert landlord.get(f"/houses/{10**6}").status_code == 404
    people = landlord.get("/people").text
    assert "租客a" in people and "租客b" not in people
    rooms = landlord.get("/rooms").text
    assert "幸福路a号" in rooms and "幸福路b号" not in rooms
    own = landlord.get(f"/people/{tenant_a}")
    assert own.status_code == 200 and _posts(own.text) == []
    # Consent history and photos are the village office's, not the landlord's.
    assert "知情同意记录" not in own.text and "/photos/" not in own.text
    for path in ("/people/new", "/imports"):
        assert landlord.get(path).status_code == 403
    assert landlord.post(f"/houses/{house_a}/rooms", data={"label": "9"}).status_code == 403


def test_places_forms_store_what_they_say(browsers: dict[str, TestClient], core: CunanApp) -> None:
    staff = browsers["staff"]
    assert staff.post("/registry/areas", data={"name": "第三网格"}).status_code == 303
    assert staff.post("/registry/landlords", data={"name": "房东丙", "phone": "13800000003"})
    places = staff.get("/registry").text
    assert "第三网格" in places and "房东丙" in places
    area = int(re.search(r'<option value="(\d+)">第三网格</option>', staff.get("/houses").text)[1])  # type: ignore[index]
    landlord = int(
        re.search(
            r'<option value="(\d+)">房东丙 \(13800000003\)</option>', staff.get("/houses").text
        )[1]  # type: ignore[index]
    )
    created = staff.post(
        "/houses", data={"address": "和平街7号", "area_id": str(area), "landlord_id": str(landlord)}
    )
    assert created.status_code == 303
    house_url = created.headers["location"]
    house_id = int(house_url.rsplit("/", 1)[1])
    page = staff.get(house_url).text
    assert "和平街7号" in page and "房东丙" in page and "第三网格" in page
    assert (
        staff.post(f"{house_url}/rooms", data={"label": "201", "capacity": "2"}).status_code == 303
    )
    page = staff.get(house_url).text
    assert "201" in page and "空房" in page
    room_id = int(re.search(r"/rooms/(\d+)/capacity", page)[1])  # type: ignore[index]
    # A vacant room is listed as one with a free place.
    assert "和平街7号" in staff.get("/rooms?vacant=1").text
    assert (
        staff.post(f"{house_url}/rooms/{room_id}/capacity", data={"capacity": "3"}).status_code
        == 303
    )
    assert 'value="3"' in staff.get(house_url).text
    assert staff.post(f"{house_url}/households", data={"name": "陈家", "registration_number": "H7"})
    assert "陈家" in staff.get(house_url).text and "户号 H7" in staff.get(house_url).text
    assert staff.post(f"{house_url}/landlord", data={"landlord_id": ""}).status_code == 303
    with core.registry.database.read() as session:
        from cunan.storage.tables import House, Room

        house = session.get(House, house_id)
        room = session.get(Room, room_id)
        assert house is not None and house.landlord_id is None and house.area_id == area
        assert room is not None and room.capacity == 3
    # A refused change shows the form again with the reason: the same address twice.
    again = staff.post("/houses", data={"address": "和平街7号"})
    assert again.status_code == 422 and "和平街7号" in again.text
    # A room of another house is not changed through this house's form.
    other = staff.post(f"/houses/{house_id}/rooms/{10**6}/capacity", data={"capacity": "2"})
    assert other.status_code == 404


def test_a_person_from_enrolment_to_removal(
    browsers: dict[str, TestClient], village: Village, core: CunanApp
) -> None:
    staff = browsers["staff"]
    room_a = village.room["a"]
    form = staff.get(f"/people/new?house={village.house['a']}").text
    assert f'<option value="{room_a}"' in form
    assert 'type="file" accept="image/*" capture="user"' in form
    enrolled = staff.post(
        "/people/new",
        data={
            "name": "周九",
            "category": "tenant",
            "house": str(village.house["a"]),
            "room_id": str(room_a),
            "non_face_note": "看身份证",
            "phone": "13900000009",
            # A passport number: refused as a resident ID, stored as the passport it is.
            "id_type": "passport",
            "id_number": "E12345678",
        },
    )
    assert enrolled.status_code == 303, enrolled.text
    person_url = enrolled.headers["location"].split("?")[0]
    person_id = int(person_url.rsplit("/", 1)[1])
    page = staff.get(enrolled.headers["location"]).text
    assert "周九" in page and "幸福路a号" in page and "已登记" in page and "看身份证" in page
    # Edit: name and household (one of the houses the person lives in).
    staff.post(f"/houses/{village.house['a']}/households", data={"name": "周家"})
    page = staff.get(person_url).text
    household = int(re.search(r'<option value="(\d+)">周家</option>', page)[1])  # type: ignore[index]
    saved = staff.post(
        f"{person_url}/edit",
        data={
            "name": "周久",
            "phone": "13900000009",
            "category": "tenant",
            "household_id": str(household),
        },
    )
    assert saved.status_code == 303
    page = staff.get(person_url).text
    assert "周久" in page and "周家" in page
    view = core.registry.service.get_person(person_id)
    assert view.name == "周久" and view.household_id == household
    # A second tenancy, in the other house's room (chosen house then room).
    page = staff.get(f"{person_url}?house={village.house['b']}").text
    assert f'<option value="{village.room["b"]}"' in page
    added = staff.post(
        f"{person_url}/tenancies",
        data={"room_id": str(village.room["b"]), "move_in": "2026-01-02", "expected_end": ""},
    )
    assert added.status_code == 303
    page = staff.get(person_url).text
    assert "幸福路b号" in page
    # Moved out of the first room (reported by staff on the person page).
    tenancy = int(re.search(rf"{person_url}/tenancies/(\d+)/move-out", page)[1])  # type: ignore[index]
    future = staff.post(
        f"{person_url}/tenancies/{tenancy}/move-out", data={"move_out": "2999-01-01"}
    )
    assert future.status_code == 422 and "搬离日期不能晚于今天" in future.text
    other = staff.post(
        f"{person_url}/tenancies/{village.tenancy['b']}/move-out", data={"move_out": "2026-01-03"}
    )
    assert other.status_code == 404
    today = datetime.now(core.settings.duties.zone).date().isoformat()
    moved = staff.post(f"{person_url}/tenancies/{tenancy}/move-out", data={"move_out": today})
    assert moved.status_code == 303 and "搬离已记录" in staff.get(moved.headers["location"]).text
    assert any(t.move_out is not None for t in core.registry.service.tenancies_of(person_id))
    # Consent recorded, then withdrawn: the history shows both.
    assert (
        staff.post(f"{person_url}/consents", data={"collected_by": "网格员王"}).status_code == 303
    )
    assert staff.get(person_url).text.count("网格员王") == 1
    assert f"{person_url}/withdraw" in _posts(staff.get(person_url).text)
    refused = staff.post(f"{person_url}/withdraw", data={"alternative_note": " "})
    assert refused.status_code == 422
    withdrawn = staff.post(f"{person_url}/withdraw", data={"alternative_note": "看身份证"})
    assert withdrawn.status_code == 303
    consents = core.registry.service.consents_of(person_id)
    assert len(consents) == 1 and consents[0].withdrawn_at is not None
    assert "已撤回同意" in staff.get(withdrawn.headers["location"]).text
    # Remove: asked once more, then gone.
    confirm = staff.get(f"{person_url}/remove")
    assert confirm.status_code == 200 and "无法恢复" in confirm.text
    assert staff.post(f"{person_url}/remove").headers["location"] == f"{person_url}/remove"
    assert staff.get(person_url).status_code == 200
    removed = staff.post(f"{person_url}/remove", data={"confirm": "1"})
    assert removed.status_code == 303 and removed.headers["location"] == "/people?removed=1"
    assert staff.get(person_url).status_code == 404


def test_people_search_filters_and_pages_in_sql(
    browsers: dict[str, TestClient], village: Village, core: CunanApp
) -> None:
    service = core.registry.service
    village_id = service.default_village_id()
    for n in range(27):
        service.add_person(
            NewPerson(
                name=f"检索{n:02d}",
                village_id=village_id,
                category=PersonCategory.RESIDENT,
                non_face_note="checked by ID card",
                id_number=None,
            )
        )
    staff = browsers["staff"]
    first = staff.get("/people", params={"name": "检索"}).text
    assert "27 人" in first and "检索00" in first and "检索25" not in first
    following = re.search(r'href="(/people\?[^"]*offset=25)"', first)
    assert following is not None
    second = staff.get(following[1].replace("&amp;", "&")).text
    assert "检索25" in second and "检索26" in second and "检索00" not in second
    by_house = staff.get("/people", params={"house": str(village.house["b"])}).text
    assert "租客b" in by_house and "租客a" not in by_house
    by_room = staff.get("/people", params={"room": str(village.room["a"])}).text
    assert "租客a" in by_room and "租客b" not in by_room
    residents = staff.get("/people", params={"category": "resident", "name": "检索0"}).text
    assert "10 人" in residents
    assert "0 人" in staff.get("/people", params={"category": "tenant", "name": "检索"}).text
    assert "0 人" in staff.get("/people", params={"status": "departed", "name": "检索"}).text
    # ID-number tails are digits (and X) only: a pattern is refused in words.
    assert staff.get("/people", params={"id_tail": "%"}).status_code == 422


def test_a_photo_that_is_not_a_picture_is_explained_in_plain_words(
    browsers: dict[str, TestClient], api: FastAPI
) -> None:
    staff = browsers["staff"]
    answer = staff.post(
        "/people/new",
        data={"name": "吴十", "consent_by": "网格员王"},
        files={"photo": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert answer.status_code == 422
    assert "这不是照片文件，请选 JPG 或 PNG 照片" in answer.text
    # The form keeps what was typed; nothing was stored.
    assert 'value="吴十"' in answer.text
    assert "吴十" not in staff.get("/people", params={"name": "吴十"}).text.split("</form>")[-1]
    # A browser of its own: ?lang= is remembered in a cookie.
    english = _browser(api, "staff").post(
        "/people/new?lang=en",
        data={"name": "吴十", "consent_by": "网格员王"},
        files={"photo": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert "not a photo file: choose a JPG or PNG photo" in english.text
    # The API says the same plain words (and keeps the measured reason).
    refused = staff.post(
        "/api/v1/people",
        data={"name": "吴十", "consent_by": "网格员王"},
        files={"photos": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "这不是照片文件" in detail and "not an image file" in detail


def test_plain_words_for_the_engine_reasons() -> None:
    reason = (
        "face not good enough for enrolment: face too small (53 px < 80 px); "
        "eyes too close together (24 px < 30 px); too dark (brightness 20 < 40)"
    )
    assert [p.zh for p in explain(reason)] == ["脸太小，请走近一些", "太暗了，请到亮一点的地方拍"]
    assert "move closer" in plain_text(reason) and "53 px" in plain_text(reason)
    assert explain("something new") == [] and plain_text("something new") == "something new"


def test_enrolment_by_photo_shows_the_verdict_and_the_photo_is_authorised(
    browsers: dict[str, TestClient],
    village: Village,
    api: FastAPI,
    core: CunanApp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    examples = require_data("face_recognition_examples/examples")
    # The village chose to keep enrolment photos (off by default): the page shows them.
    monkeypatch.setattr(core.registry.service.settings, "keep_enrolment_photos", True)
    staff = browsers["staff"]
    small = staff.post(
        "/people/new",
        data={"name": "奥巴马", "consent_by": "网格员王"},
        files={"photo": ("far.jpg", _jpeg(examples / "obama.jpg", 200), "image/jpeg")},
    )
    assert small.status_code == 422
    assert "脸太小，请走近一些" in small.text and " px" not in small.text
    good = staff.post(
        "/people/new",
        data={"name": "奥巴马", "consent_by": "网格员王", "consent_method": "paper"},
        files={"photo": ("near.jpg", (examples / "obama.jpg").read_bytes(), "image/jpeg")},
    )
    assert good.status_code == 303, good.text
    person_url = good.headers["location"].split("?")[0]
    page = staff.get(good.headers["location"]).text
    assert "照片合格" in page
    photo_path = re.search(rf'<img src="({person_url}/photos/\d+)"', page)
    assert photo_path is not None
    photo = staff.get(photo_path[1])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content[:2] == b"\xff\xd8" and "no-store" in photo.headers["cache-control"]
    assert browsers["auditor"].get(photo_path[1]).status_code == 200
    # Each look at a face photo is on the record: who, whose, which photo.
    viewed = browsers["admin"].get("/api/v1/audit", params={"action": "photo.view"}).json()
    looks = {(e["actor"], e["target_id"]) for e in viewed["items"]}
    person_id = person_url.rsplit("/", 1)[1]
    assert {(f"user:{village.users['staff']}", person_id)} <= looks
    assert (f"user:{village.users['auditor']}", person_id) in looks
    # Not for landlords (face data is never theirs, whoever's tenant), not for anyone
    # logged out, not under another person's id.
    assert browsers["landlord_a"].get(photo_path[1]).status_code == 403
    anonymous = TestClient(api, follow_redirects=False)
    assert anonymous.get(photo_path[1]).status_code == 303
    other = photo_path[1].replace(person_url, f"/people/{village.tenant['a']}")
    assert staff.get(other).status_code == 404
    # Another photo of the same person; the person page counts the templates.
    more = staff.post(
        f"{person_url}/photos",
        files={"photo": ("again.jpg", (examples / "obama2.jpg").read_bytes(), "image/jpeg")},
    )
    assert more.status_code == 303
    page = staff.get(more.headers["location"]).text
    assert "已多保存一个人脸模板" in page and page.count(f'<img src="{person_url}/photos/') == 2
    wrong = staff.post(
        f"{person_url}/photos",
        files={"photo": ("biden.jpg", (examples / "biden.jpg").read_bytes(), "image/jpeg")},
    )
    assert wrong.status_code == 422


def _wait_page(browser: TestClient, url: str) -> str:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        page = str(browser.get(url).text)
        if "import-progress" not in page:
            return page
        # Without script the page reloads itself: the <noscript> refresh and a reload link.
        assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
        assert f'<a href="{url}">' in page
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish")


def test_roster_import_page_checks_first_then_imports(
    browsers: dict[str, TestClient], api: FastAPI
) -> None:
    examples = require_data("face_recognition_examples/examples")
    import zipfile

    staff = browsers["staff"]
    address = "幸福路a号"
    roster = (
        HEADER
        + f"郑一,,外来租住,{address},101,2026-01-05,lin.png,网格员王,2026-01-05\n"
        + f"郑二,,外来租住,{address},101,2026-01-05,missing.jpg,网格员王,2026-01-05\n"
    ).encode("utf-8")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("lin.png", (examples / "lin-manuel-miranda.png").read_bytes())
    started = staff.post(
        "/imports",
        files={
            "roster": ("roster.csv", roster, "text/csv"),
            "photos": ("photos.zip", archive.getvalue(), "application/zip"),
        },
    )
    assert started.status_code == 303, started.text
    job_url = started.headers["location"]
    report = _wait_page(staff, job_url)
    assert "名册检查" in report and "检查完毕：尚未保存任何数据。" in report
    # The row report: row number, column, reason (in the words staff act on, then as
    # the checker said it).
    assert re.search(
        r'<td class="num">3</td><td>[^<]+</td><td><strong>找不到这张照片，请核对照片文件名</strong>'
        r"<br>[^<]*missing\.jpg",
        report,
    ), report
    assert "0 人" in staff.get("/people", params={"name": "郑一"}).text
    # Someone else cannot start the real import of this check.
    assert browsers["admin"].post(f"{job_url}/run").status_code == 404
    assert f"{job_url}/run" in _posts(report)
    real = staff.post(f"{job_url}/run")
    assert real.status_code == 303 and real.headers["location"] != job_url
    done = _wait_page(staff, real.headers["location"])
    assert "导入完成。" in done and "已导入的行" in done, done
    assert "郑一" in staff.get("/people", params={"name": "郑一"}).text.split("</form>")[-1]
    # The kept upload was used once: the check offers no second import.
    assert staff.post(f"{job_url}/run").status_code == 404
    assert "请重新上传后导入" in staff.get(job_url).text
    # The progress page's script is a file of this site (the CSP allows no inline script).
    assert TestClient(api).get("/static/import.js").status_code == 200


def test_a_roster_that_cannot_be_read_is_reported(browsers: dict[str, TestClient]) -> None:
    staff = browsers["staff"]
    binary = staff.post("/imports", files={"roster": ("r.csv", b"\x00\x01\x02binary")})
    assert binary.status_code == 422 and "r.csv" in binary.text
    empty = staff.post("/imports", files={"roster": ("r.csv", b"")})
    assert empty.status_code == 422


def test_registry_pages_are_offline_and_every_field_has_a_label(
    browsers: dict[str, TestClient], village: Village, api: FastAPI
) -> None:
    from tests.web.test_offline import _assert_local

    admin = browsers["admin"]
    paths = [
        "/registry",
        "/houses",
        f"/houses/{village.house['a']}",
        "/rooms?vacant=1",
        "/people?name=租客",
        f"/people/{village.tenant['a']}?house={village.house['a']}",
        f"/people/new?house={village.house['a']}",
        f"/people/{village.tenant['a']}/remove",
        "/imports",
    ]
    for path in paths:
        page = admin.get(path)
        assert page.status_code == 200, path
        _assert_local(page.text, path)
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None, path
        labelled = set(re.findall(r'<label for="([^"]+)"', page.text))
        for tag, attributes in re.findall(r"<(input|select|textarea)\b([^>]*)>", page.text):
            if re.search(r'type="(?:hidden|submit)"', attributes):
                continue
            field = re.search(r'\bid="([^"]+)"', attributes)
            assert field is not None and field.group(1) in labelled, (path, tag, attributes)
    script = TestClient(api).get("/static/import.js")
    assert script.status_code == 200
    _assert_local(script.text, "/static/import.js")


def test_the_case_page_explains_an_unusable_fresh_photo_in_plain_words(
    browsers: dict[str, TestClient], village: Village, core: CunanApp
) -> None:
    from tests.web.test_pages import _new_case

    case_id = _new_case(core, 7001)
    answer = browsers["staff"].post(
        f"/cases/{case_id}/enrol",
        data={"name": "冯五", "room_id": str(village.room["a"]), "consent_by": "网格员王"},
        files={"photo": ("fresh.jpg", b"not a photo at all", "image/jpeg")},
    )
    assert answer.status_code == 422
    assert "这不是照片文件，请选 JPG 或 PNG 照片" in answer.text
    assert core.cases.get(case_id).status == "open"
