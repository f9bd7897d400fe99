"""The gas registry API: scoped for business and maintainer accounts, problems, import upload."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from cunan.app import CunanApp
from tests.api.conftest import Village, api, clients, core, db_url, village

__all__ = ["api", "clients", "core", "db_url", "village"]


def _business(staff: TestClient, name: str, licence: str) -> int:
    made = staff.post("/api/v1/gas/businesses", json={"name": name, "licence_no": licence})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_business_and_maintainer_accounts_see_only_theirs(
    clients: dict[str, TestClient], village: Village, core: CunanApp
) -> None:
    staff, admin = clients["staff"], clients["admin"]
    mine = _business(staff, "王记面馆", "API-LIC-1")
    other = _business(staff, "李记烧烤", "API-LIC-2")
    linked = staff.put(
        f"/api/v1/gas/businesses/{mine}/contacts/owner",
        json={"name": "王老板", "phone": "13800000000", "user_id": village.users["business"]},
    )
    assert linked.status_code == 204, linked.text
    assert (
        staff.put(
            f"/api/v1/gas/businesses/{mine}/contacts/maintainer_b",
            json={"name": "维保", "user_id": village.users["maintainer"]},
        ).status_code
        == 204
    )
    model = staff.post("/api/v1/gas/models", json={"code": "API-M1", "kind": "detector"})
    assert model.status_code == 201, model.text
    devices = {}
    for key, business in (("mine", mine), ("other", other)):
        made = staff.post(
            "/api/v1/gas/devices",
            json={
                "business_id": business,
                "serial": f"API-{key}",
                "kind": "detector",
                "model_id": model.json()["id"],
                "installed_on": "2025-05-01",
            },
        )
        assert made.status_code == 201, made.text
        devices[key] = made.json()["id"]

    for who in ("business", "maintainer"):
        client = clients[who]
        listed = client.get("/api/v1/gas/businesses").json()
        assert [b["id"] for b in listed["items"]] == [mine] and listed["total"] == 1
        assert client.get(f"/api/v1/gas/businesses/{mine}").status_code == 200
        hidden = client.get(f"/api/v1/gas/businesses/{other}")
        missing = client.get("/api/v1/gas/businesses/987654")
        # Another business answers exactly like a missing one.
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["title"] == missing.json()["title"]
        assert hidden.headers["content-type"] == "application/problem+json"
        assert [d["id"] for d in client.get("/api/v1/gas/devices").json()["items"]] == [
            devices["mine"]
        ]
        assert client.get(f"/api/v1/gas/devices/{devices['other']}").status_code == 404
        # Read only: no edits, no credentials.
        assert (
            client.patch(f"/api/v1/gas/businesses/{mine}", json={"category": "x"}).status_code
            == 403
        )
        assert client.post(f"/api/v1/gas/devices/{devices['mine']}/credential").status_code == 403
    # The auditor reads everything and changes nothing.
    auditor = clients["auditor"]
    assert auditor.get(f"/api/v1/gas/businesses/{other}").status_code == 200
    assert auditor.delete(f"/api/v1/gas/devices/{devices['other']}").status_code == 403

    detail = staff.get(f"/api/v1/gas/devices/{devices['mine']}").json()
    assert (detail["low_lel"], detail["high_lel"], detail["replacement_due"]) == (
        25.0,
        50.0,
        "2028-05-01",
    )
    issued = staff.post(f"/api/v1/gas/devices/{devices['mine']}/credential")
    assert issued.status_code == 201 and issued.json()["secret"].startswith("gasdev_")
    from cunan.gas.registry import verify_device_credential

    database = core.registry.database
    assert (
        verify_device_credential(database, "API-mine", issued.json()["secret"]) == (devices["mine"])
    )
    # A problem names the record at fault.
    clash = staff.post(
        "/api/v1/gas/devices",
        json={"business_id": other, "serial": "API-mine", "kind": "detector"},
    )
    assert clash.status_code == 409 and "API-mine" in clash.json()["detail"]
    wrong = admin.put(
        f"/api/v1/gas/businesses/{other}/contacts/owner",
        json={"name": "x", "user_id": village.users["maintainer"]},
    )
    assert wrong.status_code == 422 and "business" in wrong.json()["detail"]


def test_import_upload_gbk_csv_dry_run_then_import(clients: dict[str, TestClient]) -> None:
    staff = clients["staff"]
    text = io.StringIO()
    csv.writer(text).writerows(
        [["商户名称", "许可证号", "类别"], ["上传火锅", "UP-1", "火锅"], ["", "UP-2", ""]]
    )
    body = text.getvalue().encode("gbk")
    files = {"file": ("商户.csv", body, "text/csv")}
    checked = staff.post("/api/v1/gas/imports/businesses", files=files)
    assert checked.status_code == 200, checked.text
    result = checked.json()
    assert result["dry_run"] is True
    assert result["counts"] == {"imported": 0, "unchanged": 0, "failed": 1, "valid": 1}
    assert result["problems"] == [{"row": 3, "column": "商户名称", "reason": "必填 (required)"}]
    assert staff.get("/api/v1/gas/businesses", params={"licence_no": "UP-1"}).json()["total"] == 0
    done = staff.post(
        "/api/v1/gas/imports/businesses", files=files, params={"dry_run": "false"}
    ).json()
    assert done["counts"]["imported"] == 1
    assert staff.get("/api/v1/gas/businesses", params={"licence_no": "UP-1"}).json()["total"] == 1
    empty = staff.post(
        "/api/v1/gas/imports/devices", files={"file": ("x.csv", b"a,b\n", "text/csv")}
    )
    assert empty.status_code == 422 and "x.csv" in empty.json()["detail"]
