"""Cameras through the API (who may add what, snapshots, connection tests), statistics and
the settings view."""

from __future__ import annotations

import io
import socket

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import require_data


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_staff_add_network_cameras_but_only_admins_add_local_files(
    clients: dict[str, TestClient],
) -> None:
    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    staff, admin = clients["staff"], clients["admin"]
    refused = staff.post(
        "/api/v1/cameras",
        json={"name": "local-file", "url": str(clip), "public_notice_posted": True},
    )
    assert refused.status_code == 403
    added = admin.post(
        "/api/v1/cameras",
        json={
            "name": "stage",
            "url": str(clip),
            "public_notice_posted": True,
            "enabled": False,
        },
    )
    assert added.status_code == 201, added.text
    camera_id = added.json()["id"]
    shot = staff.get(f"/api/v1/cameras/{camera_id}/snapshot")
    assert shot.status_code == 200
    assert shot.headers["content-type"] == "image/jpeg"
    assert shot.headers["x-frame-width"] == "640"
    assert Image.open(io.BytesIO(shot.content)).size == (640, 360)
    test = staff.post(f"/api/v1/cameras/{camera_id}/test").json()
    assert test == {"ok": True, "message": "ok", "width": 640, "height": 360}
    # The audit log names the camera change and the notice flag.
    entries = clients["auditor"].get("/api/v1/audit", params={"action": "camera"}).json()
    added = [
        e
        for e in entries["items"]
        if e["action"] == "camera.add" and e["target_id"] == str(camera_id)
    ]
    # One entry, naming the account that added it and the public-notice flag.
    assert len(added) == 1
    admin_id = clients["admin"].get("/api/v1/auth/me").json()["user_id"]
    assert added[0]["actor"] == f"user:{admin_id}"
    assert '"public_notice_posted":true' in added[0]["details"]
    assert staff.delete(f"/api/v1/cameras/{camera_id}").status_code == 204
    assert staff.get(f"/api/v1/cameras/{camera_id}").status_code == 404


def test_an_unreachable_camera_is_reported_not_a_server_error(
    clients: dict[str, TestClient],
) -> None:
    staff = clients["staff"]
    url = f"rtsp://user:secret@127.0.0.1:{_closed_port()}/stream"
    # A camera on the server itself is an administrator's to add (cunan.capture.policy);
    # staff then test it.
    added = clients["admin"].post(
        "/api/v1/cameras",
        json={"name": "gone", "url": url, "public_notice_posted": False, "enabled": False},
    )
    assert added.status_code == 201
    camera = added.json()
    # The password never leaves the server.
    assert "secret" not in camera["url"]
    test = staff.post(f"/api/v1/cameras/{camera['id']}/test").json()
    assert test["ok"] is False
    assert "refused" in test["message"] and "secret" not in test["message"]
    shot = staff.get(f"/api/v1/cameras/{camera['id']}/snapshot")
    assert shot.status_code == 503
    assert "secret" not in shot.text
    patched = staff.patch(f"/api/v1/cameras/{camera['id']}", json={"public_notice_posted": True})
    assert patched.json()["public_notice_posted"] is True
    # Landlords see no cameras at all; auditors see but change nothing.
    assert clients["landlord_a"].get("/api/v1/cameras").status_code == 403
    assert clients["auditor"].get(f"/api/v1/cameras/{camera['id']}").status_code == 200
    refused = clients["auditor"].patch(f"/api/v1/cameras/{camera['id']}", json={"enabled": True})
    assert refused.status_code == 403


def test_statistics_and_settings_without_secrets(clients: dict[str, TestClient]) -> None:
    stats = clients["staff"].get("/api/v1/stats")
    assert stats.status_code == 200
    body = stats.json()
    assert body["tenants"] >= 2 and body["rental_houses"] >= 2
    assert clients["landlord_a"].get("/api/v1/stats").status_code == 403
    view = clients["auditor"].get("/api/v1/settings").json()
    assert view["duties"]["timezone"] == "Asia/Shanghai"
    assert set(view["notify"]) == {
        "include_face_data",
        "webhooks",
        "mqtt",
        "email",
        "wecom",
        "dingtalk",
    }
    assert "database_url" not in str(view)
