"""The gas registry: scoping by account, changes audited, set points, replacement, credentials."""

from __future__ import annotations

from datetime import date

import pytest

from cunan.errors import Conflict, Forbidden, InvalidInput, NotFound
from cunan.gas.domain import ContactRole, DeviceKind
from cunan.gas.registry import (
    BusinessFilter,
    BusinessInput,
    ContactInput,
    DeviceFilter,
    DeviceInput,
    ModelInput,
    add_months,
    verify_device_credential,
)
from cunan.storage.query_repository import Page
from tests.gas.registry_fixtures import GasWorld, database, db_url, gas_world

__all__ = ["database", "db_url", "gas_world"]

ALL = Page(0, 50)


def _ids(world: GasWorld, who: str) -> set[int]:
    items, total = world.registry(who).list_businesses(BusinessFilter(), ALL)
    assert total == len(items)
    return {b.id for b in items}


def test_each_account_sees_only_its_businesses(gas_world: GasWorld) -> None:
    w = gas_world
    a, b = w.business["a"], w.business["b"]
    assert _ids(w, "owner_a") == {a}
    assert _ids(w, "owner_b") == {b}
    # The maintainer of a (maintainer A) sees a; nobody named them at b.
    assert _ids(w, "fixer") == {a}
    assert _ids(w, "staff") == _ids(w, "auditor") == {a, b}
    devices, _ = w.registry("owner_a").list_devices(DeviceFilter(), ALL)
    assert [d.id for d in devices] == [w.device["a"]]
    # Another business's records answer exactly like missing ones.
    owner = w.registry("owner_a")
    for hidden_id, missing_id in ((b, 987654),):
        with pytest.raises(NotFound) as other:
            owner.get_business(hidden_id)
        with pytest.raises(NotFound) as missing:
            owner.get_business(missing_id)
        assert str(other.value).replace(str(hidden_id), "#") == str(missing.value).replace(
            str(missing_id), "#"
        )
    with pytest.raises(NotFound, match="device"):
        owner.get_device(w.device["b"])
    with pytest.raises(NotFound):
        w.registry("fixer").device_id_of("SN-b")
    assert w.registry("fixer").device_id_of("SN-a") == w.device["a"]
    detail = owner.get_business(a)
    assert detail.address == "幸福路1号" and detail.devices == 1
    assert {c.role for c in detail.contacts} == {"owner", "maintainer_a"}


def test_contact_accounts_read_but_do_not_edit_and_auditors_change_nothing(
    gas_world: GasWorld,
) -> None:
    w = gas_world
    for who in ("owner_a", "fixer", "auditor"):
        registry = w.registry(who)
        assert registry.get_business(w.business["a"]).id == w.business["a"]
        with pytest.raises(Forbidden):
            registry.update_business(w.business["a"], {"category": "火锅"})
        with pytest.raises(Forbidden):
            registry.issue_credential(w.device["a"])
        with pytest.raises(Forbidden):
            registry.remove_device(w.device["a"])
        with pytest.raises(Forbidden):
            registry.create_model(ModelInput(code=f"X-{who}", kind=DeviceKind.VALVE))
    assert w.registry("staff").get_business(w.business["a"]).category is None


def test_filters_paginate_in_sql(gas_world: GasWorld) -> None:
    w = gas_world
    staff = w.registry("staff")
    for n in range(5):
        staff.create_business(
            BusinessInput(name=f"快餐{n}", licence_no=f"LIC-{n}", category="快餐", status="closed")
        )
    items, total = staff.list_businesses(BusinessFilter(category="快餐"), Page(1, 2))
    assert total == 5 and [b.name for b in items] == ["快餐1", "快餐2"]
    assert staff.list_businesses(BusinessFilter(name="火锅"), ALL)[1] == 1
    assert staff.list_businesses(BusinessFilter(licence_no="LIC-3"), ALL)[0][0].name == "快餐3"
    assert staff.list_businesses(BusinessFilter(status="active"), ALL)[1] == 2
    assert staff.list_businesses(BusinessFilter(name="%"), ALL)[1] == 0
    # Replacement due: the detectors fitted 2025-01-31 are due 36 months later.
    devices, _ = staff.list_devices(DeviceFilter(replacement_before=date(2028, 2, 1)), ALL)
    assert {d.replacement_due for d in devices} == {date(2028, 1, 31)}
    assert staff.list_devices(DeviceFilter(replacement_before=date(2028, 1, 31)), ALL)[1] == 0
    assert staff.list_devices(DeviceFilter(kind="valve"), ALL)[1] == 0
    assert staff.list_devices(DeviceFilter(business_id=w.business["b"]), ALL)[1] == 1


