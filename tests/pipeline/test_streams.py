"""The whole pipeline on real streams: RTSP from real servers, real videos, broken sources."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cunan.capture.health import CaptureState
from cunan.capture.reader import BackoffPolicy
from cunan.capture.sources import SourceConfig
from cunan.config import Settings
from cunan.pipeline.build import build_runner
from cunan.pipeline.cli import cameras_app, watch_command
from cunan.pipeline.events import EventBus, SightingDecided
from cunan.pipeline.runner import CameraRunner, CameraTarget, RunnerHealth
from cunan.pipeline.store import CameraStore, EventOutbox, SightingStore
from cunan.registry.datadir import Registry
from tests.capture.fake_servers import TcpServer, not_a_video
from tests.capture.rtsp_server import GstRtspServer
from tests.conftest import require_data

pytestmark = pytest.mark.slow

FAST_BACKOFF = BackoffPolicy(initial_s=0.3, max_s=1.0, jitter=0.0)
#: A hang guard only (a thread that never ends fails the test); no timing is asserted.
HANG_GUARD_S = 60.0


def wait_for(
    runner: CameraRunner, condition: Callable[[RunnerHealth], bool], what: str, limit_s: float = 60
) -> RunnerHealth:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        health = runner.health()
        if condition(health):
            return health
        time.sleep(0.1)
    raise AssertionError(f"waited {limit_s} s for {what}; last health {runner.health()}")


def start(runner: CameraRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, name="runner", daemon=True)
    thread.start()
    return thread


def stop(runner: CameraRunner, thread: threading.Thread) -> None:
    runner.stop()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "runner did not stop"


def rtsp_target(url: str, transport: str = "tcp", fps_cap: float = 10.0) -> CameraTarget:
    return CameraTarget(
        name="stage-door",
        source=SourceConfig(
            url,
            rtsp_transport=transport,  # type: ignore[arg-type]
            open_timeout_s=5,
            read_timeout_s=3,
        ),
        fps_cap=fps_cap,
    )


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


# -- known person over RTSP ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_enrolled_person_is_recognised_over_rtsp(
    transport: str,
    registry: Registry,
    miranda: tuple[int, np.ndarray],
    gst_rtsp_server: GstRtspServer,
) -> None:
    person_id, template = miranda
    bus = EventBus()
    events: list[SightingDecided] = []
    bus.subscribe(SightingDecided, events.append)
    runner = build_runner(
        registry,
        Settings(),
        rtsp_target(gst_rtsp_server.url, transport),
        bus=bus,
        backoff=FAST_BACKOFF,
    )
    thread = start(runner)
    # Each client session plays the clip from its start: 10 s covers the 9.2 s clip.
    wait_for(runner, lambda h: h.capture.frames_decoded >= 300, "10 s of stream")
    stop(runner, thread)
    sightings = SightingStore(registry.database, registry.service.cipher)
    rows = sightings.list()
    assert rows, "no sighting at all"
    known = [r for r in rows if r.decision == "known"]
    assert known and all(r.person_id == person_id for r in known), rows
    for row in rows:
        if row.decision == "unknown":
            embedding = sightings.embedding(row.id)
            assert embedding is not None
            # None of him as unknown: an unknown's face is far from his template.
            assert distance(embedding, template) > 0.5, row
    assert sorted(e.sighting_id for e in events) == [r.id for r in rows]
    assert all(sightings.crop(r.id) for r in rows)  # the best crop decrypts


# -- street video, empty registry -----------------------------------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("watch")(watch_command)
    app.add_typer(cameras_app, name="cameras")
    return app


def test_street_passers_by_are_unknown_one_sighting_per_track(registry: Registry) -> None:
    video = require_data("street_video/street_1080p.mp4")
    result = CliRunner().invoke(
        cli_app(),
        [
            "watch",
            str(video),
            "--json",
            "--fast",
            "--notice-posted",
            "--fps-cap",
            "30",
            "--data-dir",
            str(registry.data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    decisions = [line["decision"] for line in lines]
    # 12 people's faces become visible and the tracker gives 12 confirmed tracks
    # (tests/tracking/test_street_video.py; 10-15 allowed there for the same reasons): one
    # sighting per track, never one per frame (105 frames, ~1000 face detections).
    assert 10 <= len(lines) <= 15, decisions
    assert "known" not in decisions  # the registry is empty
    # Seen: 6 unknown and 7 undecided. The undecided ones are the far faces (37-51 px wide,
    # 15-21 px between the eyes, blurred) and a turned one: too poor to judge, so they
    # never decide (issue 12 item 5). At least 5 unknown, and every track decided.
    assert decisions.count("unknown") >= 5, decisions
    assert decisions.count("unknown") + decisions.count("undecided") == len(lines)
    for line in lines:
        assert set(line) >= {
            "camera",
            "start",
            "end",
            "decision",
            "person_id",
            "person_name",
            "distance",
            "faces_used",
        }
        assert line["person_id"] is None and line["start"] <= line["end"]
    stored = SightingStore(registry.database, registry.service.cipher).list()
    assert sorted(r.id for r in stored) == sorted(line["sighting_id"] for line in lines)
    assert all(r.has_embedding for r in stored if r.decision == "unknown")
    assert len(EventOutbox(registry.database).pending("cases")) == len(lines)


def test_watch_refuses_without_the_public_notice(registry: Registry, tmp_path: Path) -> None:
    app = cli_app()
    args = ["--data-dir", str(registry.data_dir)]
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "x.mp4"), *args])
    assert result.exit_code == 2 and "public notice" in result.output
    url = "rtsp://admin:hunter2@192.0.2.1/s"
    assert CliRunner().invoke(app, ["cameras", "add", "gate", url, *args]).exit_code == 0
    listed = CliRunner().invoke(app, ["cameras", "list", "--json", *args])
    assert "hunter2" not in listed.output and "rtsp://***@192.0.2.1/s" in listed.output
    result = CliRunner().invoke(app, ["watch", "gate", *args])
    assert result.exit_code == 2 and "public notice" in result.output
    assert CliRunner().invoke(app, ["cameras", "disable", "gate", *args]).exit_code == 0
    assert not CameraStore(registry.database).get("gate").enabled
    assert CliRunner().invoke(app, ["cameras", "remove", "gate", "--yes", *args]).exit_code == 0


# -- the server goes away and comes back -------------------------------------------------------


def test_server_outage_ends_tracks_once_and_reconnects(
    registry: Registry, miranda: tuple[int, np.ndarray], rtsp_video: Path
) -> None:
    from tests.capture.rtsp_server import gst_available, skip_or_fail

    why = gst_available()
    if why:
        skip_or_fail(why)
    with GstRtspServer(rtsp_video) as server:
        runner = build_runner(
            registry, Settings(), rtsp_target(server.url, fps_cap=10), backoff=FAST_BACKOFF
        )
        thread = start(runner)
        # Lin-Manuel is on screen from ~1 s into the clip: stop while he is tracked.
        wait_for(runner, lambda h: h.active_tracks > 0 and h.frames_analysed > 30, "a track")
        server.stop()
        down = wait_for(runner, lambda h: not h.capture.connected, "the disconnect")
        assert down.capture.state in (CaptureState.BACKING_OFF, CaptureState.CONNECTING)
        assert down.capture.last_error
        # The open tracks end after the track-end timeout and are stored, once.
        flushed = wait_for(runner, lambda h: h.active_tracks == 0, "the tracks to end")
        stored_during_outage = flushed.sightings_stored
        assert stored_during_outage >= 1
        assert thread.is_alive()  # the worker survives the outage
        server.start()
        wait_for(runner, lambda h: h.capture.reconnects >= 1, "the reconnect")
        analysed = runner.health().frames_analysed
        wait_for(runner, lambda h: h.frames_analysed > analysed + 30, "frames after reconnect")
        stop(runner, thread)
    rows = SightingStore(registry.database, registry.service.cipher).list()
    keys = [r.track_key for r in rows]
    assert len(keys) == len(set(keys))  # nothing stored twice
    # Nothing lost: every track the runner finished (counted when it ends, before storing)
    # is a stored row, and vice versa.
    final = runner.health()
    assert final.tracks_finished >= 1
    assert final.sightings_lost == 0 and final.sightings_pending == 0
    assert final.tracks_finished == len(rows) == final.sightings_stored
    assert sorted(s.sighting_id for s in runner.sightings) == [r.id for r in rows]
    assert all(s.created for s in runner.sightings)
    assert len(rows) >= stored_during_outage


# -- broken sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["garbage", "silent"])
def test_broken_stream_reports_errors_without_crashing(kind: str, registry: Registry) -> None:
    with TcpServer(garbage=kind == "garbage") as server:
        target = CameraTarget(
            name=f"{kind}-cam",
            source=SourceConfig(server.url("rtsp"), open_timeout_s=1.5, read_timeout_s=1.5),
        )
        runner = build_runner(registry, Settings(), target, backoff=FAST_BACKOFF)
        thread = start(runner)
        health = wait_for(
            runner, lambda h: h.capture.connect_attempts >= 2, "two connection attempts"
        )
        assert thread.is_alive()  # keeps retrying: the camera may come back
        stop(runner, thread)
    assert health.capture.last_error
    if kind == "silent":
        assert "timed out after 1.5 s opening" in health.capture.last_error
    assert not health.capture.connected and health.capture.frames_decoded == 0
    assert list(runner.sightings) == []


def test_not_a_video_file_fails_clearly(registry: Registry, tmp_path: Path) -> None:
    target = CameraTarget(name="file", source=SourceConfig(str(not_a_video(tmp_path))))
    runner = build_runner(registry, Settings(), target)
    thread = start(runner)
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive()
    health = runner.health().capture
    assert health.state is CaptureState.FAILED
    assert health.last_error and "not a video file" in health.last_error
    result = CliRunner().invoke(
        cli_app(),
        [
            "watch",
            str(tmp_path / "camera.mp4"),
            "--notice-posted",
            "--data-dir",
            str(registry.data_dir),
        ],
    )
    assert result.exit_code == 2 and "not a video file" in result.output
