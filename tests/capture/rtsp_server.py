"""Real RTSP servers on 127.0.0.1 for tests: GStreamer (UDP + TCP) and rtsp-server-perl (UDP).

Reusable by any test that needs a live camera::

    from tests.capture.rtsp_server import GstRtspServer, looped_video

    with GstRtspServer(looped_video(src, tmp_path)) as server:
        reader = CameraReader("cam1", SourceConfig(server.url, rtsp_transport="tcp"))

Every server runs in its own process group, which ``stop()`` kills whole (no orphans).
``stop()`` then ``start()`` restarts on the same port, to test reconnects. The pytest fixtures
at the end skip when the system packages are missing, and fail when CUNAN_REQUIRE_DATA=1
(CI installs them: see .ci/run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import pytest

from tests.conftest import skip_or_fail as shared_skip_or_fail

#: Debian's interpreter, the only one with the GStreamer bindings (python3-gi).
SYSTEM_PYTHON = "/usr/bin/python3"
GST_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago on 127.0.0.1 (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_range(count: int = 20) -> int:
    """The first of ``count`` consecutive UDP ports that are free right now (even start)."""
    for _ in range(50):
        start = free_port(socket.SOCK_DGRAM) & ~1
        if start + count > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(start, start + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return start
    raise RuntimeError("no free UDP port range")


def missing_tools(*names: str) -> list[str]:
    return [name for name in names if shutil.which(name) is None and not Path(name).exists()]


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when CI promised the tools (CUNAN_REQUIRE_DATA=1)."""
    shared_skip_or_fail(reason + " (the RTSP servers are installed by .ci/run)")


def gst_available() -> str | None:
    """None when the GStreamer RTSP server can run here, else why not."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0');"
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        check=False,
        timeout=30,
    )
    if probe.returncode != 0:
        return "GStreamer RTSP server bindings missing (gir1.2-gst-rtsp-server-1.0, python3-gi)"
    return None


def looped_video(source: Path, directory: Path, *, loops: int = 10) -> Path:
    """``source`` repeated ``loops`` times, video only, remuxed without re-encoding.

    A GStreamer ``filesrc`` plays a file once; a longer copy gives tests a stream that lasts.
    """
    if missing_tools("ffmpeg"):
        skip_or_fail("ffmpeg not installed")
    target = directory / f"{source.stem}-x{loops}.mp4"
    if not target.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-stream_loop",
                str(loops - 1),
                "-i",
                str(source),
                "-an",
                "-c:v",
                "copy",
                str(target),
            ],
            check=True,
            timeout=120,
        )
    return target


def wait_for_rtsp(url_host: str, port: int, path: str, deadline_s: float = 20.0) -> bool:
    """True once ``rtsp://host:port/path`` answers DESCRIBE with 200 (the stream is there)."""
    end = time.monotonic() + deadline_s
    request = (
        f"DESCRIBE rtsp://{url_host}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n"
        "Accept: application/sdp\r\n\r\n"
    ).encode()
    while time.monotonic() < end:
        try:
            with socket.create_connection((url_host, port), timeout=2) as sock:
                sock.sendall(request)
                answer = sock.recv(4096)
            if b" 200 " in answer.split(b"\r\n", 1)[0]:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class ManagedProcesses:
    """Processes started in their own process groups and killed group by group."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # own process group: killpg reaches its children too
        )
        self._procs.append(proc)
        return proc

    def signal_all(self, sig: int) -> None:
        for proc in self._procs:
            _kill_group(proc, sig)

    def stop_all(self, grace_s: float = 3.0) -> None:
        for proc in reversed(self._procs):
            _kill_group(proc, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            _kill_group(proc, signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait(grace_s)
            # Children that ignored SIGTERM while the leader exited.
            _kill_group(proc, signal.SIGKILL)
        self._procs.clear()


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class _Server:
    path = "/cam1"

    def __init__(self) -> None:
        self.port = free_port()
        self._procs = ManagedProcesses()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        self._procs.stop_all()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing more is sent."""
        self._procs.signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._procs.signal_all(signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class GstRtspServer(_Server):
    """GStreamer's RTSP server (gst-rtsp-server) serving one MP4 file; UDP and TCP clients.

    Each client session plays the file from its start; use :func:`looped_video` for a long
    stream.
    """

    def __init__(self, video: Path) -> None:
        super().__init__()
        self.video = video

    def start(self) -> Self:
        self._procs.spawn(
            [
                SYSTEM_PYTHON,
                str(GST_SCRIPT),
                "--port",
                str(self.port),
                "--path",
                self.path,
                "--file",
                str(self.video),
            ]
        )
        if not wait_for_rtsp("127.0.0.1", self.port, self.path):
            self.stop()
            raise RuntimeError(f"GStreamer RTSP server did not come up on port {self.port}")
        return self


class PerlRtspServer(_Server):
    """Debian's rtsp-server-perl fed by ``ffmpeg -re -stream_loop -1``; serves UDP only."""

    def __init__(self, video: Path) -> None:
        super().__init__()
        self.video = video
        self.source_port = free_port()
        self.rtp_start = free_udp_range()

    def start(self) -> Self:
        self._procs.spawn(
            [
                "rtsp-server-perl",
                "--clientport",
                str(self.port),
                "--serverport",
                str(self.source_port),
                "--client_listen_address",
                "127.0.0.1",
                "--source_listen_address",
                "127.0.0.1",
                "--rtp_start_port",
                str(self.rtp_start),
            ]
        )
        end = time.monotonic() + 15
        while not _accepts(self.source_port):
            if time.monotonic() > end:
                self.stop()
                raise RuntimeError("rtsp-server-perl did not come up")
            time.sleep(0.1)
        self._procs.spawn(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.video),
                "-an",
                "-c",
                "copy",
                "-f",
                "rtsp",
                f"rtsp://127.0.0.1:{self.source_port}{self.path}",
            ]
        )
        if not wait_for_rtsp("127.0.0.1", self.port, self.path):
            self.stop()
            raise RuntimeError(f"rtsp-server-perl gave no stream on port {self.port}")
        return self


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# -- pytest fixtures (import them into a conftest.py to use them) -------------------------------


@pytest.fixture(scope="session")
def rtsp_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hamilton clip (640x360, 30 fps, 9 s) looped to about 90 s, video only."""
    from tests.conftest import require_data

    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    return looped_video(clip, tmp_path_factory.mktemp("rtsp-video"))


@pytest.fixture
def gst_rtsp_server(rtsp_video: Path) -> Iterator[GstRtspServer]:
    """A running GStreamer RTSP server (UDP and TCP) streaming :func:`rtsp_video`."""
    why = gst_available()
    if why:
        skip_or_fail(why)
    with GstRtspServer(rtsp_video) as server:
        yield server


@pytest.fixture
def perl_rtsp_server(rtsp_video: Path) -> Iterator[PerlRtspServer]:
    """A running rtsp-server-perl (UDP transport only) streaming :func:`rtsp_video`."""
    missing = missing_tools("rtsp-server-perl", "ffmpeg")
    if missing:
        skip_or_fail(f"not installed: {', '.join(missing)}")
    with PerlRtspServer(rtsp_video) as server:
        yield server