def test_set_points_replacement_and_validation(gas_world: GasWorld) -> None:
    w = gas_world
    staff = w.registry("staff")
    view = staff.get_device(w.device["a"])
    assert (view.low_lel, view.high_lel, view.own_low_lel) == (25.0, 50.0, None)
    staff.update_model(w.model_id, {"low_lel": 20.0, "high_lel": 40.0})
    assert (staff.get_device(w.device["a"]).low_lel, staff.get_device(w.device["a"]).high_lel) == (
        20.0,
        40.0,
    )
    changed = staff.update_device(w.device["a"], {"high_lel": 45.0})
    assert (changed.low_lel, changed.high_lel, changed.own_high_lel) == (20.0, 45.0, 45.0)
    with pytest.raises(InvalidInput, match="SN-a"):
        staff.update_device(w.device["a"], {"low_lel": 60.0})
    # A new install date moves the replacement date; an explicit one is kept as given.
    assert staff.update_device(
        w.device["a"], {"installed_on": date(2026, 2, 1)}
    ).replacement_due == (date(2029, 2, 1))
    assert staff.update_device(
        w.device["a"], {"replacement_due": date(2027, 6, 1)}
    ).replacement_due == date(2027, 6, 1)
    valve_model = staff.create_model(ModelInput(code="FV-1", kind=DeviceKind.VALVE))
    assert staff.get_model(valve_model).service_months == 120
    valve = staff.create_device(
        DeviceInput(
            business_id=w.business["b"],
            serial="VALVE-1",
            kind=DeviceKind.VALVE,
            model_id=valve_model,
            installed_on=date(2024, 2, 29),
        )
    )
    assert staff.get_device(valve).replacement_due == date(2034, 2, 28)
    with pytest.raises(InvalidInput, match="FV-1"):
        staff.create_device(
            DeviceInput(
                business_id=w.business["b"],
                serial="X",
                kind=DeviceKind.DETECTOR,
                model_id=valve_model,
            )
        )
    with pytest.raises(Conflict, match="SN-a"):
        staff.create_device(
            DeviceInput(business_id=w.business["b"], serial="SN-a", kind=DeviceKind.DETECTOR)
        )
    with pytest.raises(Conflict, match="91330100A"):
        staff.create_business(BusinessInput(name="重名", licence_no="91330100A"))
    with pytest.raises(InvalidInput, match=r"future|晚于今天"):
        staff.create_device(
            DeviceInput(
                business_id=w.business["b"],
                serial="LATE",
                kind=DeviceKind.DETECTOR,
                installed_on=date(2026, 3, 2),
            )
        )
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)


def test_credentials_shown_once_rotated_and_stopped_on_removal(gas_world: GasWorld) -> None:
    w = gas_world
    staff = w.registry("staff")
    assert verify_device_credential(w.database, "SN-a", "anything") is None
    first = staff.issue_credential(w.device["a"])
    assert verify_device_credential(w.database, "SN-a", first) == w.device["a"]
    assert verify_device_credential(w.database, "SN-b", first) is None
    second = staff.issue_credential(w.device["a"])
    assert second != first
    assert verify_device_credential(w.database, "SN-a", first) is None
    assert verify_device_credential(w.database, "SN-a", second) == w.device["a"]
    assert staff.get_device(w.device["a"]).has_credential
    staff.remove_device(w.device["a"])
    assert verify_device_credential(w.database, "SN-a", second) is None
    # Removed: out of the lists, kept with its removal time, no longer changeable.
    assert staff.list_devices(DeviceFilter(business_id=w.business["a"]), ALL)[1] == 0
    kept = staff.list_devices(DeviceFilter(include_removed=True), ALL)[0]
    assert any(d.id == w.device["a"] and d.removed_at is not None for d in kept)
    with pytest.raises(NotFound):
        staff.issue_credential(w.device["a"])
    entries = [
        e
        for e in w.audit.recent(limit=50)
        if e.target_type == "gas_device" and e.target_id == str(w.device["a"])
    ]
    actions = [e.action for e in reversed(entries)]
    assert actions == [
        "gas.device_create",
        "gas.device_credential",
        "gas.device_credential",
        "gas.device_remove",
    ]
    assert [e.details.get("rotated") for e in reversed(entries)][1:3] == [False, True]
    assert all(e.actor == f"user:{w.users['staff']}" for e in entries[:3])


def test_contact_accounts_go_through_the_account_service(gas_world: GasWorld) -> None:
    w = gas_world
    admin = w.registry("admin")
    b = w.business["b"]
    admin.set_contact(b, ContactRole.MAINTAINER_B, ContactInput("维保赵", "13900000000"))
    new_id = admin.create_contact_account(
        b, ContactRole.MAINTAINER_B, "zhao", "Correct-horse-battery-7"
    )
    detail = admin.get_business(b)
    assert {c.role: c.user_id for c in detail.contacts}["maintainer_b"] == new_id
    login = w.auth.login("zhao", "Correct-horse-battery-7", client="tests")
    principal = w.auth.principal_for_session(login.token)
    from cunan.gas.registry import GasRegistry

    seen, _ = GasRegistry(w.database, w.audit, principal).list_businesses(BusinessFilter(), ALL)
    assert [x.id for x in seen] == [b]
    # Staff edit the registry but do not make accounts (administrators do).
    with pytest.raises(Forbidden):
        w.registry("staff").create_contact_account(
            b, ContactRole.OWNER, "li2", "Correct-horse-battery-7"
        )
    # An account of the wrong role cannot be linked: it would see nothing.
    with pytest.raises(InvalidInput, match="maintainer"):
        admin.set_contact(b, ContactRole.MAINTAINER_A, ContactInput("x", None, w.users["owner_a"]))
    actions = [e.action for e in w.audit.recent(limit=5)]
    assert "user.create" in actions and "gas.contact_set" in actions


@pytest.mark.parametrize("serial", ["a:b", "SN 1", "SN/1", "SN+1", "-SN", "SN\n1"])
def test_a_serial_the_transports_cannot_carry_is_refused(gas_world: GasWorld, serial: str) -> None:
    # The serial is the device's MQTT topic level, broker login and password-file line.
    with pytest.raises(InvalidInput, match="serial"):
        gas_world.registry("staff").create_device(
            DeviceInput(business_id=gas_world.business["b"], serial=serial, kind=DeviceKind.VALVE)
        )
