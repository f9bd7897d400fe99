"""The camera reader against real streams: files, RTSP (TCP and UDP), MJPEG, broken servers."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cunan.capture import BackoffPolicy, CameraReader, CaptureHealth, CaptureState, SourceConfig
from tests.capture.fake_servers import MjpegServer, TcpServer, closed_port, not_a_video
from tests.capture.rtsp_server import GstRtspServer, PerlRtspServer
from tests.conftest import require_data

#: Short retries so the broken-server tests see several attempts quickly.
FAST_BACKOFF = BackoffPolicy(initial_s=0.2, max_s=1.0)
#: Generous: the machine is shared and slow; only ever a deadline, never an assertion on time.
DEADLINE_S = 45.0


@pytest.fixture(autouse=True)
def _no_thread_crashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test if any exception escapes a thread (the reader must catch everything)."""
    escaped: list[str] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        escaped.append(f"{args.thread.name if args.thread else '?'}: {args.exc_value!r}")

    monkeypatch.setattr(threading, "excepthook", hook)
    yield escaped
    assert not escaped, escaped


def wait_for(
    reader: CameraReader, check: Callable[[CaptureHealth], bool], what: str
) -> CaptureHealth:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        health = reader.health()
        if check(health):
            return health
        time.sleep(0.05)
    raise AssertionError(f"{reader.camera_id}: never saw {what}; last health {reader.health()}")


def take(reader: CameraReader, count: int) -> list[int]:
    """Sequence numbers of the next ``count`` frames (each checked for real pixels)."""
    seqs = []
    for _ in range(count):
        frame = reader.get(timeout=DEADLINE_S)
        assert frame is not None, f"no frame; health {reader.health()}"
        seqs.append(frame.seq)
    return seqs


@pytest.fixture(scope="module")
def hamilton() -> Path:
    return require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")


# -- files --------------------------------------------------------------------------------------


def test_batch_file_gives_every_frame_in_order(hamilton: Path) -> None:
    reader = CameraReader("file", SourceConfig(str(hamilton), realtime=False)).start()
    frames = list(reader.frames(idle_timeout=DEADLINE_S))
    assert reader.stop()
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert len(frames) == 275  # the clip's frame count: batch mode never drops
    pts = [f.pts_s for f in frames]
    assert all(p is not None for p in pts)
    assert pts == sorted(pts)  # type: ignore[type-var]
    image = frames[100].rgb()
    assert image.shape == (360, 640, 3) and image.dtype.name == "uint8"
    assert image.std() > 10  # real picture, not a blank buffer
    health = reader.health()
    assert health.state is CaptureState.STOPPED and health.last_error is None
    assert (health.frames_decoded, health.frames_dropped) == (275, 0)


def test_realtime_file_is_paced_and_a_slow_consumer_drops(hamilton: Path) -> None:
    with CameraReader("rt", SourceConfig(str(hamilton))) as reader:
        seqs = []
        for _ in range(6):
            frame = reader.get(timeout=DEADLINE_S)
            assert frame is not None
            seqs.append(frame.seq)
            assert reader.buffered() <= 1
            time.sleep(0.25)  # a consumer slower than the clip's 30 fps
            assert reader.buffered() <= 1
        health = wait_for(reader, lambda h: h.frames_dropped > 0, "dropped frames")
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] > len(seqs) - 1  # gaps: the frames in between were dropped
    assert health.frames_decoded >= health.frames_consumed + health.frames_dropped
    assert reader.finished


def test_batch_1080p_street_video() -> None:
    street = require_data("street_video/street_1080p.mp4")
    with CameraReader("street", SourceConfig(str(street), realtime=False)) as reader:
        frames = list(reader.frames(idle_timeout=DEADLINE_S))
    assert len(frames) == 105
    assert frames[50].rgb().shape == (1080, 1920, 3)
    assert reader.health().frames_dropped == 0


def test_looping_file_restarts_at_its_end(hamilton: Path) -> None:
    config = SourceConfig(str(hamilton), realtime=False, loop=True)
    with CameraReader("loop", config) as reader:
        frames = [reader.get(timeout=DEADLINE_S) for _ in range(300)]
    assert all(f is not None for f in frames)
    assert [f.seq for f in frames if f] == list(range(300))  # seq keeps counting across loops
    assert reader.health().state is CaptureState.STOPPED


def test_not_a_video_file_fails_clearly(tmp_path: Path) -> None:
    reader = CameraReader("bad", str(not_a_video(tmp_path))).start()
    assert reader.get(timeout=DEADLINE_S) is None
    assert reader.stop()
    health = reader.health()
    assert health.state is CaptureState.FAILED
    assert health.last_error is not None and "not a video file" in health.last_error


