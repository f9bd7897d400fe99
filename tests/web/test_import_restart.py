"""A roster checked on the import page can still be imported after the server restarts (the
upload is kept on disk under the data dir, not in memory), on both database engines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cunan.api.app import create_api
from cunan.app import CunanApp
from cunan.config import Settings
from cunan.registry.datadir import initialise
from tests.api.conftest import ORIGIN, PASSWORD
from tests.storage.dbfixtures import db_url

__all__ = ["db_url"]

HEADER = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期,非人脸核验\n"
ROSTER = (
    HEADER + "周一,,户籍,重启路1号,,,,,,看身份证\n" + "周二,,不是类别,重启路1号,,,,,,看身份证\n"
).encode("utf-8")
#: Hang guard only: no timing is asserted.
DEADLINE_S = 120.0


def _admin(app: CunanApp) -> TestClient:
    browser = TestClient(create_api(app), headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def _wait_page(browser: TestClient, url: str) -> str:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        if "import-progress" not in page.text:  # the progress page reloads itself until the end
            return page.text
        time.sleep(0.1)
    raise AssertionError(f"{url} did not finish")


@pytest.fixture
def data_dir(db_url: str, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    initialise(
        data,
        Settings(database_url=db_url),
        admin_username="admin",
        admin_password=PASSWORD,
        village_name="桃源村",
    ).close()
    return data


def test_a_checked_roster_is_imported_after_a_restart(db_url: str, data_dir: Path) -> None:
    settings = Settings(database_url=db_url)
    first = CunanApp.open(settings, data_dir)
    try:
        admin = _admin(first)
        started = admin.post(
            "/imports",
            files={"roster": ("名册.csv", ROSTER, "text/csv")},
            data={"create_places": "on"},
        )
        assert started.status_code == 303, started.text
        job_url = started.headers["location"]
        checked = _wait_page(admin, job_url)
        assert "检查完毕" in checked and f"{job_url}/run" in checked
    finally:
        first.close()
    kept = [p.name for p in (data_dir / "imports").iterdir()]
    assert kept == [job_url.rsplit("/", 1)[1]]

    second = CunanApp.open(settings, data_dir)
    try:
        admin = _admin(second)
        # The check's report and its "now import" button are back.
        report = _wait_page(admin, job_url)
        assert "检查完毕" in report and "不是类别" in report and f"{job_url}/run" in report
        real = admin.post(f"{job_url}/run")
        assert real.status_code == 303, real.text
        done = _wait_page(admin, real.headers["location"])
        assert "导入完成。" in done, done
        found = admin.get("/people", params={"name": "周一"}).text.split("</form>")[-1]
        assert "周一" in found
        # Used once: nothing left on disk, no second import.
        assert list((data_dir / "imports").iterdir()) == []
        assert admin.post(f"{job_url}/run").status_code == 404
    finally:
        second.close()
