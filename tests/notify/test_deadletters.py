"""Dead letters on both engines: pending and replayed ones, failed and delivered replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cunan.notify import DeadLetterStore, Notification, NotificationError
from cunan.storage.database import Database
from tests.notify.test_dispatcher import Down, Recorder
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

T0 = datetime(2025, 6, 1, 1, 0, tzinfo=UTC)


def test_replays_mark_delivered_letters_and_leave_failed_ones_pending(database: Database) -> None:
    ticks = iter(range(100))
    store = DeadLetterStore(database, clock=lambda: T0 + timedelta(minutes=next(ticks)))
    first, second = (
        store.add(
            "webhook",
            Notification(kind="case.opened", title="t", body="b", data={"case_id": i}),
            NotificationError("webhook", f"down {i}"),
        )
        for i in range(2)
    )
    assert [d.id for d in store.pending()] == [first, second]
    assert store.notification(second).data == {"case_id": 1}

    failed = store.replay(first, {"webhook": Down("webhook")})
    assert not failed.delivered
    recorder = Recorder()
    assert store.replay(second, {"webhook": recorder}).delivered
    assert [n.data for n in recorder.sent] == [{"case_id": 1}]

    [pending] = store.pending()
    assert pending.id == first and pending.replay_attempts == 1
    assert "unreachable" in pending.last_error and pending.replayed_at is None
    everything = store.pending(include_replayed=True)
    assert [(d.id, d.replayed_at) for d in everything] == [
        (first, None),
        (second, T0 + timedelta(minutes=2)),  # the third tick: two adds, then this replay
    ]
    # A delivered letter is not sent again.
    assert store.replay(second, {"webhook": recorder}).delivered
    assert len(recorder.sent) == 1
    with pytest.raises(LookupError, match="no dead letter"):
        store.notification(max(first, second) + 1)
