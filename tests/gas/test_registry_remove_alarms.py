"""Taking a device out of service ends its active alarms: no more escalation rounds about a
device that is no longer there, each end recorded as an alarm event with who and why."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cunan.gas.alarms import GasAlarmService
from cunan.storage.gas_tables import GasAlarmEvent
from tests.gas.alarm_fixtures import alarms, ingest, readings
from tests.gas.registry_fixtures import NOW, GasWorld, database, db_url, gas_world

__all__ = ["database", "db_url", "gas_world"]


def test_removing_a_device_clears_its_active_alarms_and_stops_escalation(
    gas_world: GasWorld,
) -> None:
    w = gas_world
    service = GasAlarmService(w.database, w.audit, clock=lambda: NOW)
    ingest(service, readings("SN-a", NOW - timedelta(minutes=1), [70, 72, 75, 76]))
    ingest(service, readings("SN-b", NOW - timedelta(minutes=1), [70, 72, 75, 76]))
    active = [a for a in alarms(w.database, "SN-a") if a.state == "active"]
    assert {a.alarm_type for a in active} == {"low", "high"}
    assert any(a.next_escalation_at is not None for a in active)

    w.registry("staff").remove_device(w.device["a"])

    after = alarms(w.database, "SN-a")
    assert {a.state for a in after} == {"cleared"}
    assert all(a.next_escalation_at is None and a.cleared_at == NOW for a in after)
    with w.database.read() as session:
        ends = session.execute(
            select(GasAlarmEvent.alarm_id, GasAlarmEvent.actor, GasAlarmEvent.detail).where(
                GasAlarmEvent.alarm_id.in_([a.id for a in after]),
                GasAlarmEvent.action == "cleared",
            )
        ).all()
    assert sorted(e[0] for e in ends) == sorted(a.id for a in after)
    assert {(e[1], e[2]) for e in ends} == {(f"user:{w.users['staff']}", "device removed")}
    # The other business's device is untouched.
    assert {a.state for a in alarms(w.database, "SN-b")} == {"active"}
    entry = next(e for e in w.audit.recent(limit=20) if e.action == "gas.device_remove")
    assert entry.details["alarms_cleared"] == 2
