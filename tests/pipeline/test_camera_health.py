"""Camera health end to end: a real reader's state reaches the database, changes are
announced once each (live.camera_health), and a real camera process reports its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from cunan.capture import BackoffPolicy, CameraReader, CaptureState, SourceConfig
from cunan.pipeline.camera_health import (
    HEALTH_EVENT,
    NOT_RUNNING,
    CameraHealthStore,
    HealthReporter,
    shown_state,
)
from cunan.pipeline.store import CameraStore, EventOutbox
from cunan.registry.datadir import Registry
from cunan.storage.database import Database
from tests.capture.fake_servers import closed_port
from tests.cli_helpers import registry
from tests.storage.dbfixtures import database, db_url
from tests.videos import small_video

__all__ = ["database", "db_url", "registry"]

#: Only ever a deadline on a shared machine, never an assertion on time.
DEADLINE_S = 60.0


def _until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"waited {DEADLINE_S:.0f} s for {what}")
        time.sleep(0.05)


def _health_events(database: Database) -> list[dict[str, object]]:
    return [e.payload for e in EventOutbox(database).live_after(0) if e.kind == HEALTH_EVENT]


def test_a_wrong_url_is_recorded_as_failing_once_not_at_every_retry(database: Database) -> None:
    # The password sits in the user part and in the path: neither may reach the record.
    url = f"rtsp://admin:s3cret@127.0.0.1:{closed_port()}/user=admin_password=s3cret"
    cameras = CameraStore(database)
    camera_id = cameras.add("gate", "rtsp://127.0.0.1/placeholder", public_notice_posted=True)
    store = CameraHealthStore(database)
    policy = BackoffPolicy(initial_s=0.05, max_s=0.1, jitter=0.0)
    with CameraReader("gate", SourceConfig(url), backoff=policy) as reader:
        reporter = HealthReporter(
            store, camera_id, "gate", reader.health, stream_url=url, poll_s=0.02
        )
        reporter.start()
        try:
            _until(lambda: store.view(camera_id).state == "failing", "the camera shown failing")
            attempts_then = reader.health().connect_attempts
            _until(
                lambda: reader.health().connect_attempts >= attempts_then + 5,
                "five more attempts",
            )
        finally:
            reader.stop()  # as the camera process does: the reader, then the reporter
            reporter.stop()
    view = store.view(camera_id)
    assert view.state == "stopped"  # stopped on request, and recorded on the way out
    assert view.consecutive_failures >= 2 and view.last_frame_at is None
    assert view.last_error and "127.0.0.1" in view.last_error
    assert "s3cret" not in view.last_error
    states = [e["state"] for e in _health_events(database)]
    # Each change once; the retries in between ("connecting" again and again) are not news.
    assert states.count("failing") == 1, states
    assert states[-1] == "stopped" and len(states) <= 4, states
    assert all(
        e["camera_id"] == camera_id and e["camera"] == "gate" for e in _health_events(database)
    )
    assert all("s3cret" not in str(e["last_error"]) for e in _health_events(database))


def test_a_video_file_is_recorded_streaming_then_stopped(
    database: Database, tmp_path: Path
) -> None:
    clip = small_video(tmp_path / "clip.mp4", frames=40, fps=10)
    camera_id = CameraStore(database).add("file", str(clip), public_notice_posted=True)
    store = CameraHealthStore(database)
    seen: list[str] = []
    with CameraReader("file", SourceConfig(str(clip))) as reader:
        reporter = HealthReporter(store, camera_id, "file", reader.health, poll_s=0.02)
        reporter.start()

        def drain() -> None:
            for _ in reader.frames(idle_timeout=DEADLINE_S):
                seen.append(store.view(camera_id).state)

        consumer = threading.Thread(target=drain, daemon=True)
        consumer.start()
        consumer.join(DEADLINE_S)
        reader.stop()
        reporter.stop()
    assert "streaming" in seen
    view = store.view(camera_id)
    assert view.state == "stopped" and view.last_frame_at is not None and not view.last_error
    states = [e["state"] for e in _health_events(database)]
    assert "streaming" in states and states[-1] == "stopped", states
    assert states.count("streaming") == 1  # refreshed rows are not announced again


def test_an_unreported_or_silent_camera_reads_as_not_running(database: Database) -> None:
    from datetime import UTC, datetime, timedelta

    camera_id = CameraStore(database).add("quiet", "rtsp://127.0.0.1/x", public_notice_posted=True)
    store = CameraHealthStore(database)
    assert store.view(camera_id).state == NOT_RUNNING
    with CameraReader("quiet", SourceConfig(f"rtsp://127.0.0.1:{closed_port()}/x")) as reader:
        _until(lambda: reader.health().consecutive_failures >= 1, "a failed attempt")
        store.report(camera_id, "quiet", reader.health())
    assert store.view(camera_id).state in ("backing_off", "failing", "connecting")
    # A process killed without a word leaves its last report: after a while it means nothing.
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert store.views(now=later)[camera_id].state == NOT_RUNNING
    # Removing the camera removes its health.
    CameraStore(database).remove(camera_id)
    assert camera_id not in store.views()


def test_a_retry_after_failures_is_shown_as_the_failure_not_as_connecting() -> None:
    from dataclasses import replace

    with CameraReader("x", SourceConfig(f"rtsp://127.0.0.1:{closed_port()}/x")) as reader:
        health = reader.health()
    connecting = replace(health, state=CaptureState.CONNECTING)
    assert shown_state(replace(connecting, consecutive_failures=0)) is CaptureState.CONNECTING
    assert shown_state(replace(connecting, consecutive_failures=1)) is CaptureState.BACKING_OFF
    assert shown_state(replace(connecting, consecutive_failures=3)) is CaptureState.FAILING


def test_a_real_camera_process_reports_a_wrong_url_as_failing(registry: Registry) -> None:
    """The supervisor's camera process (spawned, faces loaded) on a closed port: the server
    side reads "failing" from the database, and `cunan cameras list` prints it."""
    from cunan.pipeline.cli import cameras_app
    from cunan.pipeline.supervisor import CameraSupervisor
    from tests.cli_helpers import invoke_on

    url = f"rtsp://127.0.0.1:{closed_port()}/x"
    camera_id = CameraStore(registry.database).add("wrong", url, public_notice_posted=True)
    supervisor = CameraSupervisor(registry.data_dir)
    store = CameraHealthStore(registry.database)
    try:
        supervisor.ensure({camera_id})
        _until(lambda: store.view(camera_id).state == "failing", "failing from the process")
        code, output = invoke_on(cameras_app, registry, "list")
        assert code == 0 and "failing" in output, output
    finally:
        supervisor.stop_all()
    assert store.view(camera_id).state == "stopped"


def test_a_crashed_camera_process_is_recorded_by_the_supervisor(registry: Registry) -> None:
    """A process that dies at once cannot report itself: the supervisor records it."""
    from cunan.pipeline.supervisor import CameraSupervisor
    from tests.pipeline.lease_worker import crashing_camera

    camera_id = CameraStore(registry.database).add("crashy", "rtsp://127.0.0.1/x")
    store = CameraHealthStore(registry.database)
    supervisor = CameraSupervisor(
        registry.data_dir, target=crashing_camera, backoff_initial_s=60.0, health=store
    )
    before = EventOutbox(registry.database).last_id()
    try:
        supervisor.ensure({camera_id})
        _until(lambda: not supervisor.running(), "the camera process to crash")
        supervisor.ensure({camera_id})  # notices the crash, schedules the restart
    finally:
        supervisor.stop_all()
    view = store.view(camera_id)
    assert view.state == "backing_off"
    assert view.last_error and "exited (code 3)" in view.last_error
    events = [
        e for e in EventOutbox(registry.database).live_after(before) if e.kind == HEALTH_EVENT
    ]
    assert [e.payload["state"] for e in events] == ["backing_off"]


def test_watch_on_a_registered_wrong_url_shows_failing_in_cameras_list(tmp_path: Path) -> None:
    """Issue 13's "also seen": `cunan watch` on a wrong URL keeps retrying, and the camera
    is shown failing in `cunan cameras list` meanwhile (another terminal), then stopped."""
    import json
    import os
    import signal
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CUNAN_") or k == "CUNAN_CACHE_DIR"
    }
    env["CUNAN_ADMIN_PASSWORD"] = "Correct-horse-battery-9"
    data = str(tmp_path / "data")

    def cunan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cunan", *args, "--data-dir", data],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    assert cunan("init").returncode == 0
    url = f"rtsp://127.0.0.1:{closed_port()}/wrong"
    assert cunan("cameras", "add", "gate", url, "--notice-posted").returncode == 0

    def state() -> str:
        listed = cunan("cameras", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        return str(json.loads(listed.stdout)[0]["health"]["state"])

    assert state() == "not_running"
    # Polled in the database itself (a command per look would be slow); checked with the
    # command once it is there.
    from cunan.storage.database import sqlite_url

    database = Database.open(sqlite_url(tmp_path / "data"))
    store = CameraHealthStore(database)
    watch = subprocess.Popen(
        [sys.executable, "-m", "cunan", "watch", "gate", "--data-dir", data],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _until(lambda: store.view(1).state == "failing", "the camera recorded as failing")
        database.dispose()
        assert state() == "failing"
        table = cunan("cameras", "list")
        assert "failing" in table.stdout and "connection refused" in table.stderr
    finally:
        watch.send_signal(signal.SIGTERM)
        _, err = watch.communicate(timeout=120)
    assert watch.returncode == 0, err
    assert err.count("connection refused") == 1  # one warning, not one per retry
    assert state() == "stopped"
