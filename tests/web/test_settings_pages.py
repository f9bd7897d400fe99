"""The settings pages over the real application, on both engines: plain form posts (no
JavaScript), administrators only, every change audited, a token's secret shown once, and
notification channels added on the page reaching a real local robot service."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from cunan.app import CunanApp
from cunan.app_services import AuditEntryView, page
from cunan.authz import local_principal
from cunan.notify.message import Notification
from cunan.registry.records import NewPerson
from cunan.settings_overrides import apply_stored, current_value
from cunan.storage.enums import PersonCategory
from cunan.storage.notify_tables import NotifyChannel
from cunan.web.settings_pages import SECTIONS
from tests.api.conftest import ORIGIN, PASSWORD, Village
from tests.notify.conftest import spare_port
from tests.notify.robots import DING_SECRET, DING_TOKEN, WECOM_KEY, RobotService


def _browser(api: FastAPI) -> TestClient:
    return TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)


def _login(api: FastAPI, username: str, password: str = PASSWORD) -> TestClient:
    browser = _browser(api)
    answer = browser.post("/login", data={"username": username, "password": password})
    assert answer.status_code == 303, answer.text
    return browser


def _audit(core: CunanApp, action: str) -> list[AuditEntryView]:
    svc = core.services_for(local_principal("tests"))
    return svc.list_audit(page(0, 200), action=action).items


def _form(core: CunanApp, section: str, **changes: object) -> dict[str, str]:
    """What a browser posts for a values page: every field as shown, with ``changes``."""
    data: dict[str, str] = {}
    for key in SECTIONS[section]:
        name = key.rsplit(".", 1)[1]
        value = changes.get(name, current_value(core.settings, key))
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        else:
            data[key] = "" if value is None else str(value)
    return data


@pytest.fixture
def robots(core: CunanApp) -> Iterator[RobotService]:
    """A local robot service for one test; channels the test added go with it (a channel
    left pointing at a stopped robot would make a later test's alerts wait out retries)."""
    channels = core.services_for(local_principal("tests")).notification_channels()
    before = {c.id for c in channels.list()}
    service = RobotService(port=spare_port())
    service.start()
    try:
        yield service
    finally:
        service.stop()
        for channel in channels.list():
            if channel.id not in before:
                channels.remove(channel.id)


def test_only_administrators_see_and_open_the_settings(api: FastAPI) -> None:
    admin = _login(api, "admin")
    home = admin.get("/")
    assert 'href="/settings"' in home.text and "设置" in home.text
    for path in ("/settings", "/settings/users", "/settings/tokens", "/settings/notifications"):
        assert admin.get(path).status_code == 200, path
    assert admin.get("/settings/values/recognition").status_code == 200
    for name in ("staff", "auditor", "landlord_a"):
        browser = _login(api, name)
        start = browser.get("/account")
        assert 'href="/settings"' not in start.text
        for path in (
            "/settings",
            "/settings/values/deadlines",
            "/settings/users",
            "/settings/tokens",
            "/settings/notifications",
        ):
            assert browser.get(path).status_code == 403, (name, path)
        refused = browser.post("/settings/tokens", data={"name": "x", "role": "admin"})
        assert refused.status_code == 403
    anonymous = _browser(api).get("/settings/users")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_thresholds_deadlines_and_retention_are_saved_and_audited(
    api: FastAPI, core: CunanApp
) -> None:
    admin = _login(api, "admin")
    page_ = admin.get("/settings/values/recognition")
    assert 'name="matching.adaptive_target"' in page_.text and "识别门槛" in page_.text
    before = len(_audit(core, "settings.change"))
    saved = admin.post(
        "/settings/values/recognition",
        data=_form(core, "recognition", adaptive=False, adaptive_target=0.02),
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/settings/values/recognition?saved=1")
    assert core.settings.matching.adaptive is False
    assert core.settings.matching.adaptive_target == 0.02
    entries = _audit(core, "settings.change")
    assert len(entries) == before + 1 and entries[0].actor == "user:1"
    assert "matching.adaptive_target" in str(entries[0].details)
    # Only what changed is stored: the untouched thresholds are not in the entry.
    assert "matching.min_score" not in str(entries[0].details)

    deadlines = admin.post(
        "/settings/values/deadlines", data=_form(core, "deadlines", departure_deadline_days=5)
    )
    assert deadlines.status_code == 303 and "later=1" in deadlines.headers["location"]
    assert core.settings.duties.departure_deadline_days == 5
    assert "已保存" in admin.get(deadlines.headers["location"]).text

    wrong = admin.post(
        "/settings/values/recognition", data=_form(core, "recognition", adaptive_target=0.9)
    )
    assert wrong.status_code == 422 and "matching.adaptive_target" in wrong.text
    assert 'value="0.9"' in wrong.text  # what was typed stays in the form
    assert core.settings.matching.adaptive_target == 0.02
    assert len(_audit(core, "settings.change")) == before + 2

    # The calibration panel: `cunan calibrate`'s figures in words (no face enrolled here).
    words = admin.get("/settings/values/recognition?calibrate=1")
    assert words.status_code == 200 and "cunan calibrate" in words.text
    assert "人数太少" in words.text and "matching.adaptive_target" in words.text

    unchanged = admin.post("/settings/values/retention", data=_form(core, "retention"))
    assert unchanged.headers["location"].endswith("saved=none")
    assert len(_audit(core, "settings.change")) == before + 2


def test_the_sighting_quality_gate_is_explained_saved_audited_and_kept(
    api: FastAPI, core: CunanApp
) -> None:
    admin = _login(api, "admin")
    shown = admin.get("/settings/values/recognition")
    assert 'name="faces.sighting_quality.min_face_px"' in shown.text
    # Plain words, in Chinese first: what a poor face is and what the limit does.
    assert "摄像头" in shown.text and "眼睛" in shown.text
    before = len(_audit(core, "settings.change"))
    saved = admin.post(
        "/settings/values/recognition",
        data=_form(core, "recognition", min_face_px=64, min_sharpness=120.5),
    )
    assert saved.status_code == 303 and "later=1" in saved.headers["location"]
    quality = core.settings.faces.sighting_quality
    assert (quality.min_face_px, quality.min_sharpness) == (64, 120.5)
    entries = _audit(core, "settings.change")
    assert len(entries) == before + 1
    assert "faces.sighting_quality.min_face_px" in str(entries[0].details)
    assert "faces.sighting_quality.min_contrast" not in str(entries[0].details)
    # Kept in the database: a restart (the file's settings, then the stored changes) has them.
    again = apply_stored(
        core.settings.model_copy(update={"faces": type(core.settings.faces)()}),
        core.registry.database,
    )
    assert again.faces.sighting_quality.min_face_px == 64
    assert again.faces.sighting_quality.min_interocular_px == quality.min_interocular_px

    # A range that would refuse every face is refused, naming the setting.
    wrong = admin.post(
        "/settings/values/recognition",
        data=_form(core, "recognition", min_brightness=200, max_brightness=100),
    )
    assert wrong.status_code == 422 and "min_brightness" in wrong.text
    assert core.settings.faces.sighting_quality.max_brightness == quality.max_brightness


def test_accounts_created_linked_disabled_and_given_a_new_password(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    admin = _login(api, "admin")
    landlord = core.registry.service.add_landlord(
        core.registry.service.default_village_id(), "房东丙"
    )
    form = admin.get("/settings/users")
    assert "房东丙" in form.text and "房东a" in form.text  # a's record has an account already
    made = admin.post(
        "/settings/users",
        data={
            "username": "landlord_c",
            "password": PASSWORD,
            "role": "landlord",
            "landlord_id": str(landlord),
            "display_name": "丙",
        },
    )
    assert made.status_code == 303, made.text
    user = next(
        u
        for u in api.state.auth.list_users(local_principal("t"), limit=200)[0]
        if u.username == "landlord_c"
    )
    assert user.landlord_id == landlord
    [created] = [e for e in _audit(core, "user.create") if e.target_id == str(user.id)]
    assert created.actor == "user:1" and "landlord" in str(created.details)
    # The new landlord sees their own portal, not the settings.
    assert _login(api, "landlord_c").get("/settings").status_code == 403

    unlinked = admin.post(
        "/settings/users",
        data={"username": "landlord_d", "password": PASSWORD, "role": "landlord"},
    )
    assert unlinked.status_code == 422 and "landlord_id" in unlinked.text
    weak = admin.post(
        "/settings/users", data={"username": "staff_2", "password": "short", "role": "staff"}
    )
    assert weak.status_code == 422
    assert 'value="staff_2"' in weak.text  # the form keeps what was typed (not the password)

    assert admin.post(f"/settings/users/{user.id}/disable").status_code == 303
    refused = _browser(api).post("/login", data={"username": "landlord_c", "password": PASSWORD})
    assert refused.status_code == 401
    assert admin.post(f"/settings/users/{user.id}/enable").status_code == 303
    new = "Another-good-passw0rd"
    reset = admin.post(f"/settings/users/{user.id}/password", data={"new_password": new})
    assert reset.status_code == 303
    _login(api, "landlord_c", new)
    actions = {e.action for e in _audit(core, "") if e.target_id == str(user.id)}
    assert {"user.create", "user.disable", "user.enable", "user.password_reset"} <= actions


def test_an_api_token_is_shown_once_works_and_is_revoked(api: FastAPI, core: CunanApp) -> None:
    admin = _login(api, "admin")
    created = admin.post("/settings/tokens", data={"name": "县平台对接", "role": "auditor"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    [secret] = re.findall(r'value="(cunan_[^"]+)"', created.text)
    assert "只显示这一次" in created.text
    listing = admin.get("/settings/tokens")
    assert "县平台对接" in listing.text and secret not in listing.text

    integration = TestClient(api, headers={"authorization": f"Bearer {secret}"})
    me = integration.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["role"] == "auditor"
    [token] = [
        t for t in api.state.auth.list_tokens(local_principal("t")) if t.name == "县平台对接"
    ]
    assert admin.post(f"/settings/tokens/{token.id}/revoke").status_code == 303
    assert integration.get("/api/v1/auth/me").status_code == 401
    assert [e.target_id for e in _audit(core, "token.create")].count(str(token.id)) == 1
    assert [e.target_id for e in _audit(core, "token.revoke")] == [str(token.id)]
    landlord_token = admin.post("/settings/tokens", data={"name": "x", "role": "landlord"})
    assert landlord_token.status_code == 422 and "cunan_" not in landlord_token.text


def test_a_wecom_robot_added_on_the_page_gets_alerts_at_once(
    api: FastAPI, core: CunanApp, robots: RobotService
) -> None:
    admin = _login(api, "admin")
    form = admin.get("/settings/notifications?kind=wecom")
    assert 'name="key"' in form.text and "企业微信群机器人" in form.text
    wecom = {
        "kind": "wecom",
        "name": "村委会群",
        "key": WECOM_KEY,
        "msgtype": "text",
        "mobiles": "13800001111，13800002222",
        "base_url": robots.base,
    }
    # The robot service runs on the server itself: refused until the administrator allows it.
    local = admin.post("/settings/notifications", data=wecom)
    assert local.status_code == 422 and "机器人服务地址（base_url）不允许" in local.text
    assert "本机地址" in local.text and WECOM_KEY not in local.text
    assert robots.accepted == []
    added = admin.post("/settings/notifications", data={**wecom, "allow_local_address": "on"})
    assert added.status_code == 303, added.text
    listing = admin.get("/settings/notifications")
    assert "村委会群" in listing.text and WECOM_KEY not in listing.text
    assert "127.0.0.1" in listing.text  # the address as host only

    # The key is stored encrypted, and the audit entry names the channel only.
    with core.registry.database.read() as session:
        row = session.scalars(select(NotifyChannel).where(NotifyChannel.name == "村委会群")).one()
        assert WECOM_KEY.encode() not in row.config_ciphertext
        channel_id = row.id
    [entry] = [e for e in _audit(core, "notify.channel_add") if e.target_id == str(channel_id)]
    assert WECOM_KEY not in str(entry.details) and "村委会群" in str(entry.details)

    tested = admin.post("/settings/notifications-test", data={"name": "村委会群"})
    assert tested.status_code == 200 and "测试消息" in tested.text and "已被接收" in tested.text
    assert robots.accepted[-1]["text"]["content"].startswith("村安测试消息")
    assert robots.accepted[-1]["text"]["mentioned_mobile_list"] == ["13800001111", "13800002222"]

    # Live: the running dispatcher sends the next alert there, without a restart.
    assert core.dispatcher is not None
    report = core.dispatcher.dispatch(
        Notification(kind="case.opened", title="t", body="b", data={"case_id": 5})
    )
    assert "村委会群" in report.delivered
    assert "案件编号：5" in robots.accepted[-1]["text"]["content"]

    # Editing with the key left empty keeps it; the form never shows it.
    edit = admin.get(f"/settings/notifications/{channel_id}")
    assert edit.status_code == 200 and WECOM_KEY not in edit.text and "13800001111" in edit.text
    changed = admin.post(
        f"/settings/notifications/{channel_id}",
        data={
            "name": "村委会群",
            "key": "",
            "msgtype": "markdown",
            "mobiles": "",
            "base_url": robots.base,
            "allow_local_address": "on",
        },
    )
    assert changed.status_code == 303, changed.text
    admin.post("/settings/notifications-test", data={"name": "村委会群"})
    assert robots.accepted[-1]["msgtype"] == "markdown"

    removed = admin.post(f"/settings/notifications/{channel_id}/remove")
    assert removed.status_code == 303
    assert "村委会群" not in core.dispatcher.channels
    actions = [e.action for e in _audit(core, "") if e.target_id == str(channel_id)]
    assert {"notify.channel_add", "notify.channel_change", "notify.channel_remove"} <= set(actions)
    assert any("村委会群" in e.details for e in _audit(core, "notify.test"))


def test_a_dingtalk_robot_with_a_wrong_secret_says_so_on_the_test(
    api: FastAPI, core: CunanApp, robots: RobotService
) -> None:
    admin = _login(api, "admin")
    base = {
        "kind": "dingtalk",
        "access_token": DING_TOKEN,
        "base_url": robots.base,
        "allow_local_address": "on",
    }
    assert (
        admin.post(
            "/settings/notifications", data={**base, "name": "治安群", "secret": "SECwrong"}
        ).status_code
        == 303
    )
    tested = admin.post("/settings/notifications-test", data={"name": "治安群"})
    assert "未送达" in tested.text and "310000" in tested.text
    assert DING_TOKEN not in tested.text and "SECwrong" not in tested.text
    # A second channel with the same name is refused on the form.
    twice = admin.post(
        "/settings/notifications", data={**base, "name": "治安群", "secret": DING_SECRET}
    )
    assert twice.status_code == 422 and "治安群" in twice.text
    assert DING_TOKEN not in twice.text  # secrets are not put back into the form
    channel_id = next(
        c.id
        for c in core.services_for(local_principal("t")).notification_channels().list()
        if c.name == "治安群"
    )
    fixed = admin.post(
        f"/settings/notifications/{channel_id}",
        data={**base, "name": "治安群", "access_token": "", "secret": DING_SECRET},
    )
    assert fixed.status_code == 303
    ok = admin.post("/settings/notifications-test", data={"name": "治安群"})
    assert "已被接收" in ok.text and robots.accepted[-1]["msgtype"] == "markdown"
    # Switched off signing: the stored secret goes, and the robot (which wants a signature)
    # refuses the unsigned message.
    assert "c-unsigned" in admin.get(f"/settings/notifications/{channel_id}").text
    unsigned = admin.post(
        f"/settings/notifications/{channel_id}",
        data={**base, "name": "治安群", "access_token": "", "unsigned": "on"},
    )
    assert unsigned.status_code == 303
    [view] = [
        c
        for c in core.services_for(local_principal("t")).notification_channels().list()
        if c.name == "治安群"
    ]
    assert view.signed is False
    refused = admin.post("/settings/notifications-test", data={"name": "治安群"})
    assert "310000" in refused.text
    # A staff member cannot add one (the service refuses, not only the page).
    staff = _login(api, "staff")
    assert staff.post("/settings/notifications", data={**base, "name": "x"}).status_code == 403


def test_overdue_departures_reach_a_group_robot_without_names(
    core: CunanApp, village: Village, robots: RobotService
) -> None:
    channels = core.services_for(local_principal("tests")).notification_channels()
    channel_id = channels.add(
        "wecom",
        {
            "name": "退租提醒群",
            "key": WECOM_KEY,
            "base_url": robots.base,
            "allow_local_address": True,
        },
    )
    service = core.registry.service
    village_id = service.default_village_id()
    room = service.add_room(service.add_house(village_id, "幸福路9号"), "201", capacity=1)
    person = service.add_person(
        NewPerson(
            name="租客逾期",
            village_id=village_id,
            category=PersonCategory.TENANT,
            non_face_note="checked by ID card",
        )
    )
    today = date.today()
    service.add_tenancy(
        person,
        room,
        move_in=today - timedelta(days=200),
        expected_end=today - timedelta(days=60),
        reported_by="tests",
    )
    try:
        assert core.alert_overdue_departures() >= 1
    finally:
        channels.remove(channel_id)
    content = robots.accepted[-1]["markdown"]["content"]
    assert content.startswith("### 村安提醒：有租户逾期未报退租")
    assert "类型：逾期未报退租" in content and "最长逾期天数：" in content
    assert "租客逾期" not in content
