"""The statistics page: the service's figures, cases per week and month, A4 print, XLSX."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import openpyxl
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.app_services import page
from cunan.authz import local_principal
from cunan.pipeline.store import SightingStore
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.stats.workbook import Percent, statistics_workbook
from cunan.storage.enums import PersonCategory
from tests.api.conftest import ORIGIN, PASSWORD, Village
from tests.sightings import new_sighting

#: A camera name a spreadsheet would run as a formula if it were written as is.
EVIL_CAMERA = '=HYPERLINK("http://evil.example","点我")'


def _page_login(api: FastAPI, username: str) -> TestClient:
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _new_case(core: CunanApp, seed: int, camera: str) -> int:
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    stored = store.add(
        new_sighting(_unit(seed), at=datetime.now(UTC), camera=camera, track_key=f"st{seed}")
    )
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None and outcome.opened
    return outcome.case_id


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([a-z_]+)">([^<]*)<', html))


def _village_figures(core: CunanApp, village: Village) -> None:
    """One resident, the fixture's two tenants (one of them with face data), two cases of
    which one is closed, all this week."""
    service = core.registry.service
    service.add_person(
        NewPerson(
            name="户籍居民",
            village_id=service.default_village_id(),
            category=PersonCategory.RESIDENT,
            non_face_note="ID card",
        )
    )
    tenant = village.tenant["a"]
    service.record_consent(
        tenant, ConsentInput(collected_by="网格员王", collected_at=datetime.now(UTC))
    )
    service.add_templates(tenant, [TemplateInput(vector=_unit(31), model_id="dlib_resnet_v1")])
    _new_case(core, 41, "east-gate")
    closed = _new_case(core, 42, EVIL_CAMERA)
    core.cases.false_alarm(closed, actor=local_principal("tests").actor)


def test_the_page_shows_the_services_figures_and_the_case_flow(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    _village_figures(core, village)
    browser = _page_login(api, "staff")
    page = browser.get("/statistics")
    assert page.status_code == 200
    figures = _figures(page.text)
    assert figures["residents"] == "1"
    assert figures["tenants"] == "2"
    assert figures["tenants_with_face_data"] == "1"
    assert figures["tenant_face_data_share"] == "50.0%"
    assert figures["rental_houses"] == "2" and figures["rental_rooms"] == "2"
    assert figures["open_cases"] == "1" and figures["verified_cases"] == "1"
    assert figures["overdue_departures"] == "0"
    assert "登记户籍居民" in page.text and "流动人口人脸采集比例" in page.text
    # The same numbers as the API's statistics (one service behind both).
    stats = browser.get("/api/v1/stats").json()
    assert figures["people_with_face_data"] == str(stats["people_with_face_data"])
    flow = re.findall(
        r"<tr><td>([\d-]+)</td><td>([\d-]+)</td><td class=\"num\">(\d+)</td>"
        r"<td class=\"num\">(\d+)</td></tr>",
        page.text.split('id="flow"', 1)[1],
    )
    assert len(flow) == 8
    assert [(o, c) for _, _, o, c in flow[-1:]] == [("2", "1")]
    assert all((o, c) == ("0", "0") for _, _, o, c in flow[:-1])
    monthly = browser.get("/statistics?period=month").text
    assert "每月新增与结案的案件" in monthly
    months = re.findall(r"<tr><td>(\d{4}-\d\d-01)</td>", monthly.split('id="flow"', 1)[1])
    assert len(months) == 12
    # The API gives the same flow.
    weeks = browser.get("/api/v1/stats/cases?period=week&count=8").json()
    assert (weeks[-1]["opened"], weeks[-1]["closed"]) == (2, 1)
    assert browser.get("/api/v1/stats/cases?period=day").status_code == 422
    # A camera's name is shown as text, never as markup.
    assert "=HYPERLINK(&#34;http://evil.example&#34;" in page.text


def test_the_xlsx_export_holds_the_figures_and_runs_no_formula(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    browser = _page_login(api, "auditor")
    answer = browser.get("/statistics.xlsx")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "attachment" in answer.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["统计数字", "案件", "各摄像头每日出现次数"]
    figures = {row[0]: row[1] for row in book["统计数字"].iter_rows(min_row=4, values_only=True)}
    assert figures["登记户籍居民"] == 1
    assert figures["在住流动人口（租客）"] == 2
    assert figures["已采集人脸的流动人口"] == 1
    assert figures["流动人口人脸采集比例"] == 0.5
    assert figures["出租房屋"] == 2 and figures["房间"] == 2
    assert figures["已核实案件（已结案并有结论）"] == 1
    stats = browser.get("/api/v1/stats").json()
    assert figures["核实用时中位数（小时）"] == stats["median_hours_to_verify"]
    share = next(c for c in book["统计数字"]["B"] if c.value == 0.5)
    assert share.number_format == "0.0%"
    cases = list(book["案件"].iter_rows(values_only=True))
    assert cases[0] == ("起", "止", "新增", "结案") and cases[-1][2:] == (2, 1)
    cameras = {row[0]: row[1:] for row in book["各摄像头每日出现次数"].iter_rows(values_only=True)}
    # The formula-looking camera name is inert text (a leading apostrophe), never a formula.
    assert "'" + EVIL_CAMERA in cameras and EVIL_CAMERA not in cameras
    assert sum(int(str(n)) for n in cameras["'" + EVIL_CAMERA]) == 1
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate)
    english = openpyxl.load_workbook(io.BytesIO(browser.get("/statistics.xlsx?lang=en").content))
    assert english.sheetnames[0] == "Figures"
    # Every download is audited like the registry's export: who, the format, the period.
    svc = core.services_for(local_principal("tests"))
    exports = svc.list_audit(page(0, 50), action="statistics.export").items
    assert len(exports) == 2
    assert {e.actor for e in exports} == {f"user:{village.users['auditor']}"}
    assert json.loads(exports[0].details) == {"format": "xlsx", "period": "week", "periods": 8}
    # The page itself is not an export.
    browser.get("/statistics")
    assert len(svc.list_audit(page(0, 50), action="statistics.export").items) == 2


def test_the_workbook_writer_neutralises_every_text_cell() -> None:
    data = statistics_workbook(
        [("a/b", [["=1+1", "+cmd|x", "-2", "@SUM(A1)", 3, Percent(0.25), None, "ok"]])]
    )
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None and sheet.title == "a b"
    values = [c.value for c in sheet[1]]
    assert values == ["'=1+1", "'+cmd|x", "'-2", "'@SUM(A1)", 3, 0.25, None, "ok"]
    assert sheet["F1"].number_format == "0.0%"


def test_the_report_prints_on_a4(api: FastAPI) -> None:
    browser = _page_login(api, "staff")
    page = browser.get("/statistics").text
    assert 'href="/static/cunan.css"' in page
    assert 'class="noprint"' in page and 'href="/statistics.xlsx?period=week"' in page
    css = browser.get("/static/cunan.css").text
    assert re.search(r"@page\s*\{\s*size:\s*A4", css)
    printed = css.split("@media print", 1)[1]
    assert ".noprint" in printed and ".bar" in printed and "display: none" in printed
    source = Path(__file__).resolve().parents[2] / "src/cunan/web/static/cunan.css"
    assert source.read_text() == css


def test_landlords_get_no_statistics(api: FastAPI) -> None:
    browser = _page_login(api, "landlord_a")
    for path in ("/statistics", "/statistics.xlsx", "/api/v1/stats/cases"):
        assert browser.get(path).status_code == 403, path
    assert 'href="/statistics"' not in browser.get("/portal").text
