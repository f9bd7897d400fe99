"""The installation wires gas alarms: a fresh HIGH alarm reaches the webhook through the gas
worker that ``start`` runs, woken at once, and ``stop`` ends it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cunan.app import BackgroundOptions, CunanApp
from cunan.config import Settings
from cunan.notify.settings import NotifySettings, WebhookSettings
from cunan.registry.datadir import initialise
from tests.gas.alarm_fixtures import ingest, readings, seed
from tests.notify.conftest import SECRET, Receiver, spare_port

#: Hang guard only: no timing is asserted.
DEADLINE_S = 60.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(port=spare_port())
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_a_new_high_alarm_is_notified_by_the_running_installation(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = Settings(
        notify=NotifySettings(webhooks=[WebhookSettings(url=receiver.url, secret=SECRET)])
    )
    data = tmp_path / "data"
    initialise(
        data,
        settings,
        admin_username="admin",
        admin_password="Correct-horse-battery-9",
        village_name="桃源村",
    ).close()
    app = CunanApp.open(settings, data)
    try:
        seed(app.registry.database, village_id=app.registry.service.default_village_id())
        app.start(BackgroundOptions(cameras=False, cases=False, duties=True, gas=True))
        assert any(t.name == "cunan-gas-alarms" for t in app._threads)
        start = datetime.now(UTC) - timedelta(seconds=30)
        ingest(app.gas_alarms, readings("DET-A1", start, [65, 66, 67]))
        end = time.monotonic() + DEADLINE_S
        while not receiver.received and time.monotonic() < end:
            time.sleep(0.1)
        assert [r["kind"] for r in receiver.received] == ["gas.alarm"]
        assert receiver.received[0]["data"]["round"] == 1
        assert receiver.bad_signatures == 0
        app.stop()
        assert app.healthy() and app._threads == []
    finally:
        app.close()
