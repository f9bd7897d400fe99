"""In-process test servers: MJPEG over HTTP, a garbage-bytes server and a silent server."""

from __future__ import annotations

import http.server
import io
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
from PIL import Image


def jpeg_frame(index: int, width: int = 160, height: int = 120) -> bytes:
    """A small JPEG whose bright column moves with ``index`` (so frames differ)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, (index * 4) % width] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


class _ThreadedServer:
    def __init__(self) -> None:
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _serve(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MjpegServer(_ThreadedServer):
    """``multipart/x-mixed-replace`` JPEG frames at ``fps``, like an IP camera's MJPEG URL."""

    def __init__(self, fps: float = 25.0) -> None:
        super().__init__()
        stopped, interval = self.stopped, 1.0 / fps

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while not stopped.is_set():
                        body = jpeg_frame(index)
                        index += 1
                        head = (
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(body)
                        )
                        self.wfile.write(head + body + b"\r\n")
                        time.sleep(interval)
                except OSError:
                    pass  # the client went away

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self.stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        super().stop()


class TcpServer(_ThreadedServer):
    """Accepts TCP connections and then either says nothing or sends endless garbage."""

    def __init__(self, *, garbage: bool) -> None:
        super().__init__()
        self.garbage = garbage
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._clients: list[socket.socket] = []

    def url(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}/stream"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._clients.append(client)
            if self.garbage:
                threading.Thread(target=self._spew, args=(client,), daemon=True).start()

    def _spew(self, client: socket.socket) -> None:
        rng = np.random.default_rng(len(self._clients))
        try:
            while not self.stopped.is_set():
                client.sendall(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
                time.sleep(0.01)
        except OSError:
            pass

    def stop(self) -> None:
        self.stopped.set()
        super().stop()
        for client in self._clients:
            client.close()
        self._listener.close()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def not_a_video(directory: Path) -> Path:
    """A file named like a video that holds text."""
    path = directory / "camera.mp4"
    path.write_text("this is not a video\n" * 200, encoding="utf-8")
    return path
