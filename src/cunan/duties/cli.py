"""Duty commands: ``cunan departures``, ``cunan maintenance`` and ``cunan stats``."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.cliutil import DataDirOption, err_console, fail, opened_app
from cunan.stats.service import VillageStats

console = Console()

departures_app = typer.Typer(
    help="Move-out reports, overdue tenancies and landlords' confirmation tasks.",
    no_args_is_help=True,
)
maintenance_app = typer.Typer(
    help="Scheduled duties run by hand: retention purge, not-seen reconciliation.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _print(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _parse_target(target: str) -> tuple[str, int]:
    kind, _, number = target.strip().rpartition(":")
    kind = kind or "person"
    if kind not in ("person", "tenancy") or not number.isdigit():
        fail(f"{target!r}: give a person id (12 or person:12) or a tenancy id (tenancy:7)")
    return kind, int(number)


# -- departures ----------------------------------------------------------------------------


@departures_app.command("report")
def report_command(
    target: Annotated[
        str, typer.Argument(metavar="PERSON|TENANCY", help="12 / person:12, or tenancy:7.")
    ],
    moved_out: Annotated[
        str, typer.Option("--moved-out", help="Move-out date, YYYY-MM-DD (first day away).")
    ],
    by: Annotated[str, typer.Option("--by", help="Who reported it (landlord or staff).")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a tenant's move-out; says whether the report met the village deadline."""
    try:
        move_out = date.fromisoformat(moved_out)
    except ValueError:
        fail(f"--moved-out {moved_out!r} is not a date (YYYY-MM-DD)")
    kind, number = _parse_target(target)
    with opened_app(data_dir) as (_, services):
        tenancy_id = number if kind == "tenancy" else services.open_tenancy_of(number)
        view = services.report_move_out(tenancy_id, move_out, reported_by=by)
    if as_json:
        _print(
            json.dumps(
                {
                    "report_id": view.id,
                    "tenancy_id": view.tenancy_id,
                    "person_id": view.person_id,
                    "move_out": view.move_out.isoformat(),
                    "deadline": view.deadline.isoformat(),
                    "late": view.late,
                    "days_after_move_out": view.days_after_move_out,
                    "person_departed": view.person_departed,
                }
            )
        )
        return
    verdict = "LATE" if view.late else "on time"
    _print(
        f"tenancy {view.tenancy_id} (person {view.person_id}): moved out {view.move_out}, "
        f"reported {view.days_after_move_out} day(s) later, {verdict} (deadline {view.deadline})"
    )


@departures_app.command("overdue")
def overdue_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List overdue tenancies: unreported past expected end + deadline, and late reports."""
    with opened_app(data_dir) as (_, services):
        rows = services.overdue_departures()
    if as_json:
        _print(
            json.dumps(
                [
                    {
                        "kind": o.kind,
                        "tenancy_id": o.tenancy_id,
                        "person_id": o.person_id,
                        "room_id": o.room_id,
                        "landlord_id": o.landlord_id,
                        "due_from": o.due_from.isoformat(),
                        "deadline": o.deadline.isoformat(),
                        "days_overdue": o.days_overdue,
                        "person": o.person,
                        "room": o.room,
                        "address": o.address,
                        "landlord": o.landlord,
                    }
                    for o in rows
                ],
                ensure_ascii=False,
            )
        )
        return
    if not rows:
        _print("no overdue tenancies")
        return
    table = Table(
        "kind", "tenancy", "person", "address", "room", "landlord", "due from", "deadline", "days"
    )
    for o in rows:
        table.add_row(
            o.kind,
            str(o.tenancy_id),
            f"{o.person or ''} ({o.person_id})",
            o.address or "",
            o.room or str(o.room_id),
            o.landlord or ("" if o.landlord_id is None else str(o.landlord_id)),
            o.due_from.isoformat(),
            o.deadline.isoformat(),
            str(o.days_overdue),
        )
    console.print(table)


@departures_app.command("tasks")
def tasks_command(
    landlord: Annotated[int | None, typer.Option(help="Only this landlord's tasks.")] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="Closed tasks too.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List "please confirm" tasks (tenants not seen for the configured days)."""
    with opened_app(data_dir) as (_, services):
        rows = services.confirmation_tasks(open_only=not all_tasks, landlord_id=landlord)
    if not rows:
        _print("no tasks")
        return
    table = Table(
        "task", "tenancy", "person", "address", "room", "landlord", "days not seen", "status",
        "outcome",
    )  # fmt: skip
    for t in rows:
        table.add_row(
            str(t.id),
            str(t.tenancy_id),
            f"{t.person or ''} ({t.person_id})",
            t.address or "",
            t.room or "",
            t.landlord or ("" if t.landlord_id is None else str(t.landlord_id)),
            str(t.days_not_seen),
            t.status,
            t.outcome or "",
        )
    console.print(table)


