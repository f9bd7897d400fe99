"""``POST /api/v1/faces/compare``: the 1:1 comparison ``cunan faces compare`` makes, over the
API: decision, distance, how sure; permitted and audited like identify (both engines)."""

from __future__ import annotations

import io
import json

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import require_data


def _upload(name: str) -> tuple[str, bytes, str]:
    path = require_data(f"face_recognition_examples/examples/{name}")
    return path.name, path.read_bytes(), "image/jpeg"


def _blank() -> tuple[str, bytes, str]:
    out = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 120, 120)).save(out, format="JPEG")
    return "blank.jpg", out.getvalue(), "image/jpeg"


def test_compare_two_photos(clients: dict[str, TestClient]) -> None:
    staff = clients["staff"]
    same = staff.post(
        "/api/v1/faces/compare",
        files={"image_a": _upload("obama.jpg"), "image_b": _upload("obama2.jpg")},
    )
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["decision"] == "same_person" and body["same_person"] is True
    assert 0 <= body["distance"] <= body["threshold"]
    assert body["faces_found"] == [1, 1]
    # The population-aware operating point of faces compare (faces.population east_asian).
    assert body["population"] == "east_asian"
    assert body["population_distance"] <= body["population_threshold"]
    assert body["false_match_rate"] is not None and "不同的人" in body["certainty"]
    other = staff.post(
        "/api/v1/faces/compare",
        files={"image_a": _upload("obama.jpg"), "image_b": _upload("biden.jpg")},
    ).json()
    assert other["decision"] == "different_people" and other["same_person"] is False
    assert other["distance"] > same.json()["distance"]
    assert "同一个人" in other["certainty"]


def test_compare_refusals_and_audit(clients: dict[str, TestClient]) -> None:
    staff = clients["staff"]
    faceless = staff.post(
        "/api/v1/faces/compare", files={"image_a": _upload("obama.jpg"), "image_b": _blank()}
    )
    assert faceless.status_code == 422 and "image_b" in faceless.json()["detail"]
    broken = staff.post(
        "/api/v1/faces/compare",
        files={"image_a": ("x.jpg", b"not an image", "image/jpeg"), "image_b": _blank()},
    )
    assert broken.status_code == 422 and "image_a" in broken.json()["detail"]
    files = {"image_a": _upload("obama.jpg"), "image_b": _upload("obama2.jpg")}
    assert clients["landlord_a"].post("/api/v1/faces/compare", files=files).status_code == 403
    assert clients["auditor"].post("/api/v1/faces/compare", files=files).status_code == 403
    admin = clients["admin"]
    assert admin.post("/api/v1/faces/compare", files=files).status_code == 200
    entries = clients["auditor"].get("/api/v1/audit", params={"action": "face.compare"}).json()
    admin_id = admin.get("/api/v1/auth/me").json()["user_id"]
    mine = [e for e in entries["items"] if e["actor"] == f"user:{admin_id}"]
    assert len(mine) == 1
    details = json.loads(mine[0]["details"])
    assert details == {"faces": [1, 1], "same_person": True}
