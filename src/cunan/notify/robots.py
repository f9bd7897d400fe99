"""Group robots village staff read: WeCom (企业微信) and DingTalk (钉钉), in Chinese."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, strip_face_data
from cunan.notify.webhook import redact_url

logger = logging.getLogger(__name__)

WECOM_BASE = "https://qyapi.weixin.qq.com"
DINGTALK_BASE = "https://oapi.dingtalk.com"
WECOM_PATH = "/cgi-bin/webhook/send"
DINGTALK_PATH = "/robot/send"

MessageType = Literal["markdown", "text"]

#: What each kind of notification is called in the group (staff read Chinese).
KIND_LABELS: dict[str, str] = {
    "case.opened": "发现未登记人员（新案件）",
    "case.sighted": "未登记人员再次出现",
    "departure.overdue": "逾期未报退租",
    "departure.late": "退租报告逾期",
    "task.due": "待确认居住情况",
    "test": "测试消息",
}
#: Fields of ``data`` shown in the message, with their Chinese names, in this order. Only
#: ids, counts and place names: never a person's name (the group is not the registry).
DATA_LABELS: dict[str, str] = {
    "case_id": "案件编号",
    "camera": "摄像头",
    "sightings": "出现次数",
    "house": "房屋",
    "room": "房间",
    "days_overdue": "逾期天数",
    "max_days_overdue": "最长逾期天数",
    "count": "数量",
    "link": "链接",
}
#: Answers that say "try again later": WeCom's and DingTalk's rate limits, "system busy".
WECOM_RETRYABLE = frozenset({-1, 45009})
DINGTALK_RETRYABLE = frozenset({-1, 130101})
#: The HTTP statuses worth another try (the same as the webhook's).
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Both services refuse messages longer than about 4,000 bytes (WeCom: 4096 for markdown).
MAX_CONTENT_BYTES = 4000


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def _lines(notification: Notification, zone: tzinfo) -> list[tuple[str, str]]:
    data = strip_face_data(notification.data)
    rows = [
        ("类型", kind_label(notification.kind)),
        ("时间", notification.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")),
    ]
    for key, label in DATA_LABELS.items():
        value = data.get(key)
        if value is not None and not isinstance(value, Mapping | list):
            rows.append((label, str(value)))
    return rows


def _headline(notification: Notification) -> str:
    if notification.kind == "case.opened":
        return "村安提醒：发现未登记人员，请尽快核实"
    if notification.kind == "case.sighted":
        return "村安提醒：未登记人员再次出现，请尽快核实"
    if notification.kind == "departure.overdue":
        return "村安提醒：有租户逾期未报退租，请联系房东尽快报告"
    if notification.kind == "test":
        return "村安测试消息：群机器人设置正确"
    return f"村安提醒：{notification.title}"


def _clip(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= MAX_CONTENT_BYTES:
        return text
    return raw[: MAX_CONTENT_BYTES - 12].decode("utf-8", "ignore") + "\n……（已截断）"


def robot_markdown(notification: Notification, zone: tzinfo = UTC) -> str:
    """The message as the group shows it: a Chinese headline, then facts as a quote block.

    The body the sender wrote (often English: it is also the webhook's) follows only for
    kinds without a Chinese text of their own."""
    lines = [f"### {_headline(notification)}"]
    lines += [f"> {label}：{value}" for label, value in _lines(notification, zone)]
    if notification.kind not in KIND_LABELS and notification.body:
        lines.append("")
        lines.append(notification.body)
    return _clip("\n".join(lines))


def robot_text(notification: Notification, zone: tzinfo = UTC) -> str:
    """The same message as plain text (for groups that prefer it, and for @mentions)."""
    lines = [_headline(notification)]
    lines += [f"{label}：{value}" for label, value in _lines(notification, zone)]
    if notification.kind not in KIND_LABELS and notification.body:
        lines.append(notification.body)
    return _clip("\n".join(lines))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64 HMAC-SHA256 of ``"<timestamp>\\n<secret>"`` keyed by
    the secret, URL-encoded (it goes into the query)."""
    message = f"{timestamp_ms}\n{secret}".encode()
    mac = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return quote(base64.b64encode(mac).decode("ascii"), safe="")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _RobotNotifier:
    """One POST per send; the robot's own answer (``errcode``) decides success."""

    service = "robot"
    retryable_codes: frozenset[int] = frozenset()

    def __init__(
        self,
        *,
        channel: str,
        base_url: str,
        msgtype: MessageType,
        mobiles: Sequence[str],
        timeout_s: float,
        zone: tzinfo,
        use_env_proxy: bool,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).hostname:
            raise ValueError(f"{channel}: the robot's address must be http(s): {base_url!r}")
        if msgtype not in ("markdown", "text"):
            raise ValueError(f"{channel}: msgtype must be markdown or text, not {msgtype!r}")
        self.channel = channel
        self.base_url = base_url.rstrip("/")
        self.msgtype: MessageType = msgtype
        self.mobiles = [m.strip() for m in mobiles if m.strip()]
        self._timeout_s = timeout_s
        self._zone = zone
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if not use_env_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def body(self, notification: Notification) -> bytes:
        raise NotImplementedError

    def url(self) -> str:
        raise NotImplementedError

    def _content(self, notification: Notification) -> str:
        if self.msgtype == "markdown":
            return robot_markdown(notification, self._zone)
        return robot_text(notification, self._zone)

    def send(self, notification: Notification) -> None:
        body = self.body(notification)
        request = urllib.request.Request(self.url(), data=body, method="POST")
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("User-Agent", "CunAn-Robot/1")
        # The URL's query holds the robot's key or token: only scheme, host and port are shown.
        where = redact_url(self.base_url)
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                raw = response.read(65536)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise NotificationError(
                self.channel,
                f"{self.service} {where} answered HTTP {exc.code}",
                retryable=exc.code in _RETRYABLE_STATUS,
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotificationError(
                self.channel, f"{self.service} {where} unreachable ({reason})"
            ) from exc
        if not 200 <= status < 300:
            raise NotificationError(self.channel, f"{self.service} {where} answered HTTP {status}")
        self._check_answer(raw, where)
        logger.debug("notification %s posted to %s %s", notification.id, self.service, where)

    def _check_answer(self, raw: bytes, where: str) -> None:
        try:
            answer: Any = json.loads(raw.decode("utf-8"))
            code = int(answer.get("errcode"))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            raise NotificationError(
                self.channel, f"{self.service} {where} gave an answer that is not its JSON"
            ) from None
        if code == 0:
            return
        # errmsg comes from the service and names the problem (a wrong key, a bad signature,
        # a keyword missing), never our message; cut short in case it echoes anything.
        message = str(answer.get("errmsg", ""))[:120]
        raise NotificationError(
            self.channel,
            f"{self.service} {where} refused: errcode {code} {message}".rstrip(),
            retryable=code in self.retryable_codes,
        )


class WeComNotifier(_RobotNotifier):
    """A WeCom (企业微信) group robot: ``POST {base}/cgi-bin/webhook/send?key=KEY``.

    ``text`` messages can @-mention members by mobile number (``mentioned_mobile_list``,
    ``"@all"`` for everyone); WeCom's ``markdown`` cannot, so mentions need ``text``."""

    service = "wecom"
    retryable_codes = WECOM_RETRYABLE

    def __init__(
        self,
        key: str,
        *,
        channel: str = "wecom",
        base_url: str = WECOM_BASE,
        msgtype: MessageType = "markdown",
        mentioned_mobiles: Sequence[str] = (),
        timeout_s: float = 10.0,
        zone: tzinfo = UTC,
        use_env_proxy: bool = False,
    ) -> None:
        super().__init__(
            channel=channel,
            base_url=base_url,
            msgtype=msgtype,
            mobiles=mentioned_mobiles,
            timeout_s=timeout_s,
            zone=zone,
            use_env_proxy=use_env_proxy,
        )
        if not key.strip():
            raise ValueError(f"{channel}: a WeCom robot needs its key")
        self._key = key.strip()

    def url(self) -> str:
        return f"{self.base_url}{WECOM_PATH}?{urlencode({'key': self._key})}"

    def body(self, notification: Notification) -> bytes:
        content = self._content(notification)
        message: dict[str, Any]
        if self.msgtype == "markdown":
            message = {"msgtype": "markdown", "markdown": {"content": content}}
        else:
            text: dict[str, Any] = {"content": content}
            if self.mobiles:
                text["mentioned_mobile_list"] = self.mobiles
            message = {"msgtype": "text", "text": text}
        return json.dumps(message, ensure_ascii=False).encode("utf-8")


class DingTalkNotifier(_RobotNotifier):
    """A DingTalk (钉钉) custom robot: ``POST {base}/robot/send?access_token=TOKEN``, signed
    (``&timestamp=..&sign=..``) when the robot's 加签 secret is given. Mentions by mobile
    number go in ``at.atMobiles``; a markdown message names them in its text too, as
    DingTalk only notifies those named there."""

    service = "dingtalk"
    retryable_codes = DINGTALK_RETRYABLE

    def __init__(
        self,
        access_token: str,
        *,
        secret: str | None = None,
        channel: str = "dingtalk",
        base_url: str = DINGTALK_BASE,
        msgtype: MessageType = "markdown",
        at_mobiles: Sequence[str] = (),
        timeout_s: float = 10.0,
        zone: tzinfo = UTC,
        use_env_proxy: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            channel=channel,
            base_url=base_url,
            msgtype=msgtype,
            mobiles=at_mobiles,
            timeout_s=timeout_s,
            zone=zone,
            use_env_proxy=use_env_proxy,
        )
        if not access_token.strip():
            raise ValueError(f"{channel}: a DingTalk robot needs its access token")
        self._token = access_token.strip()
        self._secret = secret.strip() if secret and secret.strip() else None
        self._clock = clock

    def url(self) -> str:
        query = urlencode({"access_token": self._token})
        if self._secret is not None:
            # A fresh timestamp per attempt: DingTalk refuses signatures older than an hour.
            timestamp = int(self._clock() * 1000)
            query += f"&timestamp={timestamp}&sign={dingtalk_sign(self._secret, timestamp)}"
        return f"{self.base_url}{DINGTALK_PATH}?{query}"

    def body(self, notification: Notification) -> bytes:
        content = self._content(notification)
        at = {"atMobiles": self.mobiles, "isAtAll": False}
        message: dict[str, Any]
        if self.msgtype == "markdown":
            if self.mobiles:
                content += "\n\n" + " ".join(f"@{m}" for m in self.mobiles)
            message = {
                "msgtype": "markdown",
                "markdown": {"title": _headline(notification), "text": content},
                "at": at,
            }
        else:
            message = {"msgtype": "text", "text": {"content": content}, "at": at}
        return json.dumps(message, ensure_ascii=False).encode("utf-8")
