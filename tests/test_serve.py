"""``cunan serve`` as a real process: a file camera's unknown sighting becomes a case, and
SIGTERM stops everything cleanly (exit 0, no camera process left)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cunan.cases.service import CaseService
from cunan.config import Settings
from cunan.registry.datadir import open_registry
from tests.conftest import require_data

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: Hang guards only: no timing is asserted.
DEADLINE_S = 240.0

#: ``cunan serve`` as the lead mounts it, without depending on the mount.
SERVE = (
    "import typer; from cunan.serve import serve_command; "
    "app = typer.Typer(); app.command()(serve_command); app()"
)


def cunan(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cunan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_serve_turns_an_unknown_sighting_into_a_case_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    data = tmp_path / "data"
    received: list[dict[str, object]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"event": self.headers.get("X-CunAn-Event"), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    webhooks = [{"url": f"http://127.0.0.1:{hook.server_port}/alerts", "secret": "s3cret"}]
    env = dict(
        os.environ,
        CUNAN_DATA_DIR=str(data),
        CUNAN_ADMIN_PASSWORD="Correct-horse-battery-9",
        CUNAN_NOTIFY__WEBHOOKS=json.dumps(webhooks),
        # The checkout's own code in the child processes too, installed or not.
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )
    cunan(env, "init")
    cunan(env, "cameras", "add", "stage", str(clip), "--notice-posted")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--lease-s", "10", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        registry = open_registry(data, Settings())
        try:
            cases = CaseService(registry.database, registry.service.cipher, registry.service)
            end = time.monotonic() + DEADLINE_S
            views = cases.list_cases()
            while not views and time.monotonic() < end and proc.poll() is None:
                time.sleep(0.5)
                views = cases.list_cases()
        finally:
            registry.close()
        assert proc.poll() is None, proc.communicate()[1]
        assert views, "no case within the deadline"
        assert views[0].cameras == ("stage",) or list(views[0].cameras) == ["stage"]
        camera_processes = children_of(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, stderr
        assert camera_processes  # the camera worker's processes (and their helpers)
        end = time.monotonic() + 60
        while any(alive(pid) for pid in camera_processes) and time.monotonic() < end:
            time.sleep(0.1)
        assert not [pid for pid in camera_processes if alive(pid)], "orphan processes"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    listed = cunan(env, "cases", "list", "--json")
    assert '"status": "open"' in listed
    hook.shutdown()
    # The new case was announced to the configured webhook, without face data.
    assert received, "no alert reached the webhook"
    payload = json.loads(received[0]["body"])  # type: ignore[arg-type]
    text = json.dumps(payload)
    assert "crop" not in text and "embedding" not in text
