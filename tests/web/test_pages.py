"""The pages over the real application: login, language, account, dashboard, cases, roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from cunan.app import CunanApp
from cunan.authz import local_principal
from cunan.pipeline.store import SightingStore
from cunan.storage.enums import ConsentMethod, UserRole
from tests.api.conftest import ORIGIN, PASSWORD, Village
from tests.sightings import new_sighting


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _new_case(core: CunanApp, seed: int, camera: str = "east-gate") -> int:
    """An unknown face seen now: the case it opens (grouped as the case consumer would)."""
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    stored = store.add(
        new_sighting(_unit(seed), at=datetime.now(UTC), camera=camera, track_key=f"web{seed}")
    )
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None and outcome.opened
    return outcome.case_id


def _browser(api: FastAPI) -> TestClient:
    """A browser without a session; its form posts say where they come from (Origin)."""
    return TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)


def _page_login(api: FastAPI, username: str, password: str = PASSWORD) -> TestClient:
    browser = _browser(api)
    answer = browser.post("/login", data={"username": username, "password": password})
    assert answer.status_code == 303, answer.text
    return browser


def _user(api: FastAPI, name: str, role: UserRole = UserRole.STAFF) -> None:
    api.state.auth.create_user(local_principal("tests"), name, PASSWORD, role)


def test_pages_send_an_anonymous_browser_to_the_login_page_and_back(api: FastAPI) -> None:
    browser = _browser(api)
    first = browser.get("/cases?status=all")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/cases%3Fstatus%3Dall"
    form = browser.get(first.headers["location"])
    assert form.status_code == 200
    assert '<html lang="zh-CN">' in form.text and "登录村安" in form.text
    assert '<main id="main" class="narrow"' in form.text
    assert 'value="/cases?status=all"' in form.text
    wrong = browser.post(
        "/login", data={"username": "staff", "password": "not-it", "next": "/cases"}
    )
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    assert "cunan_session" not in wrong.headers.get("set-cookie", "")
    right = browser.post(
        "/login", data={"username": "staff", "password": PASSWORD, "next": "/cases?status=all"}
    )
    assert right.status_code == 303 and right.headers["location"] == "/cases?status=all"
    assert browser.get("/cases?status=all").status_code == 200
    # A form posted without a session: log in, then the start page (a POST cannot be replayed).
    late = _browser(api).post("/cases/1/false-alarm")
    assert late.status_code == 303 and late.headers["location"] == "/login?next=/"


def test_the_page_login_sets_the_cookies_the_api_login_sets(api: FastAPI) -> None:
    page = _browser(api).post("/login", data={"username": "auditor", "password": PASSWORD})
    rest = _browser(api).post(
        "/api/v1/auth/login", json={"username": "auditor", "password": PASSWORD}
    )

    def attributes(response: Response) -> dict[str, set[str]]:
        """Each cookie's attributes (not its value or lifetime, which differ per login)."""
        out: dict[str, set[str]] = {}
        for header in response.headers.get_list("set-cookie"):
            name, _, rest_ = header.partition("=")
            parts = (p.strip().lower() for p in rest_.split(";")[1:])
            out[name] = {p for p in parts if not p.startswith(("max-age", "expires"))}
        return out

    assert attributes(page) == attributes(rest)
    assert "httponly" in attributes(page)["cunan_session"]
    assert "samesite=lax" in attributes(page)["cunan_session"]


def test_a_login_form_on_another_site_is_refused(api: FastAPI) -> None:
    elsewhere = TestClient(api, headers={"origin": "http://evil.example"}, follow_redirects=False)
    answer = elsewhere.post("/login", data={"username": "staff", "password": PASSWORD})
    assert answer.status_code == 403 and "cunan_session" not in answer.headers.get("set-cookie", "")


