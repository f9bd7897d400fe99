"""Notification fixtures: a local HTTP receiver that checks signatures, and a SQLite store."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cunan.notify.deadletters import DeadLetterStore
from cunan.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade

SECRET = "s3cret-村安"


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A real HTTP server on loopback answering with ``handler``, in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


@dataclass
class Receiver:
    """A webhook receiver: fails the first ``fail_first`` requests with 500, then accepts."""

    port: int
    fail_first: int = 0
    requests: int = 0
    bad_signatures: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/cunan?token=abc"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                ok = verify_signature(
                    SECRET, body, self.headers[TIMESTAMP_HEADER], self.headers[SIGNATURE_HEADER]
                )
                if not ok:
                    receiver.bad_signatures += 1
                    self.send_response(401)
                elif receiver.requests <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.received.append(json.loads(body))
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = serve(self.port, Handler)

    def stop(self) -> None:
        shut(self.server)
        self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(port=spare_port())
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeadLetterStore]:
    db = Database.open(sqlite_url(tmp_path))
    upgrade(db, "heads")
    try:
        yield DeadLetterStore(db)
    finally:
        db.dispose()
