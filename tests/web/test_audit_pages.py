"""The audit pages: the log with filters and pages, the chain check in words, the privacy
report's numbers against what was done; auditors and admins only, and no edit control."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.audit import user_actor
from cunan.authz import Principal
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.storage.enums import PersonCategory, UserRole
from tests.api.conftest import ORIGIN, PASSWORD, Village
from tests.audit.test_tamper import attacker


def _page_login(api: FastAPI, username: str) -> TestClient:
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def _today(core: CunanApp) -> date:
    return datetime.now(UTC).astimezone(core.settings.duties.zone).date()


def _posts(html: str) -> list[str]:
    """The actions of every form that changes something (method post)."""
    return re.findall(r'<form[^>]*method="post"[^>]*action="([^"]*)"', html)


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_only_auditors_and_admins_open_the_audit_pages(api: FastAPI) -> None:
    for name in ("staff", "landlord_a"):
        browser = _page_login(api, name)
        for path in ("/audit", "/audit/verify", "/audit/privacy"):
            answer = browser.get(path)
            assert answer.status_code == 403, (name, path)
            assert "无权" in answer.text
        assert 'href="/audit"' not in browser.get("/account").text
    for name in ("auditor", "admin"):
        browser = _page_login(api, name)
        for path in ("/audit", "/audit/verify", "/audit/privacy"):
            assert browser.get(path).status_code == 200, (name, path)


def test_the_auditor_finds_no_edit_control(api: FastAPI) -> None:
    browser = _page_login(api, "auditor")
    for path in ("/audit", "/audit/verify", "/audit/privacy", "/statistics"):
        page = browser.get(path)
        assert page.status_code == 200, path
        # Only the logout button posts anything.
        assert _posts(page.text) == ["/logout"], path
    assert 'href="/audit"' in page.text and 'href="/audit/privacy"' in page.text


def test_the_log_filters_by_action_actor_days_and_record_in_sql(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    staff = TestClient(api, headers={"origin": ORIGIN})
    assert staff.post(
        "/api/v1/auth/login", json={"username": "staff", "password": PASSWORD}
    ).is_success
    made = staff.post("/api/v1/landlords", json={"name": "审计房东"})
    assert made.status_code == 201, made.text
    landlord_id = made.json()["id"]
    browser = _page_login(api, "auditor")
    api_one = browser.get(
        "/api/v1/audit", params={"target_type": "landlord", "target_id": str(landlord_id)}
    ).json()
    assert api_one["total"] == 1 and api_one["items"][0]["action"] == "place.create"
    one = browser.get(f"/audit?target_type=landlord&target_id={landlord_id}")
    assert one.status_code == 200
    assert "共 1 条记录" in one.text and "place.create" in one.text
    by_staff = browser.get(f"/audit?actor=user:{village.users['staff']}&action=place")
    rows = re.findall(r"<code>([a-z_.]+)</code></td>", by_staff.text)
    assert rows and set(rows) == {"place.create"}
    # Who did it, by account name beside the recorded actor.
    assert f'staff <span class="muted">(user:{village.users["staff"]})</span>' in by_staff.text
    assert api_one["items"][0]["actor_name"] == "staff"
    # The account name finds the same entries as the actor recorded.
    by_name = browser.get("/audit?actor=staff&action=place")
    assert re.findall(r"<code>([a-z_.]+)</code></td>", by_name.text) == rows
    today = _today(core)
    yesterday = (today - timedelta(days=1)).isoformat()
    assert "共 0 条记录" in browser.get(f"/audit?until={yesterday}").text
    assert "place.create" in browser.get(f"/audit?since={today.isoformat()}&action=place").text
    # English, and a date that is not one is refused with the field named.
    assert "entries" in browser.get("/audit?lang=en").text
    bad = browser.get("/audit?since=yesterday")
    assert bad.status_code == 422 and "since" in bad.text
    # Days and offsets past what a calendar or the database holds are refused, not a 500.
    assert browser.get("/audit?since=0001-01-01").status_code == 422
    assert browser.get("/audit?until=9999-12-31").status_code == 200
    assert browser.get("/audit?offset=" + "9" * 30).status_code == 422
    assert browser.get("/audit/privacy?since=0001-01-01&until=0001-01-02").status_code == 422
    assert browser.get("/api/v1/privacy?until=9999-12-31").status_code == 422


def test_the_log_is_paged_fifty_entries_at_a_time(api: FastAPI, core: CunanApp) -> None:
    for _ in range(55):
        core.audit.record("search", actor="cli:pager", details={"faces": 1, "known": 0})
    browser = _page_login(api, "auditor")
    first = browser.get("/audit?actor=cli:pager")
    assert "共 55 条记录" in first.text
    seqs = [int(s) for s in re.findall(r'<td class="num">(\d+)</td><td>', first.text)]
    assert len(seqs) == 50 and seqs == sorted(seqs, reverse=True)
    assert "offset=50" in first.text
    second = browser.get("/audit?actor=cli%3Apager&offset=50")
    rest = [int(s) for s in re.findall(r'<td class="num">(\d+)</td><td>', second.text)]
    assert len(rest) == 5 and max(rest) < min(seqs)


def test_the_chain_check_says_in_words_where_the_log_was_changed(
    api: FastAPI, core: CunanApp
) -> None:
    browser = _page_login(api, "auditor")
    intact = browser.get("/audit/verify")
    assert "日志完整" in intact.text and "已被篡改" not in intact.text
    database = core.registry.database
    with attacker(database) as run:
        [(seq, details)] = run("SELECT seq, details FROM audit_log WHERE seq = %s", (3,))
        run("UPDATE audit_log SET details = %s WHERE seq = %s", ('{"forged":1}', seq))
    try:
        broken = browser.get("/audit/verify")
        assert broken.status_code == 200
        assert "日志已被篡改。第一个问题出现在第 3 条记录" in broken.text
        assert "该记录的内容被修改" in broken.text
    finally:
        with attacker(database) as run:
            run("UPDATE audit_log SET details = %s WHERE seq = %s", (details, seq))
    assert "日志完整" in browser.get("/audit/verify").text


def test_the_privacy_report_counts_what_was_done(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    auditor = _page_login(api, "auditor")
    before = auditor.get("/api/v1/privacy").json()
    service = core.registry.service
    village_id = service.default_village_id()
    people = [
        service.add_person(
            NewPerson(name=f"隐私{i}", village_id=village_id, category=PersonCategory.TENANT),
            consent=ConsentInput(collected_by="网格员王", collected_at=datetime.now(UTC)),
            templates=[TemplateInput(vector=_unit(900 + i), model_id="dlib_resnet_v1")],
        )
        for i in range(3)
    ]
    staff = Principal(
        username="staff", role=UserRole.STAFF, user_id=village.users["staff"], via="user"
    )
    core.services_for(staff).withdraw_consent(people[0], "checked by ID card")
    # 1:N searches as the identify call records them (ids and counts only).
    for actor, times in ((village.users["staff"], 3), (village.users["admin"], 2)):
        for _ in range(times):
            core.audit.record("search", actor=user_actor(actor), details={"faces": 1, "known": 0})
    core.duties.purger.purge()

    after = auditor.get("/api/v1/privacy")
    assert after.status_code == 200, after.text
    report = after.json()
    assert report["face_data"]["people"] == before["face_data"]["people"] + 2
    assert report["face_data"]["threshold"] == 100_000
    assert report["consents_collected"] == before["consents_collected"] + 3
    assert report["consents_withdrawn"] == before["consents_withdrawn"] + 1
    assert report["people_with_valid_consent"] == before["people_with_valid_consent"] + 2
    assert report["purges_total"] == before["purges_total"] + 1
    assert report["searches_total"] == before["searches_total"] + 5
    today = _today(core).isoformat()
    per_user = {(s["day"], s["who"]): s["searches"] for s in report["searches"]}
    old = {(s["day"], s["who"]): s["searches"] for s in before["searches"]}
    assert per_user[(today, "staff")] - old.get((today, "staff"), 0) == 3
    assert per_user[(today, "admin")] - old.get((today, "admin"), 0) == 2

    page = auditor.get("/audit/privacy")
    assert page.status_code == 200
    assert f'id="people-with-face-data">{report["face_data"]["people"]}<' in page.text
    assert f'id="consents-withdrawn">{report["consents_withdrawn"]}<' in page.text
    assert f'id="purges-total">{report["purges_total"]}<' in page.text
    assert f'id="searches-total">{report["searches_total"]}<' in page.text
    assert re.search(
        rf"<td>{today}</td><td>staff</td><td class=\"num\">{per_user[(today, 'staff')]}</td>",
        page.text,
    )
    # A period before any of it: nothing happened then.
    long_ago = (_today(core) - timedelta(days=60)).isoformat()
    empty = auditor.get(f"/api/v1/privacy?since={long_ago}&until={long_ago}").json()
    assert empty["searches_total"] == empty["purges_total"] == empty["consents_collected"] == 0
    # Staff may not read it; a period longer than 92 days is refused.
    staff_client = _page_login(api, "staff")
    assert staff_client.get("/api/v1/privacy").status_code == 403
    assert auditor.get(f"/api/v1/privacy?since={long_ago}&until={today}").status_code == 200
    year = (_today(core) - timedelta(days=200)).isoformat()
    assert auditor.get(f"/api/v1/privacy?since={year}").status_code == 422
