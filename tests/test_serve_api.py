"""The real thing on loopback: ``cunan serve`` as a process, driven over HTTP like a village office.

Log in, enrol a resident by photo upload, add a video-file camera with its notice posted, hear
the stranger's new case over server-sent events, resolve it by 补录, identify the new tenant
from another photo, stop with SIGTERM, and check that nothing was half-written. On SQLite (the
data dir's own file) and on the local PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cunan.config import Settings
from cunan.registry.datadir import open_registry
from tests.conftest import require_data
from tests.storage.dbfixtures import db_url
from tests.test_serve import alive, children_of

__all__ = ["db_url"]

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Correct-horse-battery-9"
#: Hang guards only: no timing is asserted.
DEADLINE_S = 240.0
ADDRESS = re.compile(r"\(serving\) (http://[^/\s]+)/")


def cunan(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cunan", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def photo(name: str) -> tuple[str, bytes, str]:
    path = require_data(f"face_recognition_examples/examples/{name}")
    kind = "image/png" if path.suffix == ".png" else "image/jpeg"
    return path.name, path.read_bytes(), kind


@pytest.fixture
def environment(db_url: str, tmp_path: Path) -> dict[str, str]:
    """``cunan``'s environment: a fresh data dir (with, on PostgreSQL, a fresh database) and
    this checkout's code ahead of any installed copy. On SQLite the first administrator comes
    from ``CUNAN_ADMIN_PASSWORD``; on PostgreSQL from the one-time set-up link ``serve`` prints,
    so both first-run paths are taken."""
    env = dict(
        os.environ,
        CUNAN_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    )
    # On SQLite the server makes its database in the data dir, as a village install does.
    env.pop("CUNAN_DATABASE_URL", None)
    env.pop("CUNAN_ADMIN_PASSWORD", None)
    if db_url.startswith("sqlite"):
        env["CUNAN_ADMIN_PASSWORD"] = PASSWORD
    else:
        env["CUNAN_DATABASE_URL"] = db_url
    return env


def set_up_administrator(client: httpx.Client, environment: dict[str, str], output: Path) -> None:
    """The administrator 'admin' with ``PASSWORD``, from the environment or the set-up link."""
    if "CUNAN_ADMIN_PASSWORD" in environment:
        assert "administrator 'admin' created" in output.read_text()
        return
    end = time.monotonic() + DEADLINE_S
    link = None
    while link is None and time.monotonic() < end:
        link = re.search(r"(http://\S+)/setup\?token=(\S+)", output.read_text())
        time.sleep(0.1)
    assert link is not None, "no set-up link printed"
    assert link.group(1) == str(client.base_url).rstrip("/")
    body = {"token": link.group(2), "username": "admin", "password": PASSWORD}
    made = client.post("/api/v1/auth/setup", json=body)
    assert made.status_code == 201, made.text
    # The link works once.
    assert client.post("/api/v1/auth/setup", json=body).status_code == 403


@pytest.fixture
def server(
    environment: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``cunan serve --host 127.0.0.1 --port 0`` on a data dir that does not exist yet, and the
    address it prints once it listens."""
    out = (tmp_path / "serve.out").open("w+")
    err = (tmp_path / "serve.err").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cunan",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--lease-s",
            "10",
        ],
        env=environment,
        stdout=out,
        stderr=err,
        text=True,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + DEADLINE_S
        found = None
        while found is None and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
            found = ADDRESS.search((tmp_path / "serve.out").read_text())
        assert found is not None, (tmp_path / "serve.err").read_text()[-3000:]
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        out.close()
        err.close()


