"""A local stand-in for the WeCom and DingTalk robot services: a real HTTP server on loopback
that checks each request the way the services do (path, key or token, signature, format)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.notify.conftest import serve, shut, spare_port

WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "ding-token-村安"
DING_SECRET = "SECb6a2c1d9e8f7-secret"


def expected_sign(secret: str, timestamp: str) -> str:
    """DingTalk's check, written from its documentation independently of the channel."""
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class RobotService:
    """Answers like the robots: HTTP 200 with ``{"errcode": ..}``; ``codes`` are the errcodes
    of the first requests (then 0)."""

    port: int
    codes: list[int] = field(default_factory=list)
    requests: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _check(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> int:
        """The errcode the real service would give to this request."""
        if path == "/cgi-bin/webhook/send":
            if query.get("key") != [WECOM_KEY]:
                return 93000  # invalid webhook url
            kind = body.get("msgtype")
            if kind not in ("markdown", "text") or not body.get(kind, {}).get("content"):
                return 40008  # invalid message type
            return 0
        if path == "/robot/send":
            if query.get("access_token") != [DING_TOKEN]:
                return 300001  # token is not exist
            timestamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
            if not timestamp or abs(time.time() * 1000 - int(timestamp)) > 3_600_000:
                return 310000  # sign not match / timestamp too old
            if not hmac.compare_digest(sign, expected_sign(DING_SECRET, timestamp)):
                return 310000
            kind = body.get("msgtype")
            if kind == "markdown" and not (
                body["markdown"].get("title") and body["markdown"]["text"]
            ):
                return 40035
            if kind == "text" and not body["text"].get("content"):
                return 40035
            return 0
        return 404

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                service.requests += 1
                service.queries.append(query)
                if not self.headers.get("Content-Type", "").startswith("application/json"):
                    code = 40008
                else:
                    code = service._check(parts.path, query, json.loads(raw.decode("utf-8")))
                if code == 404:
                    self.send_response(404)
                    self.end_headers()
                    return
                if code == 0 and service.codes:
                    code = service.codes.pop(0)
                if code == 0:
                    service.accepted.append(json.loads(raw.decode("utf-8")))
                else:
                    service.refused.append(str(code))
                answer = json.dumps({"errcode": code, "errmsg": "ok" if code == 0 else "refused"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(self.port, Handler)

    def stop(self) -> None:
        shut(self.server)
        self.server = None


@pytest.fixture
def robots() -> Iterator[RobotService]:
    service = RobotService(port=spare_port())
    service.start()
    try:
        yield service
    finally:
        service.stop()