@departures_app.command("confirm")
def confirm_command(
    task: Annotated[int, typer.Argument(help="Task id.")],
    by: Annotated[str, typer.Option("--by", help="Who confirmed (the landlord).")],
    data_dir: DataDirOption = None,
) -> None:
    """The tenant still lives there: close the task (report a move-out with ``report``)."""
    with opened_app(data_dir) as (_, services):
        view = services.confirm_task(task, confirmed_by=by)
    _print(f"task {view.id} closed: still living (tenancy {view.tenancy_id})")


# -- maintenance ---------------------------------------------------------------------------


@maintenance_app.command("purge")
def purge_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete sightings, crops and departed people's templates past their retention."""
    with opened_app(data_dir) as (_, services):
        report = services.purge_retention(dry_run=dry_run)
    if as_json:
        _print(json.dumps(report.as_dict()))
        return
    verb = "would delete" if dry_run else "deleted"
    _print(
        f"{verb}: {report.unknown_sightings} unknown sighting(s), {report.known_sightings} "
        f"known sighting(s), {report.crops} crop(s) of kept sightings, {report.templates} "
        f"template(s); {report.people_archived} person(s) archived"
    )


@maintenance_app.command("reconcile")
def reconcile_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Open "please confirm" tasks for tenants not seen lately; close answered ones."""
    with opened_app(data_dir) as (_, services):
        result = services.reconcile_tenancies()
    counts = {
        "opened": len(result.opened),
        "closed_sighted": len(result.closed_sighted),
        "closed_tenancy_ended": len(result.closed_tenancy_ended),
    }
    if as_json:
        _print(json.dumps(counts))
        return
    _print(
        f"{counts['opened']} task(s) opened, {counts['closed_sighted']} closed by a sighting, "
        f"{counts['closed_tenancy_ended']} closed by a move-out"
    )


# -- stats ---------------------------------------------------------------------------------


def stats_command(
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    days: Annotated[
        int | None, typer.Option(min=1, max=366, help="Days of sightings per camera.")
    ] = None,
) -> None:
    """Village statistics: people, face data, rental rooms, cases, departures, sightings."""
    with opened_app(data_dir) as (_, services):
        stats = services.village_statistics(days)
    if as_json:
        _print(json.dumps(stats.as_dict(), ensure_ascii=False))
        return
    _print_stats(stats)


def _print_stats(stats: VillageStats) -> None:
    share = stats.tenant_face_data_share
    cases = stats.cases
    lines = [
        f"residents: {stats.residents}",
        f"tenants: {stats.tenants} ({stats.tenants_with_face_data} with face data"
        + (f", {share:.0%})" if share is not None else ")"),
        f"rental houses: {stats.rental_houses}, rooms: {stats.rental_rooms}",
        "open cases: " + ("n/a" if cases.open_cases is None else str(cases.open_cases)),
        "median time to verify: "
        + (
            "n/a"
            if cases.median_hours_to_verify is None
            else f"{cases.median_hours_to_verify:.1f} h over {cases.verified_cases} case(s)"
        ),
        f"overdue departures: {stats.overdue_departures} "
        f"(+ {stats.late_departure_reports} late report(s))",
        f"people with face data: {stats.face_data.people} (filing at {stats.face_data.threshold})",
    ]
    for line in lines:
        _print(line)
    for warning in stats.warnings():
        err_console.print(f"WARNING: {warning}", markup=False, highlight=False, soft_wrap=True)
    days = stats.sightings.days
    if stats.sightings.counts:
        table = Table("camera", *[d.strftime("%m-%d") for d in days], title="sightings per day")
        for name, counts in sorted(stats.sightings.counts.items()):
            table.add_row(name, *[str(c) for c in counts])
        console.print(table)
