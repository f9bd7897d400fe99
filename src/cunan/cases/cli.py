"""``cunan cases``: list, show, assign, record outcomes, merge, split, reopen; parked events."""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from cunan.app_services import MAX_PAGE, AppServices, NewPersonRequest, page
from cunan.cases.views import CaseView, ParkedEvent
from cunan.cliutil import DataDirOption, fail, opened_app
from cunan.config import load_settings
from cunan.registry.records import PersonCategory
from cunan.security.files import write_private

cases_app = typer.Typer(help="Cases of unknown people: verify on site and record the outcome.")
console = Console()


def _as_json(view: CaseView) -> dict[str, object]:
    return {
        "id": view.id,
        "status": view.status,
        "sightings": view.sightings,
        "distinct_days": view.distinct_days,
        "cameras": list(view.cameras),
        "first_seen": view.first_seen_at.isoformat(),
        "last_seen": view.last_seen_at.isoformat(),
        "assigned_to": view.assigned_to,
        "deadline": view.deadline_at.isoformat() if view.deadline_at else None,
        "overdue": view.overdue,
        "outcome": view.outcome,
        "person_id": view.person_id,
        "best_sightings": list(view.best_sighting_ids),
    }


@cases_app.command("list")
def list_command(
    data_dir: DataDirOption = None,
    all_cases: Annotated[bool, typer.Option("--all", help="Closed and merged too.")] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open and assigned cases, frequent strangers first (distinct days, then sightings)."""
    statuses = ("open", "assigned", "closed", "merged") if all_cases else ("open", "assigned")
    with opened_app(data_dir) as (_, services):
        views = _all_cases(services, statuses)
    if json_output:
        for view in views:
            typer.echo(json.dumps(_as_json(view), ensure_ascii=False))
        return
    table = Table("id", "status", "days", "sightings", "cameras", "last seen", "deadline")
    for v in views:
        table.add_row(
            str(v.id),
            v.status + (" (overdue)" if v.overdue else ""),
            str(v.distinct_days),
            str(v.sightings),
            ", ".join(v.cameras),
            v.last_seen_at.isoformat(timespec="minutes"),
            v.deadline_at.isoformat(timespec="minutes") if v.deadline_at else "",
        )
    console.print(table)


@cases_app.command("show")
def show_command(
    case_id: int,
    data_dir: DataDirOption = None,
    crops_to: Annotated[
        Path | None, typer.Option(help="Write the best crops (JPEG) into this directory.")
    ] = None,
) -> None:
    """One case with its sightings; ``--crops-to`` decrypts its best crops to files."""
    with opened_app(data_dir) as (_, services):
        view = services.get_case(case_id)
        members = services.case_sightings(case_id)
        typer.echo(json.dumps(_as_json(view), ensure_ascii=False, indent=2))
        for m in members:
            typer.echo(
                f"  sighting {m.sighting_id} {m.camera_name} {m.seen_at.isoformat()} "
                f"faces={m.faces_used} {'alert' if m.alerted else m.suppressed_by or ''}"
            )
        if crops_to is not None:
            # Faces are biometric data: files 0600, in a directory created 0700 if missing
            # (its parent must exist: a mistyped path must not scatter faces around).
            if not crops_to.is_dir():
                if not crops_to.parent.is_dir():
                    fail(f"{crops_to.parent}: directory does not exist; create it first")
                crops_to.mkdir(mode=0o700)
            for sighting_id, jpeg in services.case_crops(case_id):
                write_private(crops_to / f"case{case_id}-sighting{sighting_id}.jpg", jpeg)


def _all_cases(services: AppServices, statuses: tuple[str, ...]) -> list[CaseView]:
    """Every case of these statuses, page by page (the listing is paginated in SQL)."""
    views: list[CaseView] = []
    while True:
        listing = services.list_cases(page(len(views), MAX_PAGE), statuses=statuses)
        views.extend(listing.items)
        if not listing.items or len(views) >= listing.total:
            # Frequent strangers first: distinct days, then sightings.
            return sorted(views, key=lambda v: v.rank_key)


def village_zone() -> ZoneInfo:
    """The village's time zone (``duties.timezone``)."""
    return load_settings().duties.zone


def local_end(moment: datetime, zone: ZoneInfo) -> datetime:
    """A moment typed on the command line, made timezone-aware in the village's zone.

    A plain date (``2026-05-10``, parsed as midnight) means the END of that local day
    (23:59:59.999999 village time); a date with a time of day is that local time; a value
    with an explicit offset is kept as given.
    """
    if moment.tzinfo is not None:
        return moment
    if moment.time() == time(0, 0):
        return datetime.combine(moment.date(), time.max, zone)
    return moment.replace(tzinfo=zone)


@cases_app.command("assign")
def assign_command(
    case_id: int,
    to: Annotated[str, typer.Option("--to", help="Staff user name or id.")],
    deadline: Annotated[
        datetime | None,
        typer.Option(
            help="Deadline; a plain date is the end of that day in the village's time zone "
            "(default: settings, 3 days)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Assign a case to a staff member with a deadline."""
    with opened_app(data_dir) as (app, services):
        zone = app.settings.duties.zone
        view = services.assign_case(
            case_id,
            services.assignee_id(to),
            local_end(deadline, zone) if deadline else None,
        )
        typer.echo(f"case {view.id} assigned until {view.deadline_at}")


def _photo_bytes(photo: Path) -> bytes:
    try:
        return photo.read_bytes()
    except OSError as exc:
        fail(f"{photo}: cannot read file ({exc.strerror or exc})")


@cases_app.command("outcome")
def outcome_command(
    case_id: int,
    kind: Annotated[str, typer.Argument(help="enrol | visitor | person | false-alarm | escalate")],
    data_dir: DataDirOption = None,
    name: Annotated[str | None, typer.Option(help="enrol: the person's name.")] = None,
    id_number: Annotated[str | None, typer.Option(help="enrol: ID number.")] = None,
    phone: Annotated[str | None, typer.Option(help="enrol: phone.")] = None,
    room: Annotated[int | None, typer.Option(help="enrol: room id.")] = None,
    landlord: Annotated[int | None, typer.Option(help="enrol: landlord id.")] = None,
    move_in: Annotated[
        datetime | None, typer.Option(help="enrol: move-in date (default: today, village time).")
    ] = None,
    consent_by: Annotated[str | None, typer.Option(help="enrol: who collected consent.")] = None,
    photo: Annotated[Path | None, typer.Option(help="enrol: a fresh photo.")] = None,
    until: Annotated[
        datetime | None,
        typer.Option(help="visitor: quiet until (a plain date: the end of that local day)."),
    ] = None,
    person: Annotated[int | None, typer.Option(help="person: the registered person id.")] = None,
    reason: Annotated[str | None, typer.Option(help="escalate: the reason.")] = None,
) -> None:
    """Record the on-site outcome; the case closes."""
    if kind == "enrol":
        if not (name and room and consent_by):
            fail("enrol needs --name, --room and --consent-by")
        fresh = _photo_bytes(photo) if photo is not None else None
        with opened_app(data_dir) as (_, services):
            # The same 补录 the web and API record: faces.* decides the model, dates are
            # the village's.
            person_id = services.close_enrol(
                case_id,
                NewPersonRequest(
                    name=name,
                    category=PersonCategory.TENANT,
                    consent_by=consent_by,
                    id_number=id_number,
                    phone=phone,
                    room_id=room,
                    landlord_id=landlord,
                    move_in=move_in.date() if move_in else None,
                ),
                fresh,
            )
        typer.echo(f"case {case_id} closed: person {person_id} enrolled")
        return
    if kind not in ("visitor", "person", "false-alarm", "escalate"):
        fail(f"unknown outcome {kind!r}")
    if kind == "visitor" and until is None:
        fail("visitor needs --until")
    if kind == "person" and person is None:
        fail("person needs --person ID")
    if kind == "escalate" and not reason:
        fail("escalate needs --reason")
    with opened_app(data_dir) as (app, services):
        if kind == "visitor" and until is not None:
            end = local_end(until, app.settings.duties.zone)
            services.close_visitor(case_id, end)
            typer.echo(f"case {case_id} closed: visitor until {end.isoformat()}")
        elif kind == "person" and person is not None:
            ids = services.close_registered_person(case_id, person)
            typer.echo(f"case {case_id} closed: {len(ids)} template(s) added to person {person}")
        elif kind == "false-alarm":
            services.close_false_alarm(case_id)
            typer.echo(f"case {case_id} closed: false alarm")
        elif reason:
            services.close_escalate(case_id, reason)
            typer.echo(f"case {case_id} closed: escalated")


@cases_app.command("merge")
def merge_command(target: int, source: int, data_dir: DataDirOption = None) -> None:
    """Merge case SOURCE into case TARGET (the same face)."""
    with opened_app(data_dir) as (_, services):
        view = services.merge_cases(target, source)
        typer.echo(f"case {source} merged into {view.id} ({view.sightings} sightings)")


@cases_app.command("split")
def split_command(
    case_id: int,
    sightings: Annotated[str, typer.Option(help="Comma-separated sighting ids to split off.")],
    data_dir: DataDirOption = None,
) -> None:
    """Move some sightings of a case into a new case."""
    try:
        ids = [int(s) for s in sightings.split(",") if s.strip()]
    except ValueError:
        fail(f"--sightings {sightings!r}: give sighting ids separated by commas")
    with opened_app(data_dir) as (_, services):
        view = services.split_case(case_id, ids)
        typer.echo(f"new case {view.id} with {view.sightings} sighting(s)")


@cases_app.command("reopen")
def reopen_command(case_id: int, data_dir: DataDirOption = None) -> None:
    """Reopen a closed case."""
    with opened_app(data_dir) as (_, services):
        services.reopen_case(case_id)
        typer.echo(f"case {case_id} reopened")


def _parked_json(event: ParkedEvent) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "sighting_id": event.sighting_id,
        "sighting_exists": event.sighting_exists,
        "camera": event.camera_name,
        "seen_at": event.seen_at.isoformat() if event.seen_at else None,
        "decision": event.decision,
        "attempts": event.attempts,
        "error": event.error,
        "parked_at": event.parked_at.isoformat(),
        "discarded_at": event.discarded_at.isoformat() if event.discarded_at else None,
        "discarded_by": event.discarded_by,
        "discard_reason": event.discard_reason,
    }


def _discarded_cell(event: ParkedEvent) -> str:
    if event.discarded_at is None:
        return ""
    return (
        f"{event.discarded_at.isoformat(timespec='seconds')} by {event.discarded_by}: "
        f"{event.discard_reason}"
    )


@cases_app.command("parked")
def parked_command(
    data_dir: DataDirOption = None,
    all_events: Annotated[
        bool, typer.Option("--all", help="Discarded events too, with who, when and why.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Sighting events the case grouping set aside after repeated failures, with the error.

    Fix the cause (the error says what failed), then hand them back with
    ``cunan cases replay-parked``; if nothing can be fixed (the sighting is gone), give
    up on them with ``cunan cases discard-parked``.
    """
    with opened_app(data_dir) as (_, services):
        events = services.parked_events(discarded=all_events)
    if json_output:
        for event in events:
            typer.echo(json.dumps(_parked_json(event), ensure_ascii=False))
        return
    if not events:
        typer.echo("no parked case events")
        return
    columns = ["event", "sighting", "camera", "seen", "attempts", "parked", "error"]
    table = Table(*columns, *(["discarded"] if all_events else []))
    for e in events:
        cells = [
            str(e.event_id),
            (str(e.sighting_id) if e.sighting_id is not None else "?")
            + ("" if e.sighting_exists else " (gone)"),
            e.camera_name or "",
            e.seen_at.isoformat(timespec="seconds") if e.seen_at else "",
            str(e.attempts) if e.attempts is not None else "?",
            e.parked_at.isoformat(timespec="seconds"),
            e.error,
        ]
        table.add_row(*cells, *([_discarded_cell(e)] if all_events else []))
    console.print(table)


@cases_app.command("replay-parked")
def replay_parked_command(
    event_ids: Annotated[
        list[int] | None, typer.Argument(help="Event ids from 'cunan cases parked'.")
    ] = None,
    all_events: Annotated[bool, typer.Option("--all", help="Every parked event.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Hand parked events back to the case grouping (audited).

    ``cunan serve`` groups them within seconds; an event that still fails is parked again.
    ``--all`` leaves discarded events alone; naming a discarded event replays it.
    """
    if bool(event_ids) == all_events:
        fail("name the events to replay (EVENT_ID ...) or pass --all, not both")
    with opened_app(data_dir) as (_, services):
        replayed = services.replay_parked(None if all_events else event_ids)
    typer.echo(f"{len(replayed)} parked event(s) handed back to the case grouping")


@cases_app.command("discard-parked")
def discard_parked_command(
    event_ids: Annotated[list[int], typer.Argument(help="Event ids from 'cunan cases parked'.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why nothing can be grouped; kept on the parked record (no names).",
        ),
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Give up on parked events whose sighting is gone for good (audited).

    They are never grouped, stay recorded as discarded and leave the list
    (``cunan cases parked --all`` shows them).
    """
    with opened_app(data_dir) as (_, services):
        discarded = services.discard_parked(event_ids, reason)
    typer.echo(f"{len(discarded)} parked event(s) discarded")
