"""Notification commands: ``cunan notify dead-letters list|replay`` (mounted by cunan.cli)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.cliutil import DataDirOption, fail, opened_database, user_errors
from cunan.config import Settings
from cunan.notify.deadletters import DeadLetterStore
from cunan.notify.errors import UnknownChannelError
from cunan.notify.message import Notifier
from cunan.notify.settings import NotifySettings, build_notifiers
from cunan.security.keys import KeyFileError
from cunan.storage.database import Database

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

#: Replaced in tests; the CLI builds the channels from the settings.
channel_factory = build_notifiers


def _with_web_channels(
    database: Database, settings: Settings, data_dir: Path | None
) -> NotifySettings:
    """The file's channels and those added on the settings page, when the key file is here
    to decrypt them (their dead letters can then be replayed from the command line too)."""
    from cunan.notify.channels import ChannelStore
    from cunan.registry.datadir import key_file_path, resolve_data_dir
    from cunan.security.cipher import FieldCipher
    from cunan.security.keys import KeyRing
    from cunan.storage.migrate import is_up_to_date

    key_file = key_file_path(resolve_data_dir(data_dir, settings), settings)
    # This command does not migrate: an older schema has no channels from the web yet.
    if not key_file.is_file() or not is_up_to_date(database):
        return settings.notify
    return ChannelStore(database, FieldCipher(KeyRing.load(key_file))).merged(settings.notify)


@contextmanager
def _store(data_dir: Path | None) -> Iterator[tuple[DeadLetterStore, Mapping[str, Notifier]]]:
    with opened_database(data_dir) as (database, settings):
        with user_errors(ValueError, KeyFileError):
            channels = channel_factory(_with_web_channels(database, settings, data_dir))
        yield DeadLetterStore(database), channels


@dead_letters_app.command("list")
def list_command(
    data_dir: DataDirOption = None,
    include_replayed: Annotated[
        bool, typer.Option("--all", help="Also show dead letters already replayed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List notifications that exhausted their retries."""
    with _store(data_dir) as (store, _channels):
        letters = store.pending(include_replayed=include_replayed)
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
    with _store(data_dir) as (store, channels):
        try:
            if replay_all:
                outcomes = store.replay_all(channels)
            else:
                assert letter_id is not None
                outcomes = [store.replay(letter_id, channels)]
        except (LookupError, UnknownChannelError) as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))
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
