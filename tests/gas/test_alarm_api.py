"""The gas alarm and gas case API on each engine: listing, acknowledging, stages, photos, roles,
problem JSON; the face case list, pages and statistics with a gas case beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from cunan.app import CunanApp
from tests.api.conftest import api, clients, core, db_url, village
from tests.gas.alarm_fixtures import Site, ingest, readings, seed

__all__ = ["api", "clients", "core", "db_url", "village"]

import pytest

JPEG = b"\xff\xd8\xff\xe0" + b"kitchen" * 50
PROBLEM = "application/problem+json"
#: The installation runs on the real clock: readings of a few minutes ago are fresh.
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture(scope="module")
def site(core: CunanApp, village: object) -> Site:
    database = core.registry.database
    site = seed(database, village_id=core.registry.service.default_village_id())
    ingest(core.gas_alarms, readings("DET-A1", NOW, [60, 60, 60]))
    ingest(core.gas_alarms, readings("DET-B1", NOW, [30, 30, 30]))
    return site


def _high(client: TestClient) -> dict[str, object]:
    body = client.get("/api/v1/gas/alarms", params={"type": "high"}).json()
    assert body["total"] == 1
    item: dict[str, object] = body["items"][0]
    return item


def test_alarm_list_filters_and_detail(clients: dict[str, TestClient], site: Site) -> None:
    auditor = clients["auditor"]
    everything = auditor.get("/api/v1/gas/alarms")
    assert everything.status_code == 200
    assert everything.json()["total"] == 3
    high = _high(auditor)
    assert (high["serial"], high["label"], high["business_name"]) == (
        "DET-A1",
        "高浓度报警",
        "川味小馆",
    )
    several = auditor.get("/api/v1/gas/alarms", params=[("type", "high"), ("type", "low")])
    assert several.json()["total"] == 3
    only_b = auditor.get("/api/v1/gas/alarms", params={"business_id": site.business["b"]})
    assert [a["serial"] for a in only_b.json()["items"]] == ["DET-B1"]
    later = auditor.get(
        "/api/v1/gas/alarms", params={"since": (NOW + timedelta(hours=1)).isoformat()}
    )
    assert later.json()["total"] == 0
    detail = auditor.get(f"/api/v1/gas/alarms/{high['id']}").json()
    assert detail["alarm"]["id"] == high["id"]
    assert [e["action"] for e in detail["events"]] == ["raised"]
    bad = auditor.get("/api/v1/gas/alarms", params={"type": "smoke"})
    assert 400 <= bad.status_code < 500 and bad.headers["content-type"] == PROBLEM
    naive = auditor.get("/api/v1/gas/alarms", params={"since": "2026-03-02T03:00:00"})
    assert naive.status_code == 422 and naive.headers["content-type"] == PROBLEM
    missing = auditor.get("/api/v1/gas/alarms/987654")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_who_may_read_and_handle_gas_alarms(clients: dict[str, TestClient], site: Site) -> None:
    high = _high(clients["admin"])
    assert clients["landlord_a"].get("/api/v1/gas/alarms").status_code == 403
    refused = clients["auditor"].post(f"/api/v1/gas/alarms/{high['id']}/acknowledge")
    assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    done = clients["staff"].post(f"/api/v1/gas/alarms/{high['id']}/acknowledge")
    assert done.status_code == 200
    assert done.json()["alarm"]["acknowledged_by"].startswith("user:")
    again = clients["staff"].post(f"/api/v1/gas/alarms/{high['id']}/acknowledge")
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    unacked = clients["auditor"].get("/api/v1/gas/alarms", params={"acknowledged": "false"})
    assert high["id"] not in [a["id"] for a in unacked.json()["items"]]


def test_gas_case_stages_and_photos(clients: dict[str, TestClient], site: Site) -> None:
    staff = clients["staff"]
    case_id = _high(staff)["case_id"]
    shown = staff.get(f"/api/v1/gas/cases/{case_id}").json()
    assert (shown["stage"], shown["next_stages"]) == ("unresponded", ["responded"])
    wrong = staff.post(f"/api/v1/gas/cases/{case_id}/stage", json={"stage": "done"})
    assert wrong.status_code == 409 and wrong.headers["content-type"] == PROBLEM
    assert "未响应" in wrong.json()["detail"]
    moved = staff.post(
        f"/api/v1/gas/cases/{case_id}/stage", json={"stage": "responded", "note": "已到场"}
    )
    assert moved.status_code == 200 and moved.json()["stage_label"] == "已响应"
    refused = clients["auditor"].post(
        f"/api/v1/gas/cases/{case_id}/stage", json={"stage": "resolved"}
    )
    assert refused.status_code == 403
    uploaded = staff.post(
        f"/api/v1/gas/cases/{case_id}/photos", files={"photo": ("site.jpg", JPEG, "image/jpeg")}
    )
    assert uploaded.status_code == 201, uploaded.text
    photo_id = uploaded.json()["id"]
    got = clients["auditor"].get(f"/api/v1/gas/cases/{case_id}/photos/{photo_id}")
    assert got.status_code == 200 and got.content == JPEG
    assert got.headers["content-type"] == "image/jpeg"
    not_image = staff.post(
        f"/api/v1/gas/cases/{case_id}/photos", files={"photo": ("x.jpg", b"hello", "image/jpeg")}
    )
    assert not_image.status_code == 422 and not_image.headers["content-type"] == PROBLEM
    closed = staff.post(f"/api/v1/gas/cases/{case_id}/stage", json={"stage": "resolved"}).json()
    assert (closed["status"], [s["to_stage"] for s in closed["steps"]]) == (
        "closed",
        ["unresponded", "responded", "resolved"],
    )


def test_the_face_case_list_pages_and_statistics_with_a_gas_case(
    clients: dict[str, TestClient], site: Site
) -> None:
    admin = clients["admin"]
    case_id = _high(admin)["case_id"]
    listed = admin.get("/api/v1/cases")
    assert listed.status_code == 200
    assert case_id not in [c["id"] for c in listed.json()["items"]]
    assert admin.get(f"/api/v1/cases/{case_id}").status_code == 404
    assert admin.get("/cases").status_code == 200
    assert admin.get(f"/cases/{case_id}").status_code == 404
    assert admin.get("/").status_code == 200
    stats = admin.get("/api/v1/stats/cases")
    assert stats.status_code == 200
    assert admin.get("/api/v1/stats").status_code == 200


def test_online_rate(clients: dict[str, TestClient], site: Site) -> None:
    now = datetime.now(UTC)
    got = clients["auditor"].get(
        "/api/v1/gas/online-rate",
        params={"business_id": site.business["a"], "year": now.year, "month": now.month},
    )
    assert got.status_code == 200
    body = got.json()
    assert {d["serial"] for d in body["devices"]} == {"DET-A1", "DET-A2", "VAL-A1"}
    assert 0.0 < body["rate"] < 1.0  # DET-A1 reported minutes ago, the others never
    assert (
        clients["landlord_a"]
        .get("/api/v1/gas/online-rate", params={"business_id": 1, "year": 2026, "month": 1})
        .status_code
        == 403
    )
