"""A real uvicorn server on loopback for one test, serving a given ASGI app (event streams and
browsers need a real socket, not the in-process test client)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

#: Hang guard only: no timing is asserted.
START_DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(api: FastAPI) -> Iterator[str]:
    """The app served on a free loopback port: yields its base URL, stops it afterwards
    (event streams end at once through the app's ``stopping`` flag)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_DEADLINE_S
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        api.state.stopping.set()
        server.should_exit = True
        thread.join(START_DEADLINE_S)
        api.state.stopping.clear()
