"""Notification settings (``[notify]`` in the TOML file) and building channels from them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from cunan.notify.message import Notifier
from cunan.notify.mqtt import MqttNotifier
from cunan.notify.retry import RetryingNotifier, RetryPolicy
from cunan.notify.smtp import EmailNotifier
from cunan.notify.webhook import WebhookNotifier


class RetrySettings(BaseModel):
    """Tries per notification before it becomes a dead letter; waits double each time."""

    attempts: int = Field(default=4, ge=1, le=20)
    initial_backoff_s: float = Field(default=2.0, ge=0.0)
    max_backoff_s: float = Field(default=60.0, ge=0.0)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts, initial_s=self.initial_backoff_s, max_s=self.max_backoff_s
        )


class WebhookSettings(BaseModel):
    name: str = "webhook"
    url: str
    #: Shared secret for the HMAC-SHA256 signature (give each receiver its own).
    secret: SecretStr
    timeout_s: float = Field(default=10.0, gt=0.0)
    retry: RetrySettings = RetrySettings()
    headers: dict[str, str] = {}
    use_env_proxy: bool = False


class MqttSettings(BaseModel):
    name: str = "mqtt"
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic: str = "cunan/alerts"
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0.0)
    retry: RetrySettings = RetrySettings(attempts=3)


class EmailSettings(BaseModel):
    name: str = "email"
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    sender: str
    recipients: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=20.0, gt=0.0)
    retry: RetrySettings = RetrySettings(attempts=3)


class NotifySettings(BaseModel):
    """Where alerts go. Nothing is sent anywhere until a channel is configured."""

    #: Send crops and embeddings along (face data leaves the village's machines): off by
    #: default, as DOMAIN.md requires; when off every face-data field is stripped.
    include_face_data: bool = False
    webhooks: list[WebhookSettings] = []
    mqtt: list[MqttSettings] = []
    email: list[EmailSettings] = []

    @model_validator(mode="after")
    def _unique_names(self) -> NotifySettings:
        names = [
            *(c.name for c in self.webhooks),
            *(c.name for c in self.mqtt),
            *(c.name for c in self.email),
        ]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"notification channel names must be unique: {duplicates}")
        return self


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def build_notifiers(settings: NotifySettings) -> dict[str, Notifier]:
    """Every configured channel by name, each wrapped in its retry policy."""
    face = settings.include_face_data
    channels: dict[str, Notifier] = {}
    for hook in settings.webhooks:
        inner: Notifier = WebhookNotifier(
            hook.url,
            hook.secret.get_secret_value(),
            channel=hook.name,
            timeout_s=hook.timeout_s,
            include_face_data=face,
            headers=hook.headers,
            use_env_proxy=hook.use_env_proxy,
        )
        channels[hook.name] = RetryingNotifier(inner, hook.retry.policy(), channel=hook.name)
    for broker in settings.mqtt:
        inner = MqttNotifier(
            broker.host,
            broker.topic,
            port=broker.port,
            channel=broker.name,
            qos=broker.qos,
            retain=broker.retain,
            username=broker.username,
            password=_secret(broker.password),
            tls=broker.tls,
            ca_file=broker.ca_file,
            timeout_s=broker.timeout_s,
            include_face_data=face,
        )
        channels[broker.name] = RetryingNotifier(inner, broker.retry.policy(), channel=broker.name)
    for mail in settings.email:
        inner = EmailNotifier(
            mail.host,
            sender=mail.sender,
            recipients=mail.recipients,
            port=mail.port,
            channel=mail.name,
            security=mail.security,
            username=mail.username,
            password=_secret(mail.password),
            ca_file=mail.ca_file,
            timeout_s=mail.timeout_s,
            include_face_data=face,
        )
        channels[mail.name] = RetryingNotifier(inner, mail.retry.policy(), channel=mail.name)
    return channels
