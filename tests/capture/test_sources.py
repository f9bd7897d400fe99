"""Unit tests: URL resolution, redaction, backoff, health arithmetic, frames (no streams)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from cunan.capture import (
    BackoffPolicy,
    CameraReader,
    CaptureState,
    Frame,
    SourceConfig,
    SourceError,
    SourceKind,
    redact_url,
    resolve_source,
)
from cunan.capture.health import HealthTracker
from cunan.capture.sources import open_source, scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/h264", "rtsp://***@10.0.0.5:554/h264"),
        ("rtsps://user@cam/x", "rtsps://***@cam/x"),
        ("http://a:b@h/v.mjpg and rtsp://c:d@h2/", "http://***@h/v.mjpg and rtsp://***@h2/"),
        ("error for 'rtsp://u:p%40x@h/1': refused", "error for 'rtsp://***@h/1': refused"),
        ("rtsp://10.0.0.5/h264", "rtsp://10.0.0.5/h264"),
        ("/videos/a@b.mp4", "/videos/a@b.mp4"),
        # An unencoded '@' in the password: cut at the authority's LAST '@'.
        ("rtsp://admin:p@ss@host/s", "rtsp://***@host/s"),
        ("rtsp://admin:p@s@s@10.0.0.5:554", "rtsp://***@10.0.0.5:554"),
        ("open failed for rtsp://a:x@y@h/1: refused", "open failed for rtsp://***@h/1: refused"),
        # Credentials in the query string (common on Chinese cameras and NVRs).
        (
            "http://10.0.0.7/videostream.cgi?user=admin&pwd=s3cret&rate=0",
            "http://10.0.0.7/videostream.cgi?user=***&pwd=***&rate=0",
        ),
        (
            "rtsp://h/live?channel=1&Password=Se%40cret&username=adm",
            "rtsp://h/live?channel=1&Password=***&username=***",
        ),
        (
            "http://h/cgi?loginuse=admin&loginpas=123;passwd=x&pass=y",
            "http://h/cgi?loginuse=***&loginpas=***;passwd=***&pass=***",
        ),
        ("http://h/v.mjpg?resolution=640&passage=1", "http://h/v.mjpg?resolution=640&passage=1"),
        # A '/', '?' or '#' in an unencoded password: cut at the URL's last '@'.
        ("rtsp://admin:pa/ss@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
        ("rtsp://admin:a?b#c@10.0.0.5/s x", "rtsp://***@10.0.0.5/s x"),
        # Credentials in the path (XMEye/Dahua style) and without a scheme.
        (
            "rtsp://10.0.0.1:554/user=admin_password=tlJwpbo6_channel=1_stream=0.sdp",
            "rtsp://10.0.0.1:554/user=***",
        ),
        ("video file not found: admin:s3cret@10.0.0.5/s", "video file not found: ***@10.0.0.5/s"),
        ("http://h/live?access_token=abc&key=k", "http://h/live?access_token=***&key=***"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_scrub_removes_a_urls_secrets_in_any_form() -> None:
    url = "rtsp://admin:p@ss/word@cam/s?pwd=Other%2F1"
    message = "refused: p@ss/word, p%40ss%2Fword, Other/1 and Other%2F1 at cam"
    assert scrub(message, url) == "refused: ***, ***, *** and *** at cam"
    # Short secrets are left to redact_url: blanking them everywhere would eat digits.
    assert scrub("timed out after 10 s", "rtsp://a:10@cam/") == "timed out after 10 s"


def test_rtsp_options_carry_transport_and_socket_timeout() -> None:
    spec = resolve_source(
        SourceConfig("rtsp://u:p@cam:554/s", rtsp_transport="udp", read_timeout_s=2.5)
    )
    assert spec.kind is SourceKind.RTSP
    assert spec.live
    assert spec.options["rtsp_transport"] == "udp"
    assert spec.options["timeout"] == "2500000"  # microseconds
    assert spec.display == "rtsp://***@cam:554/s"
    assert resolve_source(SourceConfig("rtsp://cam/s")).options["rtsp_transport"] == "tcp"
    assert resolve_source(SourceConfig("RTSPS://cam:322/s")).kind is SourceKind.RTSPS


def test_http_options_have_open_and_read_timeouts() -> None:
    spec = resolve_source(
        SourceConfig("https://cam/video.mjpg", open_timeout_s=3, read_timeout_s=4)
    )
    assert spec.kind is SourceKind.HTTP
    assert spec.options == {
        "rw_timeout": "4000000",
        "timeout": "3000000",
        "protocol_whitelist": "http,https,tcp,tls,crypto",
    }


def test_files_are_not_live_and_keep_realtime_and_loop() -> None:
    spec = resolve_source(SourceConfig("/data/a.mp4", realtime=False, loop=True))
    assert spec.kind is SourceKind.FILE
    assert not spec.live
    assert (spec.realtime, spec.loop) == (False, True)
    assert resolve_source(SourceConfig("file:///data/a%20b.mp4")).target == "/data/a b.mp4"
    # Only files loop or pace; a camera is already real time.
    assert not resolve_source(SourceConfig("rtsp://cam/s", loop=True)).loop


def test_v4l2_urls_and_options() -> None:
    config = SourceConfig(
        "v4l2:///dev/video2", video_size="1280x720", framerate=15, input_format="mjpeg"
    )
    spec = resolve_source(config)
    assert (spec.kind, spec.format, spec.target) == (SourceKind.V4L2, "video4linux2", "/dev/video2")
    assert spec.options == {"video_size": "1280x720", "framerate": "15", "input_format": "mjpeg"}
    plain = resolve_source(SourceConfig("/dev/video0"))
    assert (plain.kind, plain.target, plain.options) == (SourceKind.V4L2, "/dev/video0", {})
    assert plain.live


def test_extra_options_override_and_bad_input_is_rejected() -> None:
    spec = resolve_source(SourceConfig("rtsp://cam/s", extra_options={"timeout": "1"}))
    assert spec.options["timeout"] == "1"
    with pytest.raises(ValueError, match="unsupported camera URL scheme"):
        resolve_source(SourceConfig("ftp://u:pw@cam/x"))
    with pytest.raises(ValueError, match="positive"):
        SourceConfig("rtsp://cam/s", read_timeout_s=0)
    with pytest.raises(ValueError, match="empty"):
        resolve_source(SourceConfig("  "))


def test_missing_v4l2_device_is_a_clear_error() -> None:
    spec = resolve_source(SourceConfig("/dev/video97"))
    with pytest.raises(SourceError, match=r"V4L2 device /dev/video97 does not exist") as info:
        open_source(spec)
    assert not info.value.permanent  # the camera may be plugged in later


def test_missing_v4l2_device_backs_off_in_the_reader() -> None:
    reader = CameraReader(
        "usb", "/dev/video97", backoff=BackoffPolicy(initial_s=0.05, max_s=0.1), seed=1
    )
    with reader:
        assert reader.get(timeout=1.0) is None
        health = reader.health()
    assert health.connect_attempts >= 2
    assert health.last_error is not None and "does not exist" in health.last_error
    assert reader.health().state is CaptureState.STOPPED


def test_missing_file_fails_without_retrying(tmp_path: Path) -> None:
    reader = CameraReader("f", str(tmp_path / "nope.mp4")).start()
    assert reader.get(timeout=10) is None
    assert reader.stop()
    health = reader.health()
    assert health.state is CaptureState.FAILED
    assert health.connect_attempts == 1
    assert health.last_error is not None and "video file not found" in health.last_error


def test_backoff_grows_caps_and_jitters() -> None:
    policy = BackoffPolicy(initial_s=1, max_s=10, multiplier=2, jitter=0)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    jittery = BackoffPolicy(initial_s=4, max_s=4, jitter=0.25)
    delays = [jittery.delay(3, rng) for _ in range(200)]
    assert all(3.0 <= d <= 5.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100
    with pytest.raises(ValueError):
        BackoffPolicy(initial_s=5, max_s=1)
    with pytest.raises(ValueError):
        BackoffPolicy(jitter=1.0)


def test_health_rates_use_a_sliding_window() -> None:
    now = [100.0]
    tracker = HealthTracker("cam", clock=lambda: now[0])
    wall = datetime.now(UTC)
    for i in range(51):
        tracker.frame_decoded(100.0 + i * 0.04, wall)  # 25 fps for 2 s
    now[0] = 102.0
    for _ in range(3):
        tracker.frame_dropped()
    snap = tracker.snapshot()
    assert snap.fps_in == pytest.approx(25.0)
    assert (snap.frames_decoded, snap.frames_dropped) == (51, 3)
    assert snap.seconds_since_last_frame(now=103.0) == pytest.approx(1.0)
    now[0] = 110.0  # the stream stalled: the rate falls to zero rather than freezing
    assert tracker.snapshot().fps_in == 0.0


def test_health_counts_reconnects_after_the_first_connection() -> None:
    tracker = HealthTracker("cam")
    for _ in range(3):
        tracker.connecting()
        tracker.connected()
        tracker.disconnected(CaptureState.BACKING_OFF, "boom")
    snap = tracker.snapshot()
    assert (snap.reconnects, snap.connect_attempts, snap.connected) == (2, 3, False)
    assert snap.state is CaptureState.BACKING_OFF and snap.last_error == "boom"


def test_frame_from_rgb_and_validation() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    frame = Frame.from_rgb("c", image, seq=3, monotonic_s=1.0, wall_time=datetime.now(UTC))
    assert (frame.width, frame.height, frame.seq) == (6, 4, 3)
    assert frame.rgb() is image
    with pytest.raises(ValueError):
        Frame.from_rgb("c", image[:, :, 0], seq=0, monotonic_s=0, wall_time=datetime.now(UTC))
