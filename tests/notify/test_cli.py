from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cunan.notify import DeadLetterStore, Notification, NotificationError, Notifier
from cunan.notify import cli as notify_cli
from cunan.notify.cli import notify_app
from cunan.registry.datadir import Registry
from tests.cli_helpers import registry
from tests.notify.test_dispatcher import Recorder

__all__ = ["registry"]

runner = CliRunner()


@pytest.fixture
def data_dir(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Recorder]:
    """An installation with two dead letters; the commands act as its administrator."""
    store = DeadLetterStore(registry.database)
    for i in range(2):
        store.add(
            "webhook",
            Notification(kind="case.opened", title="t", body="b", data={"case_id": i}),
            NotificationError("webhook", "down"),
        )
    recorder = Recorder()

    def factory(_settings: object) -> Mapping[str, Notifier]:
        return {"webhook": recorder}

    monkeypatch.setattr(notify_cli, "channel_factory", factory)
    return registry.data_dir, recorder


def test_list_and_replay(data_dir: tuple[Path, Recorder]) -> None:
    path, recorder = data_dir
    listed = runner.invoke(notify_app, ["dead-letters", "list", "--data-dir", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    ids = [json.loads(line)["id"] for line in listed.output.splitlines()]
    assert len(ids) == 2
    one = runner.invoke(
        notify_app, ["dead-letters", "replay", str(ids[0]), "--data-dir", str(path)]
    )
    assert one.exit_code == 0, one.output
    assert f"dead letter {ids[0]} on webhook: delivered" in one.output
    rest = runner.invoke(notify_app, ["dead-letters", "replay", "--all", "--data-dir", str(path)])
    assert rest.exit_code == 0
    assert [n.data["case_id"] for n in recorder.sent] == [0, 1]
    table = runner.invoke(notify_app, ["dead-letters", "list", "--all", "--data-dir", str(path)])
    assert "delivered" in table.output


def test_replay_errors(data_dir: tuple[Path, Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = data_dir
    missing = runner.invoke(notify_app, ["dead-letters", "replay", "99", "--data-dir", str(path)])
    assert missing.exit_code == 3 and "no dead letter 99" in missing.output  # not found
    neither = runner.invoke(notify_app, ["dead-letters", "replay", "--data-dir", str(path)])
    assert neither.exit_code == 2
    monkeypatch.setattr(notify_cli, "channel_factory", lambda _s: {})
    unknown = runner.invoke(notify_app, ["dead-letters", "replay", "1", "--data-dir", str(path)])
    assert unknown.exit_code == 3 and "not configured" in unknown.output
