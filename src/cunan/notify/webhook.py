"""Webhook channel: JSON POSTed with an HMAC-SHA256 signature over timestamp and body."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, to_payload

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CunAn-Signature"
TIMESTAMP_HEADER = "X-CunAn-Timestamp"
DELIVERY_HEADER = "X-CunAn-Delivery"
EVENT_HEADER = "X-CunAn-Event"

#: Answers worth trying again: the receiver is overloaded or briefly broken.
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def signed_message(timestamp: str, body: bytes) -> bytes:
    """What is signed: ``<timestamp>.<raw body>``, so an old request cannot be replayed."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256>``."""
    mac = hmac.new(secret.encode("utf-8"), signed_message(timestamp, body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """A receiver's check: right signature (constant-time) and a timestamp within tolerance."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A POST silently turned into a GET elsewhere is a misconfiguration, not a delivery.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def redact_url(url: str) -> str:
    """Scheme, host and port only: paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


class WebhookNotifier:
    """One POST per :meth:`send` (wrap it in :class:`RetryingNotifier` for retries)."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        channel: str = "webhook",
        timeout_s: float = 10.0,
        include_face_data: bool = False,
        headers: Mapping[str, str] | None = None,
        use_env_proxy: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s): {redact_url(url)}")
        if not secret:
            raise ValueError("a webhook needs a signing secret")
        self.url = url
        self.channel = channel
        self._secret = secret
        self._timeout_s = timeout_s
        self._include_face_data = include_face_data
        self._headers = dict(headers or {})
        self._clock = clock
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if not use_env_proxy:
            # Village receivers are usually on the LAN; an inherited proxy would break them.
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def body(self, notification: Notification) -> bytes:
        payload = to_payload(notification, include_face_data=self._include_face_data)
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, notification: Notification) -> None:
        body = self.body(notification)
        timestamp = str(int(self._clock()))
        request = urllib.request.Request(self.url, data=body, method="POST")
        for name, value in self._headers.items():
            request.add_header(name, value)
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("User-Agent", "CunAn-Webhook/1")
        request.add_header(TIMESTAMP_HEADER, timestamp)
        request.add_header(SIGNATURE_HEADER, sign(self._secret, timestamp, body))
        request.add_header(DELIVERY_HEADER, notification.id)
        request.add_header(EVENT_HEADER, notification.kind)
        where = redact_url(self.url)
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                response.read(65536)  # drain, so the connection closes cleanly
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise NotificationError(
                self.channel,
                f"{where} answered HTTP {exc.code}",
                retryable=exc.code in _RETRYABLE_STATUS,
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotificationError(self.channel, f"{where} unreachable ({reason})") from exc
        if not 200 <= status < 300:
            raise NotificationError(self.channel, f"{where} answered HTTP {status}")
        logger.debug("notification %s posted to %s (HTTP %d)", notification.id, where, status)