# -- real RTSP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_gstreamer_rtsp_frames_flow(gst_rtsp_server: GstRtspServer, transport: str) -> None:
    config = SourceConfig(gst_rtsp_server.url, rtsp_transport=transport)  # type: ignore[arg-type]
    with CameraReader(f"gst-{transport}", config) as reader:
        seqs = take(reader, 20)
        health = wait_for(reader, lambda h: h.fps_in > 0, "a frame rate")
        frame = reader.get(timeout=DEADLINE_S)
        assert frame is not None and frame.rgb().shape == (360, 640, 3)
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    assert health.connected and health.state is CaptureState.STREAMING
    assert health.last_error is None
    assert reader.health().state is CaptureState.STOPPED


def test_perl_rtsp_server_over_udp(perl_rtsp_server: PerlRtspServer) -> None:
    config = SourceConfig(perl_rtsp_server.url, rtsp_transport="udp")
    with CameraReader("perl-udp", config) as reader:
        seqs = take(reader, 20)
        assert reader.health().connected
    assert seqs == sorted(seqs) and len(set(seqs)) == 20


def test_slow_consumer_of_rtsp_never_buffers_more_than_one(
    gst_rtsp_server: GstRtspServer,
) -> None:
    with CameraReader("slow", SourceConfig(gst_rtsp_server.url)) as reader:
        take(reader, 1)
        seqs = []
        for _ in range(5):
            time.sleep(0.3)
            assert reader.buffered() <= 1
            frame = reader.get(timeout=DEADLINE_S)
            assert frame is not None
            seqs.append(frame.seq)
        health = reader.health()
    assert health.frames_dropped > 0
    assert any(b - a > 1 for a, b in itertools.pairwise(seqs))


