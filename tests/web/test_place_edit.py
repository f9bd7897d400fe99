"""Renaming and deleting places (villages, grid areas, landlords, houses, rooms, households)
through the API and the registry pages, on both engines: a delete is refused while anything
refers to the place, nothing is cascaded away, every change is audited without names."""

from __future__ import annotations

import json
from datetime import date

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cunan.app import CunanApp
from cunan.app_services import AuditEntryView, page
from cunan.authz import local_principal
from cunan.registry.records import NewPerson
from cunan.storage.enums import PersonCategory
from cunan.storage.gas_tables import GasBusiness
from tests.api.conftest import ORIGIN, PASSWORD, Village


def _audit(core: CunanApp, action: str) -> list[AuditEntryView]:
    return core.services_for(local_principal("tests")).list_audit(page(0, 200), action=action).items


def _browser(api: FastAPI, username: str) -> TestClient:
    browser = TestClient(api, headers={"origin": ORIGIN}, follow_redirects=False)
    answer = browser.post("/login", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return browser


def _created(answer: object) -> int:
    assert getattr(answer, "status_code", None) == 201, getattr(answer, "text", "")
    return int(answer.json()["id"])  # type: ignore[attr-defined]


def test_places_are_renamed_and_deleted_only_when_nothing_refers_to_them(
    clients: dict[str, TestClient], core: CunanApp, village: Village
) -> None:
    staff = clients["staff"]
    area = _created(staff.post("/api/v1/areas", json={"name": "东片"}))
    landlord = _created(staff.post("/api/v1/landlords", json={"name": "房东丙"}))
    house = _created(
        staff.post(
            "/api/v1/houses",
            json={"address": "改名路1号", "area_id": area, "landlord_id": landlord},
        )
    )
    room = _created(staff.post(f"/api/v1/houses/{house}/rooms", json={"label": "101"}))
    empty_room = _created(staff.post(f"/api/v1/houses/{house}/rooms", json={"label": "102"}))
    household = _created(staff.post(f"/api/v1/houses/{house}/households", json={"name": "李家"}))
    person = core.registry.service.add_person(
        NewPerson(
            name="租客丙",
            village_id=core.registry.service.default_village_id(),
            category=PersonCategory.TENANT,
            non_face_note="checked by ID card",
        )
    )
    core.registry.service.add_tenancy(
        person, room, move_in=date(2026, 1, 1), move_out=date(2026, 3, 1), reported_by="tests"
    )

    # Renames: each place's own name; a name the parent already has is a 409.
    assert staff.patch(f"/api/v1/areas/{area}", json={"name": "东一片"}).status_code == 204
    assert (
        staff.patch(f"/api/v1/landlords/{landlord}", json={"name": "房东丙丙"}).status_code == 204
    )
    assert staff.patch(f"/api/v1/houses/{house}", json={"address": "改名路2号"}).status_code == 204
    assert staff.patch(f"/api/v1/rooms/{room}", json={"label": "101A"}).status_code == 204
    assert (
        staff.patch(f"/api/v1/households/{household}", json={"name": "李家户"}).status_code == 204
    )
    detail = staff.get(f"/api/v1/houses/{house}").json()
    assert detail["address"] == "改名路2号" and detail["landlord_id"] == landlord
    assert {r["label"] for r in detail["rooms"]} == {"101A", "102"}
    clash = staff.patch(f"/api/v1/rooms/{empty_room}", json={"label": "101A"})
    assert clash.status_code == 409 and "101A" in clash.json()["detail"]
    taken = staff.patch(f"/api/v1/houses/{house}", json={"address": "幸福路a号"})
    assert taken.status_code == 409
    assert staff.get(f"/api/v1/houses/{house}").json()["address"] == "改名路2号"

    # Deletes refused while something refers to the place, saying what (Chinese first).
    refused = staff.delete(f"/api/v1/houses/{house}")
    assert refused.status_code == 409
    words = refused.json()["detail"]
    assert words.startswith(f"房屋 (house) {house} 不能删除") and "2 个房间" in words
    assert "1 户" in words
    lived_in = staff.delete(f"/api/v1/rooms/{room}")
    assert lived_in.status_code == 409 and "1 条租住记录" in lived_in.json()["detail"]
    assert staff.delete(f"/api/v1/landlords/{landlord}").status_code == 409
    assert staff.delete(f"/api/v1/areas/{area}").status_code == 409
    # Nothing went: the tenant and their history are still there.
    assert core.registry.service.get_person(person).name == "租客丙"

    # Emptied: deleted, each in turn.
    assert staff.delete(f"/api/v1/rooms/{empty_room}").status_code == 204
    assert staff.delete(f"/api/v1/households/{household}").status_code == 204
    assert staff.delete(f"/api/v1/rooms/{empty_room}").status_code == 404
    still = staff.delete(f"/api/v1/houses/{house}")
    assert still.status_code == 409 and "1 个房间" in still.json()["detail"]

    renamed = [e for e in _audit(core, "place.update") if e.target_type in {"room", "house"}]
    assert any(json.loads(e.details).get("renamed") == "label" for e in renamed)
    removed = {(e.target_type, e.target_id) for e in _audit(core, "place.remove")}
    assert removed >= {("room", str(empty_room)), ("household", str(household))}
    # Names are not in the audit log (landlords are people).
    assert not any("房东丙" in e.details for e in _audit(core, "place"))


def test_who_may_rename_and_delete(
    clients: dict[str, TestClient], core: CunanApp, village: Village
) -> None:
    house = village.house["a"]
    for role in ("auditor", "landlord_a"):
        client = clients[role]
        assert client.patch(f"/api/v1/houses/{house}", json={"address": "x"}).status_code == 403
        assert client.delete(f"/api/v1/rooms/{village.room['a']}").status_code == 403
    url = f"/api/v1/villages/{core.registry.service.default_village_id()}"
    assert clients["staff"].patch(url, json={"name": "x"}).status_code == 403
    assert clients["admin"].patch(url, json={"name": "桃源新村"}).status_code == 204
    refused = clients["admin"].delete(url)
    assert refused.status_code == 409 and "不能删除" in refused.json()["detail"]
    assert "处房屋" in refused.json()["detail"] and "个人员" in refused.json()["detail"]
    assert clients["admin"].patch(url, json={"name": "桃源村"}).status_code == 204


def test_the_registry_pages_rename_and_delete_without_script(
    api: FastAPI, core: CunanApp, village: Village
) -> None:
    staff = _browser(api, "staff")
    listing = staff.get("/registry").text
    assert "改名或删除" in listing and "<details" in listing
    made = staff.post("/registry/areas", data={"name": "西片"})
    assert made.status_code == 303
    area = next(
        a.id for a in core.services_for(local_principal("t")).list_areas() if a.name == "西片"
    )
    renamed = staff.post(f"/registry/areas/{area}/rename", data={"name": "西一片"})
    assert renamed.status_code == 303 and "西一片" in staff.get("/registry").text

    house = village.house["a"]
    page_ = staff.get(f"/houses/{house}").text
    assert f'action="/houses/{house}/rename"' in page_
    assert f'action="/houses/{house}/rooms/{village.room["a"]}/remove"' in page_
    # The house has a room with a tenant: refused on the page, in words, nothing deleted.
    refused = staff.post(f"/houses/{house}/remove")
    assert refused.status_code == 422 and "不能删除" in refused.text and "房间" in refused.text
    occupied = staff.post(f"/houses/{house}/rooms/{village.room['a']}/remove")
    assert occupied.status_code == 422 and "租住记录" in occupied.text
    # A room of another house through this house's form: not found.
    other = staff.post(f"/houses/{house}/rooms/{village.room['b']}/remove")
    assert other.status_code == 404
    gone = staff.post(f"/registry/areas/{area}/remove")
    assert gone.status_code == 303 and "西一片" not in staff.get("/registry").text
    # The auditor sees no such control.
    auditor = _browser(api, "auditor")
    assert "改名或删除" not in auditor.get("/registry").text
    assert "改名或删除" not in auditor.get(f"/houses/{house}").text


def test_a_house_with_a_gas_business_is_not_deleted(
    clients: dict[str, TestClient], core: CunanApp, village: Village
) -> None:
    staff = clients["staff"]
    house = _created(staff.post("/api/v1/houses", json={"address": "燃气路8号"}))
    with core.registry.database.transaction() as session:
        session.add(
            GasBusiness(
                village_id=core.registry.service.default_village_id(),
                house_id=house,
                name="小吃店",
                licence_no="91330100TEST0001X",
            )
        )
    refused = staff.delete(f"/api/v1/houses/{house}")
    assert refused.status_code == 409 and "1 家用气商户" in refused.json()["detail"]
