"""Notifications to staff: webhook, MQTT and e-mail, with retries and a dead-letter list."""

from cunan.notify.deadletters import DeadLetterStore, DeadLetterView, ReplayOutcome
from cunan.notify.dispatcher import DispatchReport, NotificationDispatcher
from cunan.notify.errors import NotificationError, UnknownChannelError
from cunan.notify.message import Notification, Notifier, strip_face_data, to_payload
from cunan.notify.mqtt import MqttNotifier
from cunan.notify.retry import RetryingNotifier, RetryPolicy
from cunan.notify.settings import NotifySettings, build_notifiers
from cunan.notify.smtp import EmailNotifier
from cunan.notify.webhook import WebhookNotifier, sign, verify_signature

__all__ = [
    "DeadLetterStore",
    "DeadLetterView",
    "DispatchReport",
    "EmailNotifier",
    "MqttNotifier",
    "Notification",
    "NotificationDispatcher",
    "NotificationError",
    "Notifier",
    "NotifySettings",
    "ReplayOutcome",
    "RetryPolicy",
    "RetryingNotifier",
    "UnknownChannelError",
    "WebhookNotifier",
    "build_notifiers",
    "sign",
    "strip_face_data",
    "to_payload",
    "verify_signature",
]