def test_rtsp_server_outage_backs_off_then_reconnects(
    gst_rtsp_server: GstRtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = SourceConfig(gst_rtsp_server.url, open_timeout_s=3, read_timeout_s=3)
    with CameraReader("outage", config, backoff=FAST_BACKOFF, seed=0) as reader:
        before = take(reader, 5)
        gst_rtsp_server.stop()
        down = wait_for(
            reader,
            lambda h: (
                not h.connected
                and h.state is not CaptureState.STREAMING
                and h.last_error is not None
            ),
            "the disconnect",
        )
        assert down.state in (CaptureState.BACKING_OFF, CaptureState.CONNECTING)
        assert not reader.finished  # the thread survives the outage
        while reader.get(timeout=0) is not None:
            pass  # drain what was decoded before the outage
        gst_rtsp_server.start()
        up = wait_for(reader, lambda h: h.reconnects >= 1 and h.connected, "the reconnect")
        after = take(reader, 5)
    assert up.state is CaptureState.STREAMING
    assert min(after) > max(before)
    assert down.last_error
    assert any("retrying" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_stalled_rtsp_server_hits_the_read_timeout(
    gst_rtsp_server: GstRtspServer, transport: str
) -> None:
    config = SourceConfig(
        gst_rtsp_server.url,
        rtsp_transport=transport,  # type: ignore[arg-type]
        open_timeout_s=2,
        read_timeout_s=2,
    )
    with CameraReader(f"stall-{transport}", config, backoff=FAST_BACKOFF) as reader:
        take(reader, 3)
        gst_rtsp_server.pause()
        try:
            stalled = wait_for(reader, lambda h: h.last_error is not None, "the read timeout")
        finally:
            gst_rtsp_server.resume()
        wait_for(reader, lambda h: h.reconnects >= 1 and h.connected, "the reconnect")
        take(reader, 3)
    assert stalled.last_error and "timed out after 2 s reading" in stalled.last_error
    assert not stalled.connected


# -- MJPEG over HTTP ------------------------------------------------------------------------------


def test_mjpeg_over_http() -> None:
    with MjpegServer() as server, CameraReader("mjpeg", server.url) as reader:
        seqs = take(reader, 10)
        frame = reader.get(timeout=DEADLINE_S)
        assert frame is not None and frame.rgb().shape == (120, 160, 3)
        assert reader.health().connected
    assert seqs == sorted(seqs)


# -- broken sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_garbage_bytes_give_a_clear_error(scheme: str) -> None:
    with TcpServer(garbage=True) as server:
        config = SourceConfig(server.url(scheme), open_timeout_s=2, read_timeout_s=2)
        with CameraReader(f"garbage-{scheme}", config, backoff=FAST_BACKOFF) as reader:
            health = wait_for(reader, lambda h: h.connect_attempts >= 2, "two attempts")
            assert reader.get(timeout=0.1) is None
        assert reader.stop()
    assert health.last_error and server.url(scheme).split("/")[2] in health.last_error
    assert health.state in (CaptureState.BACKING_OFF, CaptureState.CONNECTING)
    assert health.frames_decoded == 0


@pytest.mark.parametrize(
    ("scheme", "transport"), [("rtsp", "tcp"), ("rtsp", "udp"), ("http", "tcp")]
)
def test_silent_server_times_out(scheme: str, transport: str) -> None:
    with TcpServer(garbage=False) as server:
        config = SourceConfig(
            server.url(scheme),
            rtsp_transport=transport,  # type: ignore[arg-type]
            open_timeout_s=1.5,
            read_timeout_s=1.5,
        )
        with CameraReader(f"silent-{scheme}", config, backoff=FAST_BACKOFF) as reader:
            health = wait_for(reader, lambda h: h.last_error is not None, "a timeout error")
        assert reader.stop()
        assert server.connections >= 1  # it did accept: this is the "never answers" case
    error = health.last_error or ""
    assert "timed out after 1.5 s opening" in error, error


def test_closed_port_is_refused_and_password_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cunan.capture")
    url = f"rtsp://admin:hunter2@127.0.0.1:{closed_port()}/live"
    with CameraReader("closed", SourceConfig(url), backoff=FAST_BACKOFF) as reader:
        health = wait_for(reader, lambda h: h.connect_attempts >= 2, "two attempts")
    assert health.last_error is not None
    assert "connection refused" in health.last_error
    assert "rtsp://***@127.0.0.1" in health.last_error
    assert "hunter2" not in repr(reader.health())
    assert "hunter2" not in caplog.text
    assert reader.health().state is CaptureState.STOPPED


def test_max_attempts_ends_in_failed() -> None:
    url = f"rtsp://127.0.0.1:{closed_port()}/live"
    policy = BackoffPolicy(initial_s=0.05, max_s=0.1, max_attempts=2)
    reader = CameraReader("giveup", url, backoff=policy).start()
    assert reader.get(timeout=DEADLINE_S) is None
    assert reader.stop()
    health = reader.health()
    assert health.state is CaptureState.FAILED
    assert health.last_error and "gave up after 2 attempts" in health.last_error


def test_a_wrong_url_shows_failing_warns_once_then_reminds_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cunan.capture")
    ticks = itertools.count()

    def clock() -> float:
        return next(ticks) * 1000.0  # every look at the clock is 1000 s later

    url = f"rtsp://127.0.0.1:{closed_port()}/wrong"
    policy = BackoffPolicy(initial_s=0.2, max_s=0.2, jitter=0.0)
    with CameraReader("wrong", SourceConfig(url), backoff=policy, clock=clock) as reader:
        health = wait_for(
            reader,
            lambda h: h.connect_attempts >= 4 and h.state is CaptureState.FAILING,
            "the camera shown as failing",
        )
    assert health.consecutive_failures >= 2 and not health.connected
    records = [r for r in caplog.records if "camera wrong" in r.getMessage()]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    reminders = [
        r for r in records if r.levelno == logging.INFO and "still failing" in r.getMessage()
    ]
    assert len(warnings) == 1  # the first failure, once; not one per retry
    assert reminders and "retrying with backoff" in reminders[0].getMessage()


def test_a_truncated_file_plays_what_it_has_and_warns_once(
    hamilton: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.capture.truncated import truncated_mp4

    caplog.set_level(logging.WARNING, logger="cunan.capture")
    cut = truncated_mp4(hamilton, tmp_path / "cut.mp4")
    with CameraReader("cut", SourceConfig(str(cut), realtime=False)) as reader:
        frames = list(reader.frames(idle_timeout=DEADLINE_S))
    assert 0 < len(frames) < 275
    [warning] = [r.getMessage() for r in caplog.records if "ends early" in r.getMessage()]
    assert f"{len(frames)} of 275 frames decoded" in warning
    assert reader.health().state is CaptureState.STOPPED
    assert "ends early" in (reader.health().last_error or "")


def test_a_whole_file_gives_no_warning(hamilton: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cunan.capture")
    with CameraReader("whole", SourceConfig(str(hamilton), realtime=False)) as reader:
        assert len(list(reader.frames(idle_timeout=DEADLINE_S))) >= 273
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
