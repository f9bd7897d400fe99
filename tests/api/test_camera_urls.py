"""The camera address rule (cunan.capture.policy) through the API: staff may not make the
server connect to itself, link-local, unspecified or multicast addresses, nor open local
files or other FFmpeg protocols; administrators may; secrets never come back."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cunan.app import CunanApp
from cunan.capture.policy import CameraUrlRefusedError, check_camera_url, forbidden_address


def _own_lan_address() -> str | None:
    """A non-loopback address of this machine (the one a route out leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


STAFF_REFUSED = [
    "rtsp://127.0.0.1:554/s",
    "rtsp://127.8.9.10/s",
    "http://localhost:5432/",
    "http://[::1]:1883/",
    "http://[::ffff:127.0.0.1]:8000/api/v1/health",
    "http://169.254.169.254/latest/meta-data/",
    "rtsp://[fe80::1]/s",
    "http://0.0.0.0:8000/",
    "http://0.1.2.3:8000/",
    "rtsp://224.0.0.1/s",
    "rtsp://[ff02::1]/s",
    "/etc/passwd",
    "file:///etc/passwd",
    "concat:/etc/passwd|/etc/hostname",
    "subfile,,start,0,end,100,,:/etc/passwd",
    "ftp://192.0.2.10/x.mp4",
    "rtmp://192.0.2.10/live",
    "v4l2:///dev/video0",
    "rtsp:///no-host",
    "http://no-such-host.invalid/x",
]


@pytest.mark.parametrize("url", STAFF_REFUSED)
def test_the_rule_refuses_for_staff(url: str) -> None:
    with pytest.raises(CameraUrlRefusedError):
        check_camera_url(url, local_allowed=False)


def test_the_rule_allows_lan_cameras_and_admins() -> None:
    for url in ("rtsp://192.168.1.64:554/h264", "http://10.0.0.7/video.mjpg", "rtsps://8.8.8.8/"):
        check_camera_url(url, local_allowed=False)
    for url in ("rtsp://127.0.0.1:8554/relay", "/srv/clips/a.mp4", "v4l2:///dev/video0"):
        check_camera_url(url, local_allowed=True)
    own = _own_lan_address()
    if own is not None:
        assert forbidden_address(own) is not None  # the server's own LAN address
    assert forbidden_address("192.0.2.200") is None


def test_staff_cannot_add_such_cameras_and_nothing_is_stored(
    clients: dict[str, TestClient], core: CunanApp
) -> None:
    staff = clients["staff"]
    before = len(core.cameras.list())
    urls = [*STAFF_REFUSED]
    own = _own_lan_address()
    if own is not None:
        urls.append(f"rtsp://{own}:5432/s")
    for number, url in enumerate(urls):
        refused = staff.post(
            "/api/v1/cameras",
            json={"name": f"probe-{number}", "url": url, "public_notice_posted": True},
        )
        assert refused.status_code == 403, (url, refused.text)
        assert "passwd" not in refused.json().get("detail", "") or url.endswith("passwd")
    assert len(core.cameras.list()) == before
    # An administrator may add a relay on the server itself.
    added = clients["admin"].post(
        "/api/v1/cameras",
        json={
            "name": "relay",
            "url": "rtsp://127.0.0.1:8554/relay",
            "enabled": False,
            "public_notice_posted": False,
        },
    )
    assert added.status_code == 201, added.text
    assert clients["admin"].delete(f"/api/v1/cameras/{added.json()['id']}").status_code == 204


def test_a_host_name_is_checked_again_before_staff_connect(
    clients: dict[str, TestClient],
) -> None:
    # An administrator added it; a name may resolve elsewhere later (DNS rebinding), so a
    # staff member's connection test resolves it again and refuses the server itself.
    added = clients["admin"].post(
        "/api/v1/cameras",
        json={
            "name": "by-name",
            "url": "http://localhost:9/x.mjpg",
            "enabled": False,
            "public_notice_posted": False,
        },
    )
    assert added.status_code == 201
    camera_id = added.json()["id"]
    assert clients["staff"].post(f"/api/v1/cameras/{camera_id}/test").status_code == 403
    assert clients["staff"].get(f"/api/v1/cameras/{camera_id}/snapshot").status_code == 403
    # The administrator's own test goes ahead (and fails: nothing listens on port 9).
    assert clients["admin"].post(f"/api/v1/cameras/{camera_id}/test").json()["ok"] is False
    assert clients["admin"].delete(f"/api/v1/cameras/{camera_id}").status_code == 204


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers 401 to everything, quoting the request path back (as some cameras do)."""

    def do_GET(self) -> None:
        body = f"unauthorised: {self.path}".encode()
        self.send_response(401)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


SECRET = "Hunter2-Xyzzy"


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/stream?password={secret}",
        "http://127.0.0.1:{port}/stream?channel=1&PWD={secret}&x=1",
        "http://127.0.0.1:{port}/user=admin_password={secret}_channel=1_stream=0.sdp",
        "http://admin:{secret}@127.0.0.1:{port}/video.mjpg",
        "http://127.0.0.1:{port}/cgi;loginpas={secret}",
    ],
)
def test_passwords_in_camera_urls_never_come_back(
    clients: dict[str, TestClient],
    core: CunanApp,
    refusing_server: int,
    template: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = template.format(port=refusing_server, secret=SECRET)
    caplog.set_level(logging.DEBUG)
    admin, staff = clients["admin"], clients["staff"]
    added = admin.post(
        "/api/v1/cameras",
        json={
            "name": f"secretive-{uuid.uuid4().hex[:8]}",
            "url": url,
            "enabled": False,
            "public_notice_posted": True,
        },
    )
    assert added.status_code == 201, added.text
    camera_id = added.json()["id"]
    test = staff.post(f"/api/v1/cameras/{camera_id}/test").json()
    shot = staff.get(f"/api/v1/cameras/{camera_id}/snapshot")
    listing = staff.get("/api/v1/cameras")
    one = staff.get(f"/api/v1/cameras/{camera_id}")
    audit = clients["auditor"].get("/api/v1/audit", params={"action": "camera"})
    assert test["ok"] is False
    for answer in (str(test), shot.text, listing.text, one.text, audit.text, caplog.text):
        assert SECRET not in answer and SECRET.lower() not in answer.lower()
    with core.registry.database.read() as session:
        stored = session.execute(text("SELECT stream_url FROM cameras")).scalars().all()
        details = session.execute(text("SELECT details FROM audit_log")).scalars().all()
    assert not any(SECRET in (s or "") for s in [*stored, *details])
    assert admin.delete(f"/api/v1/cameras/{camera_id}").status_code == 204
