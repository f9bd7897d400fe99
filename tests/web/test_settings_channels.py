"""MQTT and e-mail channels on the settings page (a real Mosquitto, a real SMTP server the test
starts), and the address rule every page channel goes through (no local address unless the
administrator ticked it), on both engines."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from cunan.app import CunanApp
from cunan.app_services import AuditEntryView, page
from cunan.authz import local_principal
from cunan.notify.address import ChannelAddressRefusedError, check_channel
from cunan.notify.channels import PageWebhook, parse
from cunan.storage.notify_tables import NotifyChannel
from tests.api.conftest import ORIGIN, PASSWORD
from tests.notify.conftest import spare_port
from tests.notify.test_mqtt import broker, subscriber

__all__ = ["broker", "subscriber"]

SMTP_USER = "cunan"
SMTP_PASSWORD = "mail-pass-7Qx"
MQTT_PASSWORD = "broker-pass-9f3"


def _login(api: FastAPI, username: str) -> TestClient:
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def _audit(core: CunanApp, action: str) -> list[AuditEntryView]:
    return core.services_for(local_principal("tests")).list_audit(page(0, 200), action=action).items


def _channel_id(core: CunanApp, name: str) -> int:
    with core.registry.database.read() as session:
        row = session.scalars(select(NotifyChannel).where(NotifyChannel.name == name)).one()
        assert MQTT_PASSWORD.encode() not in row.config_ciphertext
        assert SMTP_PASSWORD.encode() not in row.config_ciphertext
        return row.id


class Mailbox:
    """An SMTP server that wants a login (so the stored password is really used)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.arrived.set()
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        self.logins.append("ok" if ok else "refused")
        # handled=False: aiosmtpd answers 535 itself (handled=True would leave it silent).
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = spare_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def test_an_mqtt_broker_added_on_the_page_gets_the_test_message(
    api: FastAPI,
    core: CunanApp,
    subscriber: tuple[str, list[Any], threading.Event],
) -> None:
    topic, received, got = subscriber
    admin = _login(api, "admin")
    form = admin.get("/settings/notifications?kind=mqtt")
    assert 'name="topic"' in form.text and 'name="password"' in form.text
    assert "允许本机或内网地址" in form.text
    fields = {
        "kind": "mqtt",
        "name": "村务MQTT",
        "host": "127.0.0.1",
        "port": "1883",
        "topic": topic,
        "qos": "1",
        "username": "cunan",
        "password": MQTT_PASSWORD,
    }
    # The broker is on the server itself: refused, naming the field, until allowed.
    refused = admin.post("/settings/notifications", data=fields)
    assert refused.status_code == 422
    assert "服务器地址（host）不允许" in refused.text and MQTT_PASSWORD not in refused.text
    added = admin.post("/settings/notifications", data={**fields, "allow_local_address": "on"})
    assert added.status_code == 303, added.text
    listing = admin.get("/settings/notifications").text
    assert "127.0.0.1:1883" in listing and topic in listing and MQTT_PASSWORD not in listing
    channel_id = _channel_id(core, "村务MQTT")

    tested = admin.post("/settings/notifications-test", data={"name": "村务MQTT"})
    assert tested.status_code == 200 and "已被接收" in tested.text
    assert got.wait(10), "the test message did not reach the broker's subscriber"
    assert received[-1][1]["title"] == "村安测试消息"

    # An edit leaving the password empty keeps it; the form never shows it.
    edit = admin.get(f"/settings/notifications/{channel_id}")
    assert MQTT_PASSWORD not in edit.text and f'value="{topic}"' in edit.text
    changed = admin.post(
        f"/settings/notifications/{channel_id}",
        data={**fields, "password": "", "qos": "0", "allow_local_address": "on"},
    )
    assert changed.status_code == 303, changed.text
    stored = core.services_for(local_principal("t")).notification_channels().store.get(channel_id)
    assert getattr(stored, "qos", None) == 0
    password = getattr(stored, "password", None)
    assert password is not None and password.get_secret_value() == MQTT_PASSWORD
    # Untick "allow": the edit is refused and the stored channel stays as it was.
    unticked = admin.post(f"/settings/notifications/{channel_id}", data=fields)
    assert unticked.status_code == 422 and "不允许" in unticked.text
    assert "村务MQTT" in (core.dispatcher.channels if core.dispatcher else {})

    removed = admin.post(f"/settings/notifications/{channel_id}/remove")
    assert removed.status_code == 303
    actions = {e.action for e in _audit(core, "notify") if e.target_id == str(channel_id)}
    assert {"notify.channel_add", "notify.channel_change", "notify.channel_remove"} <= actions


