"""Errors of notification channels."""

from __future__ import annotations

from cunan.errors import NotFound


class NotificationError(Exception):
    """A channel could not deliver a notification.

    ``retryable`` is false when trying again cannot help (wrong credentials, a 4xx answer).
    Messages name the channel and the reason, never the notification's content.
    """

    def __init__(self, channel: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.retryable = retryable
        #: Tries made before giving up (set by the retrying wrapper).
        self.attempts = 1


class UnknownChannelError(LookupError, NotFound):
    """A dead letter names a channel that is no longer configured."""
