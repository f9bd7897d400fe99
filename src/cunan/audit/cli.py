"""Audit commands: ``cunan audit verify`` and ``cunan audit list`` (mounted by cunan.cli).

``verify`` reads the database alone (a forensic check: it must not migrate or change the
database and needs no key); ``list`` is a read of the installation as the acting account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.app_services import page
from cunan.audit.chain import verify_chain
from cunan.cliutil import DataDirOption, err_console, fail, opened_app, opened_database
from cunan.storage.database import Database, damaged_message
from cunan.storage.errors import StorageError

#: Exit codes: 0 intact, 1 the chain is broken (an answer), 2 the check could not run.
EXIT_BROKEN = 1

console = Console()

audit_app = typer.Typer(
    help="Inspect and verify the tamper-evident audit log.", no_args_is_help=True
)


@contextmanager
def open_audit_database(data_dir: Path | None) -> Iterator[Database]:
    """The registry's database, without migrating it (verification must not change it)."""
    with opened_database(data_dir) as (database, _settings):
        try:
            yield database
        except StorageError as exc:
            fail(f"{exc} (has the database been migrated? any cunan command that opens it does)")


@audit_app.command("verify")
def verify_command(
    data_dir: DataDirOption = None,
    anchor: Annotated[
        str | None,
        typer.Option(help="A head hash recorded earlier; the chain must still contain it."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Recompute the whole hash chain. Exit 0 intact, 1 broken (and where), 2+ an error."""
    with open_audit_database(data_dir) as database:
        report = verify_chain(database, anchor=anchor)
        # A chain that verifies says nothing of the other tables: a damaged page anywhere in
        # the file is reported too (the chain's own pages would have failed above).
        damage = database.damage()
        if damage:
            message = damaged_message(database.url)
    if damage:
        if as_json:
            print(json.dumps({"ok": False, "damaged": True, "problem": damage[0]}))
        else:
            err_console.print(
                f"error: {message} (first problem: {damage[0]})",
                markup=False,
                highlight=False,
            )
        raise typer.Exit(EXIT_BROKEN)
    problem = report.problem
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "head_seq": report.head_seq,
                    "head_hash": report.head_hash,
                    "problem": None
                    if problem is None
                    else {
                        "seq": problem.seq,
                        "kind": str(problem.kind),
                        "message": problem.message,
                    },
                }
            )
        )
    elif problem is None:
        console.print(
            f"audit chain intact: {report.entries} entries; head seq {report.head_seq} "
            f"hash {report.head_hash}\n(record the head hash elsewhere and pass it as --anchor "
            "later to detect a truncated or rewritten log)",
            markup=False,
            highlight=False,
        )
    else:
        err_console.print(
            f"audit chain BROKEN at seq {problem.seq}: {problem.kind}: {problem.message}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if problem is not None:
        raise typer.Exit(EXIT_BROKEN)


@audit_app.command("list")
def list_command(
    data_dir: DataDirOption = None,
    limit: Annotated[
        int, typer.Option(min=1, max=200, help="How many entries, newest first (max 200).")
    ] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many of the newest.")] = 0,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. login.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor, e.g. user:3.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show the newest audit entries (administrators and auditors)."""
    with opened_app(data_dir) as (_, services):
        listing = services.list_audit(page(offset, limit), action=action, actor=actor)
    records = listing.items
    if as_json:
        for r in records:
            print(
                json.dumps(
                    {
                        "seq": r.seq,
                        "recorded_at": r.recorded_at.isoformat(),
                        "actor": r.actor,
                        "action": r.action,
                        "target_type": r.target_type,
                        "target_id": r.target_id,
                        "details": json.loads(r.details),
                        "hash": r.hash,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(title=f"audit log: {len(records)} of {listing.total} entries, newest first")
    for column in ("seq", "time (UTC)", "actor", "action", "target", "details"):
        table.add_column(column)
    for r in records:
        target = f"{r.target_type}:{r.target_id}" if r.target_type else (r.target_id or "")
        table.add_row(
            str(r.seq),
            r.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.actor,
            r.action,
            target,
            r.details,
        )
    console.print(table)
