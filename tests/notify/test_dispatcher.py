from __future__ import annotations

import logging
import threading

import pytest

from cunan.notify import (
    DeadLetterStore,
    Notification,
    NotificationDispatcher,
    NotificationError,
    NotifySettings,
    RetryingNotifier,
    RetryPolicy,
    build_notifiers,
    strip_face_data,
    to_payload,
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


class Down:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def send(self, notification: Notification) -> None:
        self.calls += 1
        raise NotificationError(self.name, "host 10.0.0.9:25 unreachable (refused)")


class Blocking:
    """Stays stuck until released: a channel busy retrying must not hold the others back."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, notification: Notification) -> None:
        assert self.release.wait(30)


class Crashing:
    def send(self, notification: Notification) -> None:
        raise KeyError("bug")


def _alert() -> Notification:
    return Notification(
        kind="case.opened",
        title="张三 seen",  # a title may name someone: it must never reach the logs
        body="body",
        data={
            "case_id": 1,
            "best_crops": ["x"],
            "nested": {"embedding": [1.0], "n": 2},
            "sightings": [{"id": 4, "crop_jpeg": "y"}],
            "front_photo": "z",
        },
    )


def test_strip_face_data_at_any_depth() -> None:
    assert strip_face_data(_alert().data) == {
        "case_id": 1,
        "nested": {"n": 2},
        "sightings": [{"id": 4}],
    }
    assert to_payload(_alert(), include_face_data=True)["data"]["best_crops"] == ["x"]


def test_one_channel_down_does_not_stop_the_others(
    store: DeadLetterStore, caplog: pytest.LogCaptureFixture
) -> None:
    ok, down, crash = Recorder(), Down("email"), Crashing()
    retrying = RetryingNotifier(
        down, RetryPolicy(attempts=3, initial_s=0, jitter=0), channel="email", sleep=lambda s: None
    )
    dispatcher = NotificationDispatcher(
        {"webhook": ok, "email": retrying, "mqtt": crash}, dead_letters=store
    )
    with caplog.at_level(logging.INFO):
        report = dispatcher.dispatch(_alert())
    dispatcher.close()
    assert report.delivered == ("webhook",)
    assert set(report.failed) == {"email", "mqtt"}
    assert down.calls == 3
    letters = {d.channel: d for d in store.pending()}
    assert set(letters) == {"email", "mqtt"} and letters["email"].attempts == 3
    assert "张三" not in caplog.text and "best_crops" not in caplog.text
    # Dead letters never keep face data.
    replayed = store.notification(letters["email"].id)
    assert replayed.data == {"case_id": 1, "nested": {"n": 2}, "sightings": [{"id": 4}]}


def test_a_stuck_channel_does_not_delay_the_others() -> None:
    ok, stuck = Recorder(), Blocking()
    dispatcher = NotificationDispatcher({"stuck": stuck, "webhook": ok})
    done = threading.Event()
    thread = threading.Thread(target=lambda: (dispatcher.dispatch(_alert()), done.set()))
    thread.start()
    for _ in range(200):
        if ok.sent:
            break
        threading.Event().wait(0.05)
    assert len(ok.sent) == 1 and not done.is_set()
    stuck.release.set()
    thread.join(30)
    assert done.is_set()
    dispatcher.close()


def test_settings_build_retrying_channels() -> None:
    settings = NotifySettings.model_validate(
        {
            "webhooks": [{"url": "http://127.0.0.1:9/x", "secret": "k"}],
            "mqtt": [{"topic": "cunan/alerts"}],
            "email": [{"host": "127.0.0.1", "sender": "a@b.c", "recipients": ["d@e.f"]}],
        }
    )
    channels = build_notifiers(settings)
    assert set(channels) == {"webhook", "mqtt", "email"}
    assert all(isinstance(c, RetryingNotifier) for c in channels.values())
    with pytest.raises(ValueError, match="unique"):
        NotifySettings.model_validate({"mqtt": [{}, {}]})
