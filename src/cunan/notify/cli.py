"""Notification commands: ``cunan notify dead-letters list|replay`` (mounted by cunan.cli)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.cliutil import DataDirOption, fail, opened_app
from cunan.notify.errors import UnknownChannelError
from cunan.notify.message import Notifier
from cunan.notify.settings import NotifySettings

#: Exit codes: 0 done, 1 some replay failed (try again later), 2 the command could not run.
EXIT_UNDELIVERED = 1

console = Console()

notify_app = typer.Typer(
    help="Notifications: WeCom and DingTalk robots, webhook, MQTT, e-mail.", no_args_is_help=True
)
dead_letters_app = typer.Typer(
    help="Notifications that could not be delivered.", no_args_is_help=True
)
notify_app.add_typer(dead_letters_app, name="dead-letters")

#: Set in tests to record sends. Unset, a replay uses the installation's own channels: the
#: settings file's and those added on the settings page, as the server sends to them.
channel_factory: Callable[[NotifySettings], Mapping[str, Notifier]] | None = None


@dead_letters_app.command("list")
def list_command(
    data_dir: DataDirOption = None,
    include_replayed: Annotated[
        bool, typer.Option("--all", help="Also show dead letters already replayed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List notifications that exhausted their retries."""
    with opened_app(data_dir) as (_, services):
        letters = services.dead_letters(include_replayed=include_replayed)
    if as_json:
        for d in letters:
            print(
                json.dumps(
                    {
                        "id": d.id,
                        "channel": d.channel,
                        "notification_id": d.notification_id,
                        "kind": d.kind,
                        "attempts": d.attempts,
                        "last_error": d.last_error,
                        "failed_at": d.failed_at.isoformat(),
                        "replay_attempts": d.replay_attempts,
                        "replayed_at": d.replayed_at.isoformat() if d.replayed_at else None,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("id", "channel", "kind", "failed at (UTC)", "tries", "replays", "last error"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            str(d.id),
            d.channel,
            d.kind,
            d.failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(d.attempts),
            str(d.replay_attempts) + (" (delivered)" if d.replayed_at else ""),
            d.last_error,
        )
    console.print(table)


@dead_letters_app.command("replay")
def replay_command(
    letter_id: Annotated[int | None, typer.Argument(help="Dead letter id (see list).")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every pending one.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Send dead letters again on their channels. Exit 0 all delivered, 1 some failed."""
    if (letter_id is None) == (not replay_all):
        fail("give one dead letter ID or --all")
    with opened_app(data_dir, UnknownChannelError) as (app, services):
        channels = None if channel_factory is None else channel_factory(app.settings.notify)
        outcomes = services.replay_dead_letters(None if replay_all else letter_id, channels)
    failed = [o for o in outcomes if not o.delivered]
    for o in outcomes:
        verdict = "delivered" if o.delivered else f"failed: {o.error}"
        console.print(
            f"dead letter {o.id} on {o.channel}: {verdict}", markup=False, highlight=False
        )
    if not outcomes:
        console.print("no dead letters to replay")
    if failed:
        raise typer.Exit(EXIT_UNDELIVERED)
