"""WeCom and DingTalk group robots against a real local HTTP server that checks key, token,
signature and message format as the services do."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from cunan.audit import AuditLog
from cunan.notify import (
    DeadLetterStore,
    Notification,
    NotificationDispatcher,
    NotificationError,
    RetryingNotifier,
    RetryPolicy,
)
from cunan.notify.channels import ChannelStore, parse
from cunan.notify.cli import notify_app
from cunan.notify.robots import DingTalkNotifier, WeComNotifier, dingtalk_sign, robot_markdown
from cunan.notify.settings import NotifySettings, build_notifiers
from cunan.registry.datadir import Registry
from tests.cli_helpers import registry
from tests.notify.robots import (
    DING_SECRET,
    DING_TOKEN,
    WECOM_KEY,
    RobotService,
    expected_sign,
    robots,
)

__all__ = ["registry", "robots"]

FAST = RetryPolicy(attempts=3, initial_s=0.01, max_s=0.05, jitter=0.0)
VILLAGE = ZoneInfo("Asia/Shanghai")


def _case_opened() -> Notification:
    return Notification(
        kind="case.opened",
        title="Case 17: new unknown-person case",
        body="Case 17: unknown person at camera east-gate (1 sighting(s)). Please verify.",
        data={"case_id": 17, "camera": "东门", "sightings": 3, "best_crops": ["/9j/4AAQ"]},
        created_at=datetime(2025, 6, 1, 8, 0, tzinfo=UTC),
    )


def test_wecom_markdown_is_chinese_in_village_time_without_face_data(
    robots: RobotService,
) -> None:
    WeComNotifier(WECOM_KEY, base_url=robots.base, zone=VILLAGE).send(_case_opened())
    [message] = robots.accepted
    assert message["msgtype"] == "markdown"
    content = message["markdown"]["content"]
    assert content.startswith("### 村安提醒：发现未登记人员")
    assert "案件编号：17" in content and "摄像头：东门" in content and "出现次数：3" in content
    # 08:00 UTC is 16:00 in the village.
    assert "2025-06-01 16:00" in content
    assert "/9j/" not in json.dumps(message) and "Please verify" not in content


def test_wecom_text_mentions_by_mobile(robots: RobotService) -> None:
    WeComNotifier(
        WECOM_KEY, base_url=robots.base, msgtype="text", mentioned_mobiles=["13800001111", "@all"]
    ).send(_case_opened())
    [message] = robots.accepted
    assert message["text"]["mentioned_mobile_list"] == ["13800001111", "@all"]
    assert message["text"]["content"].startswith("村安提醒：发现未登记人员")


def test_wecom_rate_limit_is_retried_and_a_wrong_key_is_not(
    robots: RobotService, caplog: pytest.LogCaptureFixture
) -> None:
    robots.codes = [45009]
    waits: list[float] = []
    RetryingNotifier(
        WeComNotifier(WECOM_KEY, base_url=robots.base),
        FAST,
        channel="wecom",
        sleep=waits.append,
    ).send(_case_opened())
    assert robots.requests == 2 and len(robots.accepted) == 1 and waits == [0.01]

    caplog.set_level(logging.DEBUG)
    wrong = RetryingNotifier(
        WeComNotifier("wrong-key-0001", base_url=robots.base),
        FAST,
        channel="wecom",
        sleep=waits.append,
    )
    with pytest.raises(NotificationError, match="errcode 93000") as caught:
        wrong.send(_case_opened())
    assert caught.value.attempts == 1 and not caught.value.retryable
    assert "wrong-key-0001" not in str(caught.value)
    assert "wrong-key-0001" not in caplog.text and WECOM_KEY not in caplog.text


def test_dingtalk_signed_markdown_with_mentions(robots: RobotService) -> None:
    DingTalkNotifier(
        DING_TOKEN,
        secret=DING_SECRET,
        base_url=robots.base,
        at_mobiles=["13900002222"],
        zone=VILLAGE,
    ).send(_case_opened())
    [message] = robots.accepted
    assert message["msgtype"] == "markdown"
    assert message["markdown"]["title"] == "村安提醒：发现未登记人员，请尽快核实"
    assert "@13900002222" in message["markdown"]["text"]
    assert message["at"] == {"atMobiles": ["13900002222"], "isAtAll": False}
    # The server checked the signature over the millisecond timestamp of the request.
    [query] = robots.queries
    assert len(query["timestamp"][0]) == 13


def test_dingtalk_signature_is_url_encoded_base64() -> None:
    # A timestamp whose signature has '+' or '/' in base64: both must arrive encoded.
    for stamp in range(1700000000000, 1700000000200):
        raw = expected_sign(DING_SECRET, str(stamp))
        if "+" in raw or "/" in raw:
            break
    signed = dingtalk_sign(DING_SECRET, stamp)
    assert "+" not in signed and "/" not in signed and "%" in signed


def test_dingtalk_wrong_secret_and_rate_limit(
    robots: RobotService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = DingTalkNotifier(DING_TOKEN, secret="SECwrong", base_url=robots.base, msgtype="text")
    with pytest.raises(NotificationError, match="errcode 310000") as caught:
        wrong.send(_case_opened())
    assert not caught.value.retryable
    assert DING_TOKEN not in str(caught.value) and "SECwrong" not in str(caught.value)
    # Unsigned, to a robot that requires signing: refused the same way.
    with pytest.raises(NotificationError, match="310000"):
        DingTalkNotifier(DING_TOKEN, base_url=robots.base).send(_case_opened())

    robots.codes = [130101, 130101]
    waits: list[float] = []
    RetryingNotifier(
        DingTalkNotifier(DING_TOKEN, secret=DING_SECRET, base_url=robots.base, msgtype="text"),
        FAST,
        channel="dingtalk",
        sleep=waits.append,
    ).send(_case_opened())
    assert waits == [0.01, 0.02] and len(robots.accepted) == 1
    assert robots.accepted[0]["text"]["content"].startswith("村安提醒")
    assert DING_TOKEN not in caplog.text and DING_SECRET not in caplog.text


def test_robots_from_settings_and_dead_letters_when_the_service_is_down(
    robots: RobotService, store: DeadLetterStore
) -> None:
    settings = NotifySettings.model_validate(
        {
            "wecom": [
                {
                    "name": "村委会群",
                    "key": WECOM_KEY,
                    "base_url": robots.base,
                    "retry": {"attempts": 1},
                }
            ],
            "dingtalk": [
                {
                    "name": "治安群",
                    "access_token": DING_TOKEN,
                    "secret": DING_SECRET,
                    "base_url": robots.base,
                    "retry": {"attempts": 2, "initial_backoff_s": 0.01},
                }
            ],
        }
    )
    assert "村委会群" in settings.names() and "**" in repr(settings.wecom[0].key)
    dispatcher = NotificationDispatcher(build_notifiers(settings, zone=VILLAGE), dead_letters=store)
    try:
        report = dispatcher.dispatch(_case_opened())
        assert report.ok and sorted(report.delivered) == ["村委会群", "治安群"]
        robots.stop()
        down = dispatcher.dispatch(_case_opened())
    finally:
        dispatcher.close()
    assert set(down.failed) == {"村委会群", "治安群"}
    [letter] = [d for d in store.pending() if d.channel == "治安群"]
    assert "unreachable" in letter.last_error and DING_TOKEN not in letter.last_error


def test_unknown_kinds_keep_their_own_text() -> None:
    text = robot_markdown(
        Notification(kind="duties.summary", title="每日汇总", body="3 项待办", data={"count": 3})
    )
    assert "村安提醒：每日汇总" in text and "3 项待办" in text and "数量：3" in text


def test_robot_settings_refuse_a_bad_address() -> None:
    with pytest.raises(ValueError, match="http"):
        WeComNotifier(WECOM_KEY, base_url="ftp://example")
    with pytest.raises(ValueError, match="key"):
        WeComNotifier(" ")


def test_a_dead_letter_of_a_web_channel_is_replayed_from_the_command_line(
    robots: RobotService, registry: Registry
) -> None:
    database = registry.database
    channel = parse(
        "dingtalk",
        {
            "name": "治安群",
            "access_token": DING_TOKEN,
            "secret": DING_SECRET,
            "base_url": robots.base,
        },
    )
    ChannelStore(database, registry.service.cipher).add(
        channel, reserved=set(), audit=AuditLog(database), actor="user:1"
    )
    DeadLetterStore(database).add("治安群", _case_opened(), NotificationError("治安群", "down"))
    replayed = CliRunner().invoke(
        notify_app, ["dead-letters", "replay", "--all", "--data-dir", str(registry.data_dir)]
    )
    assert replayed.exit_code == 0, replayed.output
    assert "on 治安群: delivered" in replayed.output
    assert robots.accepted[0]["markdown"]["title"].startswith("村安提醒")
