"""The landlord portal: own houses, rooms and tenants only, move-outs and tasks without JS."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.duties.reconcile import NotSeenReconciler
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.storage.enums import PersonCategory
from cunan.storage.tables import Tenancy
from tests.api.conftest import ORIGIN, PASSWORD, Village


def _page_login(api: FastAPI, username: str) -> TestClient:
    """A browser logged in through the login form; its posts carry this site's Origin."""
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def _room(core: CunanApp, house: int) -> int:
    """A new room of ``house`` (the fixture's rooms are small and shared by the tests)."""
    return core.registry.service.add_room(house, f"R{next(_ROOM_NUMBERS)}", capacity=4)


_ROOM_NUMBERS = itertools.count(1)


def _tenant(core: CunanApp, name: str, house: int, *, expected_end: date | None = None) -> int:
    """A new tenant in a new room of ``house`` since 20 days ago; returns the tenancy id."""
    service = core.registry.service
    room = _room(core, house)
    person = service.add_person(
        NewPerson(
            name=name,
            village_id=service.default_village_id(),
            category=PersonCategory.TENANT,
            non_face_note="checked by ID card",
        )
    )
    return service.add_tenancy(
        person,
        room,
        move_in=date.today() - timedelta(days=20),
        expected_end=expected_end,
        reported_by="tests",
    )


def _move_out(core: CunanApp, tenancy_id: int) -> date | None:
    with core.registry.database.read() as session:
        tenancy = session.get(Tenancy, tenancy_id)
        assert tenancy is not None
        return tenancy.move_out


def test_a_landlord_logging_in_lands_on_the_portal_and_sees_only_their_own(
    api: FastAPI, village: Village
) -> None:
    browser = _page_login(api, "landlord_a")
    start = browser.get("/")
    assert start.status_code == 303 and start.headers["location"] == "/portal"
    portal = browser.get("/portal")
    assert portal.status_code == 200
    assert 'name="viewport" content="width=device-width' in portal.text
    assert '<main id="main" class="portal"' in portal.text
    assert "我的房屋和租客" in portal.text
    assert "幸福路a号" in portal.text and "租客a" in portal.text
    assert "幸福路b号" not in portal.text and "租客b" not in portal.text
    assert f'href="/portal/houses/{village.house["a"]}"' in portal.text
    # No staff navigation for a landlord.
    for path in ('href="/cases"', 'href="/audit"', 'href="/statistics"'):
        assert path not in portal.text
    house = browser.get(f"/portal/houses/{village.house['a']}")
    assert house.status_code == 200
    assert "租客a" in house.text and "101" in house.text
    assert f'action="/portal/tenancies/{village.tenancy["a"]}/move-out"' in house.text
    english = browser.get("/portal?lang=en")
    assert "My houses and tenants" in english.text


