from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cunan.notify import (
    DeadLetterStore,
    Notification,
    NotificationDispatcher,
    NotificationError,
    RetryingNotifier,
    RetryPolicy,
    WebhookNotifier,
    sign,
    verify_signature,
)
from tests.notify.conftest import SECRET, Receiver, spare_port

FAST = RetryPolicy(attempts=4, initial_s=0.01, max_s=0.05, jitter=0.0)


def _case_opened() -> Notification:
    return Notification(
        kind="case.opened",
        title="陌生人多次出现",
        body="Case 17: seen 4 times at camera 2",
        data={"case_id": 17, "camera_id": 2, "best_crops": ["/9j/4AAQ"], "embedding": [0.1]},
        created_at=datetime(2025, 6, 1, 8, 0, tzinfo=UTC),
    )


def test_signature_round_trip_and_replay_window() -> None:
    body = b'{"a":1}'
    signature = sign("k", "1700000000", body)
    assert signature.startswith("sha256=")
    assert verify_signature("k", body, "1700000000", signature, now=1700000100)
    assert not verify_signature("k", body + b" ", "1700000000", signature, now=1700000100)
    assert not verify_signature("other", body, "1700000000", signature, now=1700000100)
    # The timestamp is signed: an old request re-sent later is refused.
    assert not verify_signature("k", body, "1700000000", signature, now=1700000000 + 301)
    assert not verify_signature("k", body, "1700000001", signature, now=1700000100)


def test_retries_until_the_receiver_recovers(receiver: Receiver) -> None:
    receiver.fail_first = 2
    receiver.start()
    waits: list[float] = []
    hook = RetryingNotifier(
        WebhookNotifier(receiver.url, SECRET, timeout_s=5),
        FAST,
        channel="webhook",
        sleep=waits.append,
    )
    hook.send(_case_opened())
    assert receiver.requests == 3 and receiver.bad_signatures == 0
    assert waits == [0.01, 0.02]  # exponential backoff
    [payload] = receiver.received
    assert payload["kind"] == "case.opened" and payload["title"] == "陌生人多次出现"
    # No face data by default.
    assert payload["data"] == {"case_id": 17, "camera_id": 2}
    assert receiver.headers[0]["x-cunan-delivery"] == payload["id"]


def test_face_data_only_when_configured(receiver: Receiver) -> None:
    receiver.start()
    WebhookNotifier(receiver.url, SECRET, include_face_data=True).send(_case_opened())
    assert receiver.received[0]["data"]["best_crops"] == ["/9j/4AAQ"]


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.start()
    hook = RetryingNotifier(
        WebhookNotifier(receiver.url, "wrong secret"), FAST, channel="webhook", sleep=lambda s: None
    )
    with pytest.raises(NotificationError, match="HTTP 401") as caught:
        hook.send(_case_opened())
    assert receiver.requests == 1 and caught.value.attempts == 1
    assert "token" not in str(caught.value)  # the URL's query is never shown


def test_down_receiver_makes_a_dead_letter_replayed_when_it_is_up(
    receiver: Receiver, store: DeadLetterStore
) -> None:
    hook = RetryingNotifier(
        WebhookNotifier(receiver.url, SECRET, timeout_s=2),
        FAST,
        channel="webhook",
        sleep=lambda s: None,
    )
    dispatcher = NotificationDispatcher({"webhook": hook}, dead_letters=store)
    notification = _case_opened()
    report = dispatcher.dispatch(notification)
    dispatcher.close()
    assert not report.ok and "unreachable" in report.failed["webhook"]
    [letter] = store.pending()
    assert report.dead_letters == {"webhook": letter.id}
    assert (letter.channel, letter.kind, letter.attempts) == ("webhook", "case.opened", 4)
    assert letter.notification_id == notification.id

    # Still down: the replay fails and the letter stays pending.
    outcome = store.replay(letter.id, {"webhook": hook})
    assert not outcome.delivered
    assert store.pending()[0].replay_attempts == 1

    receiver.start()
    assert store.replay(letter.id, {"webhook": hook}).delivered
    assert store.pending() == []
    [done] = store.pending(include_replayed=True)
    assert done.replayed_at is not None
    [payload] = receiver.received
    assert payload["id"] == notification.id and payload["data"] == {"case_id": 17, "camera_id": 2}


def test_spare_port_helper_gives_a_closed_port() -> None:
    port = spare_port()
    hook = WebhookNotifier(f"http://127.0.0.1:{port}/", SECRET, timeout_s=2)
    with pytest.raises(NotificationError, match="unreachable"):
        hook.send(_case_opened())
