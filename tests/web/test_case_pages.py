"""The case pages in words: outcomes and people named, candidates beside the crops,
assignment with a deadline, the 补录 form's every field, merge and split with a confirmation,
and each outcome form, by plain form posts on both engines."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from cunan.app import CunanApp
from cunan.authz import local_principal
from cunan.pipeline.store import SightingStore
from cunan.registry.records import NewPerson, PhotoInput, TemplateInput
from cunan.storage.enums import ConsentMethod, PersonCategory, UserRole
from tests.api.conftest import ORIGIN, PASSWORD, Village
from tests.sightings import MODEL, new_sighting


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _near(base: np.ndarray, seed: int, amount: float = 0.05) -> np.ndarray:
    v = base + amount * _unit(seed)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _case(core: CunanApp, vectors: list[np.ndarray], key: str) -> tuple[int, list[int]]:
    """One unknown face seen once per vector (an hour apart): its case and sighting ids."""
    store = SightingStore(core.registry.database, core.registry.service.cipher)
    start = datetime.now(UTC) - timedelta(hours=len(vectors))
    case_id: int | None = None
    sightings: list[int] = []
    for i, vector in enumerate(vectors):
        stored = store.add(
            new_sighting(
                vector, at=start + timedelta(hours=i), camera=f"gate-{key}", track_key=f"{key}{i}"
            )
        )
        outcome = core.cases.handle_sighting(stored.sighting_id)
        assert outcome is not None
        assert case_id is None or outcome.case_id == case_id, "the faces should group together"
        case_id = outcome.case_id
        sightings.append(stored.sighting_id)
    assert case_id is not None
    return case_id, sightings


@pytest.fixture(scope="module")
def browsers(api: FastAPI, clients: dict[str, TestClient]) -> dict[str, TestClient]:
    """Browsers logged in on the login page (form posts carry Origin, no redirects)."""
    out: dict[str, TestClient] = {}
    for name in ("admin", "staff", "auditor"):
        browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
        answer = browser.post("/login", data={"username": name, "password": PASSWORD})
        assert answer.status_code == 303
        out[name] = browser
    return out


def _room(core: CunanApp, house: int, label: str) -> int:
    return core.registry.service.add_room(house, label, capacity=4)


def _main(html: str) -> str:
    return html.split("<main", 1)[1]


def test_outcomes_people_and_assignees_are_shown_in_words(
    core: CunanApp, browsers: dict[str, TestClient], village: Village
) -> None:
    staff = browsers["staff"]
    room = _room(core, village.house["a"], "201")
    enrolled, _ = _case(core, [_unit(1101)], "words1")
    done = staff.post(
        f"/cases/{enrolled}/enrol",
        data={"name": "钱七", "room_id": str(room), "consent_by": "网格员王"},
    )
    assert done.status_code == 303, done.text
    person = core.cases.get(enrolled).person_id
    assert person is not None
    page = _main(staff.get(f"/cases/{enrolled}").text)
    # The outcome in words and the person by name, room and house, linked: no raw codes.
    assert "补录为租客" in page and ">enrol<" not in page and f"#{person}<" not in page
    assert f'<a href="/people/{person}">钱七</a>' in page
    assert "幸福路a号 201" in page

    alarm, _ = _case(core, [_unit(1102)], "words2")
    assert staff.post(f"/cases/{alarm}/false-alarm").status_code == 303
    taken, _ = _case(core, [_unit(1103)], "words3")
    assert staff.post(f"/cases/{taken}/assign", data={"deadline": ""}).status_code == 303

    closed = _main(staff.get("/cases", params={"status": "closed"}).text)
    assert "补录为租客" in closed and f'<a href="/people/{person}">钱七</a>' in closed
    assert "误报" in closed and "false_alarm" not in closed
    listed = _main(staff.get("/cases", params={"status": "assigned"}).text)
    assert "由 staff 负责" in listed
    assert "由 staff 负责" in _main(staff.get("/").text)
    # The auditor reads the same words (and may read the registry, so the name too).
    assert "钱七" in browsers["auditor"].get(f"/cases/{enrolled}").text
    english = staff.get(f"/cases/{alarm}", params={"lang": "en"}).text
    assert "false alarm" in english
    staff.get("/cases", params={"lang": "zh"})


def test_the_nearest_people_stand_beside_the_crops_with_photo_and_words(
    core: CunanApp,
    browsers: dict[str, TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = core.registry.service
    monkeypatch.setattr(service.settings, "keep_enrolment_photos", True)
    buffer = io.BytesIO()
    Image.new("RGB", (60, 60), (120, 90, 80)).save(buffer, format="JPEG")
    near = _unit(1201)
    alike = service.add_person(
        NewPerson(
            name="孙八",
            village_id=service.default_village_id(),
            category=PersonCategory.RESIDENT,
            non_face_note="tests",
        )
    )
    core.services_for(local_principal("tests")).record_consent(
        alike, "网格员", ConsentMethod.PAPER, None
    )
    service.add_templates(
        alike,
        [
            TemplateInput(
                vector=near, model_id=MODEL, photo=PhotoInput(buffer.getvalue(), "image/jpeg")
            )
        ],
    )
    photo = service.photo_ids_of(alike)[0]
    case_id, _ = _case(core, [_near(near, 1202, 0.03)], "cand")
    staff = browsers["staff"]
    page = staff.get(f"/cases/{case_id}", params={"similar": "1"}).text
    crops = page.index('id="h-crops"')
    candidate = page.index(f'id="c{alike}"')
    # Side by side: the case's crops, then the candidates, before the sightings and forms.
    assert crops < candidate < page.index("出现记录</h2>")
    block = page[candidate:].split("</li>", 1)[0]
    assert f'src="/people/{alike}/photos/{photo}"' in block
    assert "很像" in block and "距离 0.0" in block
    # "It is this person" for this candidate alone.
    assert f'name="person_id" value="{alike}"' in block and "就是此人" in block
    thumbnail = staff.get(f"/people/{alike}/photos/{photo}")
    assert thumbnail.status_code == 200 and thumbnail.headers["cache-control"].startswith(
        "no-store"
    )
    views = core.audit.recent(limit=50, action="photo.view")
    assert any(str(e.target_id) == str(alike) for e in views)
    chosen = staff.post(f"/cases/{case_id}/person", data={"person_id": str(alike)})
    assert chosen.status_code == 303 and core.cases.get(case_id).person_id == alike


def test_assignment_to_a_staff_member_with_a_deadline_and_reassignment(
    core: CunanApp, api: FastAPI, browsers: dict[str, TestClient], village: Village
) -> None:
    staff = browsers["staff"]
    case_id, _ = _case(core, [_unit(1301)], "assign")
    form = staff.get(f"/cases/{case_id}").text
    select = form.split('id="user_id"', 1)[1].split("</select>", 1)[0]
    options = {int(v) for v in re.findall(r'<option value="(\d+)"', select)}
    # Enabled staff and administrators only: no auditor, no landlord.
    assert options == {village.users["admin"], village.users["staff"]}
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    given = staff.post(
        f"/cases/{case_id}/assign",
        data={"user_id": str(village.users["admin"]), "deadline": yesterday},
    )
    assert given.status_code == 303
    case = core.cases.get(case_id)
    assert case.assigned_to == village.users["admin"] and case.overdue
    page = staff.get(f"/cases/{case_id}").text
    assert '<dd id="assignee">admin' in page
    # The end of that day in the village (Asia/Shanghai), highlighted as overdue.
    assert f'<dd id="deadline-at"><strong class="bad">{yesterday} 23:59</strong>' in page
    assert 'class="facts overdue"' in page and "改派" in page
    listed = staff.get("/cases", params={"status": "assigned"}).text
    assert re.search(rf'<tr class="overdue">\s*<td><a href="/cases/{case_id}">', listed)

    refused = staff.post(
        f"/cases/{case_id}/assign", data={"user_id": str(village.users["auditor"])}
    )
    assert refused.status_code == 422 and f"user {village.users['auditor']}" in refused.text
    assert core.cases.get(case_id).assigned_to == village.users["admin"]
    auth = api.state.auth
    left = auth.create_user(local_principal("tests"), "staff-left", PASSWORD, UserRole.STAFF).id
    assert f'<option value="{left}"' in staff.get(f"/cases/{case_id}").text
    auth.set_disabled(local_principal("tests"), left, True)
    assert f'<option value="{left}"' not in staff.get(f"/cases/{case_id}").text
    gone = staff.post(f"/cases/{case_id}/assign", data={"user_id": str(left)})
    assert gone.status_code == 422 and core.cases.get(case_id).assigned_to != left
    again = staff.post(
        f"/cases/{case_id}/assign", data={"user_id": str(village.users["staff"]), "deadline": ""}
    )
    assert again.status_code == 303
    case = core.cases.get(case_id)
    assert case.assigned_to == village.users["staff"] and not case.overdue


def test_the_enrol_form_records_document_landlord_and_the_ticked_crops(
    core: CunanApp, browsers: dict[str, TestClient], village: Village
) -> None:
    staff = browsers["staff"]
    base = _unit(1401)
    case_id, sightings = _case(core, [base, _near(base, 1402), _near(base, 1403)], "enrol")
    room = _room(core, village.house["a"], "301")
    page = staff.get(f"/cases/{case_id}", params={"house": str(village.house["a"])}).text
    for field in ("id_type", "landlord_id", "consent_by", "consent_method", "photo"):
        assert f'name="{field}"' in page, field
    assert 'accept="image/*" capture="environment"' in page
    for sid in core.cases.get(case_id).best_sighting_ids:
        assert f'name="template_ids" value="{sid}"' in page
    assert '<script src="/static/case.js"></script>' in page
    form = {
        "name": "周九",
        "room_id": str(room),
        "consent_by": "网格员王",
        "consent_method": "digital",
        "id_number": "E12345678",
        "landlord_id": str(village.landlord["b"]),
        "house": str(village.house["a"]),
        "templates_chosen": "1",
    }
    # A passport number is not a resident ID: refused as one, the form shown again with
    # the house's rooms.
    wrong = staff.post(f"/cases/{case_id}/enrol", data={**form, "template_ids": [sightings[0]]})
    assert wrong.status_code == 422 and core.cases.get(case_id).status == "open"
    assert f'<option value="{room}"' in wrong.text
    none_ticked = staff.post(f"/cases/{case_id}/enrol", data={**form, "id_type": "passport"})
    assert none_ticked.status_code == 422 and "face picture" in none_ticked.text
    foreign = staff.post(
        f"/cases/{case_id}/enrol",
        data={**form, "id_type": "passport", "template_ids": ["999999"]},
    )
    assert foreign.status_code == 422 and "999999" in foreign.text
    not_a_picture = staff.post(
        f"/cases/{case_id}/enrol",
        data={**form, "id_type": "passport", "template_ids": [str(sightings[1])]},
        files={"consent_form": ("form.txt", b"signed by me", "image/png")},
    )
    assert not_a_picture.status_code == 422 and "JPG 或 PNG" in not_a_picture.text
    signed = b"\x89PNG\r\n\x1a\n" + b"the signed paper"
    done = staff.post(
        f"/cases/{case_id}/enrol",
        data={**form, "id_type": "passport", "template_ids": [str(sightings[1])]},
        files={"consent_form": ("form.png", signed, "image/png")},
    )
    assert done.status_code == 303, done.text
    case = core.cases.get(case_id)
    assert case.status == "closed" and case.person_id is not None
    service = core.registry.service
    assert service.get_person(case.person_id).template_count == 1
    tenancy = service.tenancies_of(case.person_id)[0]
    assert tenancy.room_id == room and tenancy.landlord_id == village.landlord["b"]
    consent = service.consents_of(case.person_id)[0]
    assert consent.collected_by == "网格员王" and consent.method == ConsentMethod.DIGITAL
    # The signed form's photo: linked from the consent history, shown like a kept photo.
    person_page = staff.get(f"/people/{case.person_id}").text
    link = f"/people/{case.person_id}/consents/{consent.id}/form"
    assert f'href="{link}"' in person_page
    shown = staff.get(link)
    assert shown.status_code == 200 and shown.content == signed
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["cache-control"].startswith("no-store")
    looks = core.audit.recent(limit=20, action="photo.view")
    assert any(e.details.get("consent_form") == consent.id for e in looks)
    assert staff.get(f"/people/{village.tenant['a']}/consents/{consent.id}/form").status_code == 404
    assert browsers["auditor"].get(link).status_code == 200
    # The script the form is enhanced with fills the rooms from the API's house.
    assert 'data-rooms="/api/v1/houses/"' in page
    assert staff.get("/static/case.js").status_code == 200
    rooms = staff.get(f"/api/v1/houses/{village.house['a']}").json()["rooms"]
    assert any(r["id"] == room for r in rooms)


def test_merge_two_cases_after_comparing_them(
    core: CunanApp, browsers: dict[str, TestClient]
) -> None:
    staff = browsers["staff"]
    target, _ = _case(core, [_unit(1501)], "merge1")
    source, moved = _case(core, [_unit(1502)], "merge2")
    page = staff.get(f"/cases/{target}").text
    assert f'action="/cases/{target}/merge"' in page
    ask = staff.post(f"/cases/{target}/merge", data={"source_id": str(source)})
    # First the two cases side by side, nothing changed yet.
    assert ask.status_code == 200
    assert f'src="/api/v1/cases/{source}/crops/' in ask.text
    assert f'src="/api/v1/cases/{target}/crops/' in ask.text
    assert 'name="confirm" value="1"' in ask.text
    assert core.cases.get(source).status == "open"
    itself = staff.post(f"/cases/{target}/merge", data={"source_id": str(target)})
    assert itself.status_code == 422 and core.cases.get(target).status == "open"
    missing = staff.post(f"/cases/{target}/merge", data={"source_id": "999999"})
    assert missing.status_code == 422 and "999999" in missing.text
    done = staff.post(f"/cases/{target}/merge", data={"source_id": str(source), "confirm": "1"})
    assert done.status_code == 303 and done.headers["location"] == f"/cases/{target}"
    assert core.cases.get(source).status == "merged"
    assert moved[0] in {m.sighting_id for m in core.cases.members(target)}
    merged = _main(staff.get(f"/cases/{source}").text)
    assert "已并入" in merged and f'href="/cases/{target}"' in merged


def test_split_sightings_off_a_case_after_a_confirmation(
    core: CunanApp, browsers: dict[str, TestClient]
) -> None:
    staff = browsers["staff"]
    base = _unit(1601)
    case_id, sightings = _case(core, [base, _near(base, 1602), _near(base, 1603)], "split")
    page = staff.get(f"/cases/{case_id}").text
    for sid in sightings:
        assert f'name="sighting_ids" value="{sid}"' in page
    everything = staff.post(f"/cases/{case_id}/split", data={"sighting_ids": sightings})
    assert everything.status_code == 422
    ask = staff.post(f"/cases/{case_id}/split", data={"sighting_ids": [sightings[2]]})
    assert ask.status_code == 200 and 'name="confirm" value="1"' in ask.text
    assert len(core.cases.members(case_id)) == 3
    done = staff.post(
        f"/cases/{case_id}/split", data={"sighting_ids": [sightings[2]], "confirm": "1"}
    )
    assert done.status_code == 303
    new_id = int(done.headers["location"].rsplit("/", 1)[1])
    assert new_id != case_id
    assert [m.sighting_id for m in core.cases.members(new_id)] == [sightings[2]]
    assert len(core.cases.members(case_id)) == 2


def test_visitor_false_alarm_escalate_and_reopen_forms(
    core: CunanApp, browsers: dict[str, TestClient]
) -> None:
    staff = browsers["staff"]
    visitor, _ = _case(core, [_unit(1701)], "out1")
    page = staff.get(f"/cases/{visitor}").text
    for form in ("visitor", "false-alarm", "escalate", "enrol", "assign", "merge"):
        assert f'action="/cases/{visitor}/{form}"' in page, form
    until = (date.today() + timedelta(days=5)).isoformat()
    assert staff.post(f"/cases/{visitor}/visitor", data={"until": "soon"}).status_code == 422
    assert staff.post(f"/cases/{visitor}/visitor", data={"until": until}).status_code == 303
    case = core.cases.get(visitor)
    assert case.outcome == "visitor"
    shown = _main(staff.get(f"/cases/{visitor}").text)
    assert "访客" in shown and f"至 {until}" in shown

    alarm, _ = _case(core, [_unit(1702)], "out2")
    assert staff.post(f"/cases/{alarm}/false-alarm").status_code == 303
    assert core.cases.get(alarm).outcome == "false_alarm"
    # The auditor may not record an outcome and finds no form to.
    other, _ = _case(core, [_unit(1703)], "out3")
    auditor = browsers["auditor"]
    assert auditor.post(f"/cases/{other}/escalate", data={"reason": "x"}).status_code == 403
    seen = auditor.get(f"/cases/{other}").text.replace('action="/logout"', "")
    assert "<form" not in _main(seen)
    assert staff.post(f"/cases/{other}/escalate", data={"reason": " "}).status_code == 422
    escalated = staff.post(f"/cases/{other}/escalate", data={"reason": "多次深夜出现"})
    assert escalated.status_code == 303 and core.cases.get(other).outcome == "escalate"
    assert "已上报" in _main(staff.get(f"/cases/{other}").text)

    reopen = staff.get(f"/cases/{alarm}").text
    assert f'action="/cases/{alarm}/reopen"' in reopen
    assert staff.post(f"/cases/{alarm}/reopen").status_code == 303
    assert core.cases.get(alarm).status == "open"


def test_a_consent_recorded_on_the_person_page_keeps_its_signed_form(
    core: CunanApp, api: FastAPI, browsers: dict[str, TestClient], village: Village
) -> None:
    staff = browsers["staff"]
    person = village.tenant["b"]
    page = staff.get(f"/people/{person}").text
    assert 'name="form_photo"' in page and 'capture="environment"' in page
    signed = b"\xff\xd8\xff\xe0" + b"a signed paper"
    done = staff.post(
        f"/people/{person}/consents",
        data={"collected_by": "网格员李", "method": "paper"},
        files={"form_photo": ("form.jpg", signed, "image/jpeg")},
    )
    assert done.status_code == 303, done.text
    consent = core.registry.service.consents_of(person)[-1]
    link = f"/people/{person}/consents/{consent.id}/form"
    assert f'href="{link}"' in staff.get(f"/people/{person}").text
    assert staff.get(link).content == signed
    # Landlords see no consent records, so no form either.
    landlord = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    assert (
        landlord.post("/login", data={"username": "landlord_b", "password": PASSWORD}).status_code
        == 303
    )
    assert landlord.get(link).status_code in (403, 404)


def test_the_enrolment_page_keeps_the_signed_form_too(
    core: CunanApp, browsers: dict[str, TestClient]
) -> None:
    staff = browsers["staff"]
    form = staff.get("/people/new").text
    assert 'name="consent_form"' in form
    signed = b"\x89PNG\r\n\x1a\n" + b"signed at the office"
    done = staff.post(
        "/people/new",
        data={
            "name": "吴十一",
            "category": "resident",
            "consent_by": "网格员赵",
            "non_face_note": "看身份证",
        },
        files={"consent_form": ("form.png", signed, "image/png")},
    )
    assert done.status_code == 303, done.text
    person = int(done.headers["location"].split("?")[0].rsplit("/", 1)[1])
    consent = core.registry.service.consents_of(person)[0]
    assert staff.get(f"/people/{person}/consents/{consent.id}/form").content == signed


def test_the_enrol_api_takes_the_chosen_sightings_and_the_signed_form(
    core: CunanApp, clients: dict[str, TestClient], village: Village
) -> None:
    base = _unit(1801)
    case_id, sightings = _case(core, [base, _near(base, 1802)], "api")
    room = _room(core, village.house["b"], "401")
    signed = b"\xff\xd8\xff\xe0" + b"signed on site"
    answer = clients["staff"].post(
        f"/api/v1/cases/{case_id}/enrol",
        data={
            "name": "郑十二",
            "room_id": str(room),
            "consent_by": "网格员王",
            "sighting_ids": [str(sightings[0])],
        },
        files={"consent_form": ("form.jpg", signed, "image/jpeg")},
    )
    assert answer.status_code == 201, answer.text
    person = answer.json()["person_id"]
    service = core.registry.service
    assert service.get_person(person).template_count == 1
    assert service.consent_form(service.consents_of(person)[0].id).data == signed
    entries = core.audit.recent(limit=20, action="case.transition")
    closed = next(e for e in entries if str(e.target_id) == str(case_id))
    assert closed.details["chosen_sightings"] == [sightings[0]]