def test_an_email_server_added_on_the_page_sends_with_the_stored_password(
    api: FastAPI, core: CunanApp, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    admin = _login(api, "admin")
    form = admin.get("/settings/notifications?kind=email")
    assert 'name="recipients"' in form.text and 'name="security"' in form.text
    fields = {
        "kind": "email",
        "name": "村委邮箱",
        "host": "127.0.0.1",
        "port": str(port),
        "security": "none",
        "sender": "cunan@village.example",
        "recipients": "office@village.example, chief@village.example",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "allow_local_address": "on",
    }
    added = admin.post("/settings/notifications", data=fields)
    assert added.status_code == 303, added.text
    listing = admin.get("/settings/notifications").text
    # Recipients are counted, not listed (addresses are personal data).
    assert "2 位收件人" in listing and "chief@village.example" not in listing
    channel_id = _channel_id(core, "村委邮箱")

    tested = admin.post("/settings/notifications-test", data={"name": "村委邮箱"})
    assert "已被接收" in tested.text, tested.text
    assert box.arrived.wait(10) and box.logins == ["ok"]
    [(sender, recipients, raw)] = box.messages
    assert sender == "cunan@village.example"
    assert recipients == ["office@village.example", "chief@village.example"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "[村安] 村安测试消息"

    # A password SMTP login cannot carry (smtplib sends AUTH as ASCII) is a plain answer too.
    chinese = admin.post(
        f"/settings/notifications/{channel_id}", data={**fields, "password": "村安密码"}
    )
    assert chinese.status_code == 303
    answer = admin.post("/settings/notifications-test", data={"name": "村委邮箱"})
    assert answer.status_code == 200 and "non-ASCII" in answer.text
    # A wrong password is the test's answer in words, audited as not delivered.
    wrong = admin.post(
        f"/settings/notifications/{channel_id}", data={**fields, "password": "not-it"}
    )
    assert wrong.status_code == 303
    failed = admin.post("/settings/notifications-test", data={"name": "村委邮箱"})
    assert "未送达" in failed.text and "refused the login" in failed.text
    assert "not-it" not in failed.text
    last = _audit(core, "notify.test")[0]
    assert "村委邮箱" in last.details and '"delivered":false' in last.details

    # No password any more: the stored one goes (this server then refuses the mail).
    cleared = admin.post(
        f"/settings/notifications/{channel_id}",
        data={**fields, "password": "", "username": "", "no_password": "on"},
    )
    assert cleared.status_code == 303
    stored = core.services_for(local_principal("t")).notification_channels().store.get(channel_id)
    assert getattr(stored, "password", "x") is None and getattr(stored, "username", "x") is None
    # A form without a recipient is refused, naming the field.
    empty = admin.post(
        "/settings/notifications", data={**fields, "name": "空邮箱", "recipients": " "}
    )
    assert empty.status_code == 422 and "recipients" in empty.text
    admin.post(f"/settings/notifications/{channel_id}/remove")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "链路本地地址"),
        ("http://127.0.0.1:8080/hook", "本机地址"),
        ("http://10.0.0.5/hook", "内网地址"),
        ("http://192.168.1.20:9000/hook", "内网地址"),
        ("http://[::ffff:127.0.0.1]/hook", "本机地址"),
        ("http://[fd00::1]/hook", "内网地址"),
        ("http://localhost/hook", "本机地址"),
    ],
)
def test_webhook_addresses_go_through_the_address_rule(url: str, why: str) -> None:
    channel = parse("webhook", {"name": "接收端", "url": url, "secret": "s"})
    with pytest.raises(ChannelAddressRefusedError, match=why) as caught:
        check_channel("接收端", channel, allow_local=False)
    assert "接收地址（url）" in str(caught.value) and "接收端" in str(caught.value)
    # Ticked by the administrator: allowed.
    check_channel("接收端", channel, allow_local=True)


def test_public_addresses_and_the_shipped_robot_services_pass() -> None:
    public = parse("webhook", {"name": "p", "url": "https://93.184.215.14/h", "secret": "s"})
    check_channel("p", public, allow_local=False)
    # The shipped WeCom address needs no look-up (the office PC may have no internet).
    wecom = parse("wecom", {"name": "w", "key": "k"})

    def no_lookup(host: str, port: int | None) -> list[str]:
        raise AssertionError(f"looked up {host}")

    check_channel("w", wecom, allow_local=False, resolve=no_lookup)
    unresolvable = parse(
        "webhook", {"name": "u", "url": "http://no-such-host.invalid/h", "secret": "s"}
    )
    with pytest.raises(ChannelAddressRefusedError, match="无法解析"):
        check_channel("u", unresolvable, allow_local=False)


def test_a_channel_whose_name_now_points_inside_is_refused_at_the_test(
    api: FastAPI, core: CunanApp
) -> None:
    """Stored with leave to use a local address, then the leave is gone (an older row):
    the test message is not sent, and the answer says why."""
    channels = core.services_for(local_principal("tests")).notification_channels()
    channel = PageWebhook.model_validate(
        {"name": "旧接收端", "url": "http://127.0.0.1:9/h", "secret": "s"}
    )
    channel_id = channels.store.add(channel, reserved=set(), audit=core.audit, actor="user:1")
    try:
        problem = channels.test("旧接收端")
        assert problem is not None and "本机地址" in problem
    finally:
        channels.remove(channel_id)
    assert '"delivered":false' in _audit(core, "notify.test")[0].details


def test_staff_cannot_reach_the_channel_forms(api: FastAPI) -> None:
    staff = _login(api, "staff")
    data = {"kind": "mqtt", "name": "x", "host": "8.8.8.8", "topic": "t"}
    assert staff.post("/settings/notifications", data=data).status_code == 403