def test_after_login_only_paths_of_this_site(api: FastAPI) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = _browser(api).post(
            "/login", data={"username": "staff", "password": PASSWORD, "next": target}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/", target


def test_the_language_switch_is_remembered(api: FastAPI) -> None:
    browser = _browser(api)
    english = browser.get("/login?lang=en")
    assert '<html lang="en">' in english.text and "Log in to CunAn" in english.text
    assert "cunan_lang=en" in english.headers["set-cookie"]
    again = browser.get("/login")
    assert "Log in to CunAn" in again.text and "登录村安" not in again.text
    back = browser.get("/login?lang=zh")
    assert "登录村安" in back.text
    assert "登录村安" in browser.get("/login?lang=xx").text


def test_logout_ends_the_session_in_the_database(api: FastAPI) -> None:
    _user(api, "leaving")
    browser = _page_login(api, "leaving")
    cookie = browser.cookies.get("cunan_session")
    assert browser.get("/account").status_code == 200
    out = browser.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # The old cookie, replayed, is worth nothing.
    replay = _browser(api)
    replay.cookies.set("cunan_session", cookie or "")
    assert replay.get("/account").status_code == 303


def test_password_change_from_the_account_page(api: FastAPI) -> None:
    _user(api, "changer")
    browser = _page_login(api, "changer")
    new = "Another-horse-battery-7"
    differ = browser.post(
        "/account/password",
        data={"old_password": PASSWORD, "new_password": new, "again": new + "x"},
    )
    assert differ.status_code == 422 and "两次输入的新密码不一致" in differ.text
    wrong = browser.post(
        "/account/password", data={"old_password": "nope-nope", "new_password": new, "again": new}
    )
    assert wrong.status_code == 422
    done = browser.post(
        "/account/password", data={"old_password": PASSWORD, "new_password": new, "again": new}
    )
    assert done.status_code == 303 and done.headers["location"] == "/login?changed=1"
    assert "密码已修改" in browser.get(done.headers["location"]).text
    # Every session of the account ended with the change; the new password logs in.
    assert browser.get("/account").status_code == 303
    _page_login(api, "changer", new)
    refused = _browser(api).post("/login", data={"username": "changer", "password": PASSWORD})
    assert refused.status_code == 401


def test_the_dashboard_lists_open_cases_sightings_and_a_chart(
    api: FastAPI, core: CunanApp, clients: dict[str, TestClient]
) -> None:
    case_id = _new_case(core, 101, camera="north-gate")
    page = clients["staff"].get("/")
    assert page.status_code == 200
    html = page.text
    assert f'href="/cases/{case_id}"' in html
    # Today's sightings per camera, as a table and as a server-drawn SVG line.
    row = re.search(r"<tr><td>north-gate</td><td class=\"num\">(\d+)</td>", html)
    assert row is not None and int(row.group(1)) >= 1
    assert "<svg" in html and "<polyline" in html and "各摄像头每日出现次数" in html
    # New cases arrive live: the list names the event stream and the script that reads it.
    assert 'id="open-cases"' in html and 'data-events="/api/v1/events"' in html
    assert '<script src="/static/live.js"></script>' in html
    assert "新案件 #{id}" in html
    # The village's tenants and how many have face data, drawn as a share bar.
    share = re.search(r"(\d+) 名租客中 (\d+) 名（(\d+)%）", html)
    assert share is not None and 'class="share-part"' in html
    whole, part, percent = (int(g) for g in share.groups())
    assert whole >= 2 and percent == round(100 * part / whole)


def test_case_list_filters_and_case_page(core: CunanApp, clients: dict[str, TestClient]) -> None:
    case_id = _new_case(core, 202, camera="west-gate")
    staff = clients["staff"]
    listed = staff.get("/cases", params={"camera": "west-gate"})
    assert listed.status_code == 200 and f'href="/cases/{case_id}"' in listed.text
    other = staff.get("/cases", params={"camera": "no-such-camera"})
    assert f'href="/cases/{case_id}"' not in other.text and "0 个案件" in other.text
    bad_day = staff.get("/cases", params={"since": "yesterday"})
    assert bad_day.status_code == 422 and "yesterday" in bad_day.text
    page = staff.get(f"/cases/{case_id}")
    assert page.status_code == 200
    case = core.cases.get(case_id)
    for sid in case.best_sighting_ids:
        assert f'src="/api/v1/cases/{case_id}/crops/{sid}"' in page.text
        assert staff.get(f"/api/v1/cases/{case_id}/crops/{sid}").status_code == 200
    assert "west-gate" in page.text
    assert f'action="/cases/{case_id}/false-alarm"' in page.text
    assert staff.get("/cases/999999").status_code == 404


def test_outcome_forms_call_the_services(
    api: FastAPI, core: CunanApp, clients: dict[str, TestClient], village: Village
) -> None:
    staff = clients["staff"]
    first = _new_case(core, 303)
    empty = staff.post(f"/cases/{first}/escalate", data={"reason": "  "})
    assert empty.status_code == 422 and "reason" in empty.text
    assert core.cases.get(first).status == "open"
    taken = staff.post(f"/cases/{first}/assign", data={"deadline": ""}, follow_redirects=False)
    assert taken.status_code == 303
    assert core.cases.get(first).assigned_to == village.users["staff"]
    closed = staff.post(f"/cases/{first}/false-alarm", follow_redirects=False)
    assert closed.status_code == 303 and closed.headers["location"] == f"/cases/{first}"
    assert core.cases.get(first).status == "closed"
    # A closed case shows no outcome forms any more.
    assert f'action="/cases/{first}/false-alarm"' not in staff.get(f"/cases/{first}").text

    second = _new_case(core, 304)
    found = staff.get(f"/cases/{second}", params={"q": "租客a"})
    assert f'value="{village.tenant["a"]}"' in found.text
    person = {"person_id": str(village.tenant["a"])}
    # Without a consent on record the person gets no face data: refused, with the reason.
    refused = staff.post(f"/cases/{second}/person", data=person, follow_redirects=False)
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    assert core.cases.get(second).status == "open"
    core.services_for(local_principal("tests")).record_consent(
        village.tenant["a"], "网格员", ConsentMethod.PAPER, None
    )
    same = staff.post(f"/cases/{second}/person", data=person, follow_redirects=False)
    assert same.status_code == 303
    assert core.cases.get(second).person_id == village.tenant["a"]

    third = _new_case(core, 305)
    # A form field missing (no browser check): an HTML page naming it, not problem+json.
    missing = staff.post(f"/cases/{third}/visitor", data={})
    assert missing.status_code == 422 and missing.headers["content-type"].startswith("text/html")
    assert "until" in missing.text
    api_missing = staff.post(f"/api/v1/cases/{third}/visitor", json={})
    assert api_missing.headers["content-type"] == "application/problem+json"
    visitor = staff.post(
        f"/cases/{third}/visitor", data={"until": "2999-01-01"}, follow_redirects=False
    )
    assert visitor.status_code == 303 and core.cases.get(third).status == "closed"


def test_a_cross_site_form_post_is_refused(core: CunanApp, clients: dict[str, TestClient]) -> None:
    case_id = _new_case(core, 404)
    answer = clients["staff"].post(
        f"/cases/{case_id}/false-alarm", headers={"origin": "http://evil.example"}
    )
    assert answer.status_code == 403
    assert core.cases.get(case_id).status == "open"


def test_a_landlord_has_no_dashboard_and_no_cases(
    core: CunanApp, clients: dict[str, TestClient]
) -> None:
    case_id = _new_case(core, 505)
    landlord = clients["landlord_a"]
    home = landlord.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/portal"
    for path in ("/cases", f"/cases/{case_id}"):
        answer = landlord.get(path)
        assert answer.status_code == 403, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "无权访问" in answer.text
    refused = landlord.post(f"/cases/{case_id}/false-alarm")
    assert refused.status_code == 403
    assert core.cases.get(case_id).status == "open"
    account = landlord.get("/account")
    assert account.status_code == 200 and 'href="/cases"' not in account.text


def test_an_auditor_sees_cases_but_no_edit_control(
    core: CunanApp, clients: dict[str, TestClient]
) -> None:
    case_id = _new_case(core, 606)
    auditor = clients["auditor"]
    for path in ("/", "/cases", f"/cases/{case_id}", f"/cases/{case_id}?q=租客&house=1"):
        page = auditor.get(path)
        assert page.status_code == 200, path
        actions = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        assert actions == ["/logout"], (path, actions)
    refused = auditor.post(f"/cases/{case_id}/false-alarm")
    assert refused.status_code == 403
    assert core.cases.get(case_id).status == "open"
    # The staff member's page for the same case has the controls.
    staff_page = clients["staff"].get(f"/cases/{case_id}").text
    assert f'action="/cases/{case_id}/false-alarm"' in staff_page


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_renders_in_both_languages(
    core: CunanApp, clients: dict[str, TestClient], lang: str
) -> None:
    case_id = _new_case(core, 700 if lang == "zh" else 701)
    admin = clients["admin"]
    for path in ("/", "/cases", f"/cases/{case_id}?q=租客&house=1", "/account"):
        page = admin.get(path, params={"lang": lang})
        assert page.status_code == 200, (path, page.text[:500])
        assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in page.text


def test_enrol_a_new_tenant_from_the_case_page(
    core: CunanApp, clients: dict[str, TestClient], village: Village
) -> None:
    case_id = _new_case(core, 808)
    staff = clients["staff"]
    # No script needed: choosing the house shows its rooms in the 补录 form.
    picker = staff.get(f"/cases/{case_id}", params={"house": str(village.house["b"])})
    assert f'<option value="{village.room["b"]}"' in picker.text
    stale = staff.get(f"/cases/{case_id}", params={"house": "999999"})
    assert stale.status_code == 200 and 'action="/cases/' in stale.text
    assert 'capture="environment"' in picker.text and 'enctype="multipart/form-data"' in picker.text
    form = {
        "room_id": str(village.room["b"]),
        "consent_by": "网格员王",
        "consent_method": "paper",
    }
    nameless = staff.post(f"/cases/{case_id}/enrol", data={**form, "name": " "})
    assert nameless.status_code == 422 and core.cases.get(case_id).status == "open"
    done = staff.post(
        f"/cases/{case_id}/enrol", data={**form, "name": "新租客"}, follow_redirects=False
    )
    assert done.status_code == 303
    case = core.cases.get(case_id)
    assert case.status == "closed" and case.person_id is not None
    person = core.registry.service.get_person(case.person_id)
    assert person.name == "新租客" and person.template_count >= 1


def test_times_are_shown_in_the_village_time_zone(
    core: CunanApp, clients: dict[str, TestClient]
) -> None:
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    # 20:30 UTC is 04:30 the next morning in Asia/Shanghai (the default village zone).
    seen = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    stored = store.add(new_sighting(_unit(909), at=seen, camera="old-gate", track_key="tz"))
    outcome = core.cases.handle_sighting(stored.sighting_id)
    assert outcome is not None
    page = clients["auditor"].get(f"/cases/{outcome.case_id}")
    assert "2026-03-02 04:30" in page.text
    assert "2026-03-01 20:30" not in page.text


def test_every_form_field_has_a_label(core: CunanApp, clients: dict[str, TestClient]) -> None:
    case_id = _new_case(core, 1001)
    pages = [
        clients["anonymous"].get("/login").text,
        clients["admin"].get("/account").text,
        clients["admin"].get("/cases").text,
        clients["admin"].get(f"/cases/{case_id}?q=租客&house=1").text,
    ]
    for html in pages:
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        fields = re.findall(r"<(input|select|textarea)\b([^>]*)>", html)
        assert fields
        for tag, attributes in fields:
            if re.search(r'type="(?:hidden|submit)"', attributes):
                continue
            field_id = re.search(r'\bid="([^"]+)"', attributes)
            assert field_id is not None and field_id.group(1) in labelled, (tag, attributes)
