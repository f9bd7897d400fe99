from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cunan.notify import EmailNotifier, Notification, NotificationError
from tests.notify.conftest import spare_port


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = spare_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_mail_has_utf8_subject_headers_and_body(sink: tuple[Sink, int]) -> None:
    handler, port = sink
    notifier = EmailNotifier(
        "127.0.0.1",
        port=port,
        security="none",
        sender="cunan@village.example",
        recipients=["staff@village.example", "office@village.example"],
        timeout_s=10,
    )
    notification = Notification(
        kind="case.opened",
        title="陌生人多次出现：3号摄像头",
        body="请核对。Case 17 was seen 4 times.",
        data={"case_id": 17, "embedding": [0.5, 0.5]},
    )
    notifier.send(notification)
    deadline = time.monotonic() + 10
    while not handler.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    [(mail_from, rcpt, raw)] = handler.messages
    assert mail_from == "cunan@village.example"
    assert rcpt == ["staff@village.example", "office@village.example"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "[村安] 陌生人多次出现：3号摄像头"
    assert message["X-CunAn-Event"] == "case.opened"
    assert message["X-CunAn-Delivery"] == notification.id
    assert message["Message-ID"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "请核对。Case 17 was seen 4 times." in text
    assert '"case_id": 17' in text
    assert "embedding" not in text  # face data stripped by default


def test_unreachable_server_is_a_retryable_error() -> None:
    notifier = EmailNotifier(
        "127.0.0.1", port=spare_port(), sender="a@b.c", recipients=["d@e.f"], timeout_s=2
    )
    with pytest.raises(NotificationError, match="unreachable") as caught:
        notifier.send(Notification(kind="k", title="t", body="b"))
    assert caught.value.retryable
