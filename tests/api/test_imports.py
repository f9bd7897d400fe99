"""Roster import over the API: upload a roster and a ZIP of photos, dry run first, follow the
background job, then import; unsafe archives are refused before anything is written."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Village
from tests.conftest import require_data

pytestmark = pytest.mark.slow

#: Hang guard only: no timing is asserted.
DEADLINE_S = 300.0
HEADER = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期\n"


def _wait(client: TestClient, job_id: str) -> dict[str, object]:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        status = client.get(f"/api/v1/imports/{job_id}").json()
        if status["state"] in ("done", "failed"):
            return dict(status)
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not finish")


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_dry_run_then_import_with_a_photo_archive(
    clients: dict[str, TestClient], village: Village
) -> None:
    examples = require_data("face_recognition_examples/examples")
    staff = clients["staff"]
    address = "幸福路a号"
    roster = (
        HEADER
        + f"张三,,外来租住,{address},101,2026-01-05,obama.jpg,网格员王,2026-01-05\n"
        + f"李四,,外来租住,{address},101,2026-01-05,missing.jpg,网格员王,2026-01-05\n"
    ).encode("utf-8")
    archive = _zip({"obama.jpg": (examples / "obama.jpg").read_bytes()})
    files = {
        "roster": ("roster.csv", roster, "text/csv"),
        "photos": ("photos.zip", archive, "application/zip"),
    }
    started = staff.post("/api/v1/imports", files=files, data={"dry_run": "true"})
    assert started.status_code == 202, started.text
    report = _wait(staff, started.json()["job_id"])
    assert report["state"] == "done", report
    assert report["counts"]["valid"] == 1 and report["counts"]["failed"] == 1
    problems = report["problems"]
    assert isinstance(problems, list) and problems[0]["row"] == 3
    assert staff.get("/api/v1/people", params={"name": "张三"}).json()["total"] == 0
    real = staff.post("/api/v1/imports", files=files, data={"dry_run": "false"})
    report = _wait(staff, real.json()["job_id"])
    assert report["counts"]["imported"] == 1, report
    found = staff.get("/api/v1/people", params={"name": "张三"}).json()
    assert found["total"] == 1 and found["items"][0]["address"] == address
    # Auditors and landlords import nothing.
    for role in ("auditor", "landlord_a"):
        assert clients[role].post("/api/v1/imports", files=files).status_code == 403


@pytest.mark.parametrize(
    "entries",
    [{"../evil.jpg": b"x"}, {"/abs/evil.jpg": b"x"}],
    ids=["parent", "absolute"],
)
def test_unsafe_photo_archives_are_refused(
    clients: dict[str, TestClient], entries: dict[str, bytes]
) -> None:
    files = {
        "roster": ("roster.csv", HEADER.encode(), "text/csv"),
        "photos": ("photos.zip", _zip(entries), "application/zip"),
    }
    refused = clients["staff"].post("/api/v1/imports", files=files)
    assert refused.status_code == 422
    assert "unsafe path" in refused.json()["detail"]


def test_a_damaged_archive_and_a_binary_roster_are_clear_errors(
    clients: dict[str, TestClient],
) -> None:
    staff = clients["staff"]
    bad_zip = staff.post(
        "/api/v1/imports",
        files={"roster": ("r.csv", HEADER.encode()), "photos": ("p.zip", b"not a zip")},
    )
    assert bad_zip.status_code == 422 and "ZIP" in bad_zip.json()["detail"]
    binary = staff.post("/api/v1/imports", files={"roster": ("r.csv", b"\x00\x01\x02")})
    assert binary.status_code == 422
    assert staff.get("/api/v1/imports/nope").status_code == 404
