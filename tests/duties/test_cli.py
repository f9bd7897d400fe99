"""The duty commands against a real data directory (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import typer

from cunan.duties.cli import departures_app, maintenance_app, stats_command
from cunan.registry.datadir import Registry
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.registry.service import NewTenancy
from cunan.storage.enums import PersonStatus
from tests.cli_helpers import invoke_on, registry
from tests.duties.helpers import MODEL, vector

__all__ = ["registry"]

app = typer.Typer()
app.add_typer(departures_app, name="departures")
app.add_typer(maintenance_app, name="maintenance")
app.command("stats")(stats_command)


def invoke(registry: Registry, *args: str) -> tuple[int, str]:
    return invoke_on(app, registry, *args)


def test_report_purge_reconcile_and_stats(registry: Registry) -> None:
    service = registry.service
    village = service.default_village_id()
    house = service.add_house(village, "桃源路1号")
    room = service.add_room(house, "101")
    person = service.add_person(
        NewPerson(name="租客", village_id=village),
        consent=ConsentInput(collected_by="网格员", collected_at=datetime.now(UTC)),
        templates=[TemplateInput(vector=vector(1), model_id=MODEL)],
        tenancy=NewTenancy(room_id=room, move_in=date(2020, 1, 1), reported_by="房东"),
    )
    yesterday = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)

    code, out = invoke(
        registry,
        "departures",
        "report",
        "tenancy:99",
        "--moved-out",
        yesterday.isoformat(),
        "--by",
        "房东",
    )
    assert code == 3 and "tenancy 99 not found" in out  # not found
    code, out = invoke(
        registry, "departures", "report", str(person), "--moved-out", "yesterday", "--by", "房东"
    )
    assert code == 2 and "not a date" in out

    code, out = invoke(
        registry,
        "departures",
        "report",
        str(person),
        "--moved-out",
        yesterday.isoformat(),
        "--by",
        "房东",
        "--json",
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["late"] is False and report["person_departed"] is True
    code, out = invoke(registry, "departures", "overdue", "--json")
    assert code == 0 and json.loads(out) == []

    code, out = invoke(registry, "maintenance", "purge", "--dry-run", "--json")
    assert code == 0, out
    assert json.loads(out)["templates"] == 1 and json.loads(out)["dry_run"] is True
    assert service.count_templates() == 1
    code, out = invoke(registry, "maintenance", "purge")
    assert code == 0 and "deleted" in out and "1 template(s)" in out
    assert service.count_templates() == 0
    assert service.get_person(person).status == PersonStatus.ARCHIVED

    code, out = invoke(registry, "maintenance", "reconcile", "--json")
    assert code == 0 and json.loads(out) == {
        "opened": 0,
        "closed_sighted": 0,
        "closed_tenancy_ended": 0,
    }
    code, out = invoke(registry, "stats", "--json")
    assert code == 0, out
    stats = json.loads(out)
    assert (stats["tenants"], stats["rental_houses"], stats["rental_rooms"]) == (0, 1, 1)
    assert stats["people_with_face_data"] == 0 and stats["warnings"] == []
    code, out = invoke(registry, "stats")
    assert code == 0 and "rental houses: 1, rooms: 1" in out