def test_a_village_office_day_over_http(
    server: tuple[subprocess.Popen[str], str], environment: dict[str, str], tmp_path: Path
) -> None:
    proc, base = server
    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    # As a browser on one of this server's pages: its Origin is the server's own address.
    client = httpx.Client(base_url=base, timeout=60.0, headers={"origin": base})
    try:
        # 1. The first administrator, then log in; anonymous calls are refused.
        set_up_administrator(client, environment, tmp_path / "serve.out")
        assert client.get("/api/v1/people").status_code == 401
        login = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["user"]["role"] == "admin"

        # 2. A house with a room, and a resident enrolled by photo upload.
        landlord = client.post("/api/v1/landlords", json={"name": "房东 李"})
        assert landlord.status_code == 201, landlord.text
        house = client.post(
            "/api/v1/houses", json={"address": "桃源路 1号", "landlord_id": landlord.json()["id"]}
        )
        assert house.status_code == 201, house.text
        room = client.post(
            f"/api/v1/houses/{house.json()['id']}/rooms", json={"label": "201", "capacity": 2}
        )
        assert room.status_code == 201, room.text
        room_id = room.json()["id"]
        resident = client.post(
            "/api/v1/people",
            data={"name": "Barack Obama", "category": "resident", "consent_by": "网格员 王"},
            files=[("photos", photo("obama.jpg"))],
        )
        assert resident.status_code == 201, resident.text
        resident_id = resident.json()["id"]
        assert client.get(f"/api/v1/people/{resident_id}").json()["template_count"] == 1

        # 3. Listen for live events, then add the video camera with its notice posted: the
        #    stranger in the clip becomes a case, announced on the open stream.
        opened: dict[str, object] | None = None
        with client.stream("GET", "/api/v1/events", timeout=60.0) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            # A local video file is an administrator's camera (staff may add network ones).
            added = client.post(
                "/api/v1/cameras",
                json={"name": "stage", "url": str(clip), "public_notice_posted": True},
            )
            assert added.status_code == 201, added.text
            assert added.json()["enabled"] and added.json()["public_notice_posted"]
            end = time.monotonic() + DEADLINE_S
            event = ""
            for line in lines:
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:") and event == "case.opened":
                    opened = json.loads(line.removeprefix("data:"))
                    break
                assert time.monotonic() < end, "no case.opened event within the deadline"
                assert proc.poll() is None, (tmp_path / "serve.err").read_text()[-3000:]
        assert opened is not None
        case_id = opened["case_id"]
        assert isinstance(case_id, int)
        case = client.get(f"/api/v1/cases/{case_id}")
        assert case.status_code == 200, case.text
        assert case.json()["status"] == "open"
        assert case.json()["cameras"] == ["stage"]
        best = case.json()["best_sighting_ids"]
        assert best
        crop = client.get(f"/api/v1/cases/{case_id}/crops/{best[0]}")
        assert crop.status_code == 200
        assert crop.headers["content-type"] == "image/jpeg" and crop.content[:2] == b"\xff\xd8"

        # 4. On site he turns out to be a new tenant: 补录 with consent, into the room.
        enrolled = client.post(
            f"/api/v1/cases/{case_id}/enrol",
            data={"name": "Lin-Manuel Miranda", "room_id": str(room_id), "consent_by": "网格员 王"},
        )
        assert enrolled.status_code == 201, enrolled.text
        tenant_id = enrolled.json()["person_id"]
        closed = client.get(f"/api/v1/cases/{case_id}").json()
        assert closed["status"] == "closed"
        assert closed["person_id"] == tenant_id

        # 5. Another photo of him is now recognised, and the resident still is.
        for name, expected in (("lin-manuel-miranda.png", tenant_id), ("obama2.jpg", resident_id)):
            found = client.post("/api/v1/identify", files=[("image", photo(name))])
            assert found.status_code == 200, found.text
            assert [f["person_id"] for f in found.json()] == [expected], found.json()
        verdict = client.post("/api/v1/audit/verify").json()
        assert verdict["ok"] and verdict["entries"] > 0, verdict
        assert client.post("/api/v1/auth/logout").status_code == 204
    finally:
        client.close()

    # 6. SIGTERM: exit 0, and no camera process is left behind.
    camera_processes = children_of(proc.pid)
    assert camera_processes, "the camera worker's processes were not running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE_S) == 0, (tmp_path / "serve.err").read_text()[-3000:]
    end = time.monotonic() + 60
    while any(alive(pid) for pid in camera_processes) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [pid for pid in camera_processes if alive(pid)], "orphan processes"

    # 7. Nothing half-written: the audit chain verifies, and the registry, the case and the
    #    templates agree with what the API answered.
    verified = cunan(environment, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    settings = Settings(database_url=environment.get("CUNAN_DATABASE_URL"))
    registry = open_registry(Path(environment["CUNAN_DATA_DIR"]), settings)
    try:
        service = registry.service
        tenant = service.get_person(tenant_id)
        assert tenant.name == "Lin-Manuel Miranda"
        assert tenant.template_count >= 1 and tenant.has_valid_consent
        assert [t.room_id for t in service.tenancies_of(tenant_id)] == [room_id]
        assert service.get_person(resident_id).template_count == 1
    finally:
        registry.close()
    stats = cunan(environment, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    counts = json.loads(stats.stdout)
    assert (counts["residents"], counts["tenants"], counts["people_with_face_data"]) == (1, 1, 2)
    assert (counts["rental_houses"], counts["rental_rooms"]) == (1, 1)
    assert counts["verified_cases"] >= 1
    listed = cunan(environment, "cases", "list", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    # One JSON object a line.
    cases = {c["id"]: c for c in map(json.loads, listed.stdout.splitlines())}
    assert cases[case_id]["status"] == "closed"
    assert cases[case_id]["person_id"] == tenant_id