def test_another_landlords_house_tenant_and_task_are_not_found(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    browser = _page_login(api, "landlord_a")
    theirs = browser.get(f"/portal/houses/{village.house['b']}")
    missing = browser.get("/portal/houses/999999")
    assert theirs.status_code == missing.status_code == 404
    assert "幸福路b号" not in theirs.text and "租客b" not in theirs.text
    # Exactly what a missing house says: the id reveals nothing.
    assert f"house {village.house['b']} not found" in theirs.text
    assert "house 999999 not found" in missing.text
    today = date.today().isoformat()
    refused = browser.post(
        f"/portal/tenancies/{village.tenancy['b']}/move-out", data={"move_out": today}
    )
    assert refused.status_code == 404
    assert _move_out(core, village.tenancy["b"]) is None
    assert browser.post("/portal/tasks/999999/confirm").status_code == 404


def test_a_landlord_reports_a_move_out_with_a_plain_form(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    tenancy = _tenant(core, "搬走的租客", village.house["a"])
    browser = _page_login(api, "landlord_a")
    house = browser.get(f"/portal/houses/{village.house['a']}")
    assert "搬走的租客" in house.text
    # The form offers the village's today as the default and the latest day.
    field = re.search(rf'id="mo-{tenancy}"[^>]*', house.text)
    assert field is not None
    today = datetime.now(UTC).astimezone(core.settings.duties.zone).date().isoformat()
    assert f'max="{today}"' in field.group(0) and f'value="{today}"' in field.group(0)
    future = (date.fromisoformat(today) + timedelta(days=3)).isoformat()
    refused = browser.post(f"/portal/tenancies/{tenancy}/move-out", data={"move_out": future})
    assert refused.status_code == 422
    assert "搬离日期不能晚于今天" in refused.text and "没有保存" in refused.text
    assert _move_out(core, tenancy) is None
    # Before the tenant moved in: refused with the tenancy named, nothing recorded.
    early = (date.fromisoformat(today) - timedelta(days=60)).isoformat()
    before = browser.post(f"/portal/tenancies/{tenancy}/move-out", data={"move_out": early})
    assert before.status_code == 422 and f"tenancy {tenancy}" in before.text
    assert _move_out(core, tenancy) is None
    yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
    done = browser.post(f"/portal/tenancies/{tenancy}/move-out", data={"move_out": yesterday})
    assert done.status_code == 303 and done.headers["location"] == "/portal?done=moved_out"
    assert _move_out(core, tenancy) == date.fromisoformat(yesterday)
    thanks = browser.get(done.headers["location"])
    assert "搬离已登记" in thanks.text
    assert "搬走的租客" not in browser.get(f"/portal/houses/{village.house['a']}").text


def test_deadlines_and_overdue_move_outs_are_the_landlords_own(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    soon = date.today() + timedelta(days=10)
    _tenant(core, "快到期租客", village.house["a"], expected_end=soon)
    _tenant(core, "别人的租客", village.house["b"], expected_end=soon)
    late = _tenant(
        core, "逾期未报租客", village.house["a"], expected_end=date.today() - timedelta(days=12)
    )
    browser = _page_login(api, "landlord_a")
    portal = browser.get("/portal").text
    deadlines = portal.split('id="h-deadlines"', 1)[1].split('id="h-houses"', 1)[0]
    assert "快到期租客" in deadlines and "别人的租客" not in portal
    deadline = soon + timedelta(days=core.settings.duties.departure_deadline_days)
    assert f"搬离后请在此日前上报：{deadline.isoformat()}" in deadlines
    todo = portal.split('id="h-todo"', 1)[1].split('id="h-deadlines"', 1)[0]
    assert "逾期未报租客" in todo and "快到期租客" not in todo
    assert f'action="/portal/tenancies/{late}/move-out"' in todo
    assert "逾期未报租客" not in _page_login(api, "landlord_b").get("/portal").text
    # Once the move-out is reported (today), the deadline is met and leaves the list.
    gone = _tenant(core, "今天搬走租客", village.house["a"], expected_end=soon)
    assert "今天搬走租客" in browser.get("/portal").text.split('id="h-deadlines"', 1)[1]
    today = datetime.now(UTC).astimezone(core.settings.duties.zone).date().isoformat()
    moved = browser.post(f"/portal/tenancies/{gone}/move-out", data={"move_out": today})
    assert moved.status_code == 303
    after = browser.get("/portal").text
    assert "今天搬走租客" not in after.split('id="h-deadlines"', 1)[1].split('id="h-houses"')[0]


def test_a_landlord_confirms_a_tenant_still_lives_there(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    service = core.registry.service
    person = service.add_person(
        NewPerson(
            name="很久未见租客",
            village_id=service.default_village_id(),
            category=PersonCategory.TENANT,
        ),
        consent=ConsentInput(collected_by="网格员王", collected_at=datetime.now(UTC)),
        templates=[TemplateInput(vector=_unit(77), model_id="dlib_resnet_v1")],
    )
    service.add_tenancy(
        person,
        _room(core, village.house["a"]),
        move_in=date.today() - timedelta(days=5),
        reported_by="t",
    )
    later = datetime.now(UTC) + timedelta(days=40)
    NotSeenReconciler(
        core.registry.database, core.audit, core.settings.duties, clock=lambda: later
    ).reconcile()
    [task] = [t for t in core.duties.reconciler.tasks(open_only=True) if t.person_id == person]
    other = _page_login(api, "landlord_b")
    assert "很久未见租客" not in other.get("/portal").text
    assert other.post(f"/portal/tasks/{task.id}/confirm").status_code == 404
    browser = _page_login(api, "landlord_a")
    portal = browser.get("/portal").text
    assert "这位租客还住在这里吗" in portal and "很久未见租客" in portal
    assert f'action="/portal/tasks/{task.id}/confirm"' in portal
    done = browser.post(f"/portal/tasks/{task.id}/confirm")
    assert done.status_code == 303 and done.headers["location"] == "/portal?done=confirmed"
    [closed] = [t for t in core.duties.reconciler.tasks(open_only=False) if t.id == task.id]
    assert closed.outcome == "still_living"
    assert f'action="/portal/tasks/{task.id}/confirm"' not in browser.get("/portal").text


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_staff_and_auditors_start_at_the_dashboard_not_the_portal(api: FastAPI) -> None:
    for name in ("staff", "auditor", "admin"):
        answer = _page_login(api, name).get("/portal")
        assert answer.status_code == 303 and answer.headers["location"] == "/", name
