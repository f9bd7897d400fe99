"""Notification settings (``[notify]`` in the TOML file) and building channels from them."""

from __future__ import annotations

from datetime import UTC, tzinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from cunan.notify.message import Notifier
from cunan.notify.mqtt import MqttNotifier
from cunan.notify.retry import RetryingNotifier, RetryPolicy
from cunan.notify.robots import DINGTALK_BASE, WECOM_BASE, DingTalkNotifier, WeComNotifier
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


class WeComSettings(BaseModel):
    """A WeCom (企业微信) group robot: the ``key`` from its webhook address."""

    name: str = Field(default="wecom", min_length=1, max_length=64)
    key: SecretStr
    #: Where the robot API is (tests and private deployments point it elsewhere).
    base_url: str = WECOM_BASE
    msgtype: Literal["markdown", "text"] = "markdown"
    #: Members to @-mention by mobile number (``"@all"``: everyone); needs ``msgtype="text"``.
    mentioned_mobiles: list[str] = []
    timeout_s: float = Field(default=10.0, gt=0.0)
    # WeCom allows 20 messages a minute per robot: wait long enough for the limit to pass.
    retry: RetrySettings = RetrySettings(attempts=4, initial_backoff_s=5.0, max_backoff_s=60.0)
    use_env_proxy: bool = False


class DingTalkSettings(BaseModel):
    """A DingTalk (钉钉) custom robot: the ``access_token`` from its webhook address, and the
    加签 secret (``SEC...``) when the robot is set to sign."""

    name: str = Field(default="dingtalk", min_length=1, max_length=64)
    access_token: SecretStr
    secret: SecretStr | None = None
    base_url: str = DINGTALK_BASE
    msgtype: Literal["markdown", "text"] = "markdown"
    at_mobiles: list[str] = []
    timeout_s: float = Field(default=10.0, gt=0.0)
    retry: RetrySettings = RetrySettings(attempts=4, initial_backoff_s=5.0, max_backoff_s=60.0)
    use_env_proxy: bool = False


class NotifySettings(BaseModel):
    """Where alerts go. Nothing is sent anywhere until a channel is configured."""

    #: Send crops and embeddings along (face data leaves the village's machines): off by
    #: default, as DOMAIN.md requires; when off every face-data field is stripped.
    include_face_data: bool = False
    webhooks: list[WebhookSettings] = []
    mqtt: list[MqttSettings] = []
    email: list[EmailSettings] = []
    wecom: list[WeComSettings] = []
    dingtalk: list[DingTalkSettings] = []

    def names(self) -> list[str]:
        return [
            *(c.name for c in self.webhooks),
            *(c.name for c in self.mqtt),
            *(c.name for c in self.email),
            *(c.name for c in self.wecom),
            *(c.name for c in self.dingtalk),
        ]

    @model_validator(mode="after")
    def _unique_names(self) -> NotifySettings:
        names = self.names()
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"notification channel names must be unique: {duplicates}")
        return self


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def build_robot(channel: WeComSettings | DingTalkSettings, zone: tzinfo = UTC) -> Notifier:
    """One robot channel without retries (the settings page's test message uses it bare)."""
    if isinstance(channel, WeComSettings):
        return WeComNotifier(
            channel.key.get_secret_value(),
            channel=channel.name,
            base_url=channel.base_url,
            msgtype=channel.msgtype,
            mentioned_mobiles=channel.mentioned_mobiles,
            timeout_s=channel.timeout_s,
            zone=zone,
            use_env_proxy=channel.use_env_proxy,
        )
    return DingTalkNotifier(
        channel.access_token.get_secret_value(),
        secret=_secret(channel.secret),
        channel=channel.name,
        base_url=channel.base_url,
        msgtype=channel.msgtype,
        at_mobiles=channel.at_mobiles,
        timeout_s=channel.timeout_s,
        zone=zone,
        use_env_proxy=channel.use_env_proxy,
    )


def build_notifiers(settings: NotifySettings, *, zone: tzinfo = UTC) -> dict[str, Notifier]:
    """Every configured channel by name, each wrapped in its retry policy. Robots write
    times in ``zone`` (the village's)."""
    face = settings.include_face_data
    channels: dict[str, Notifier] = {}
    # Robots post Chinese text built from ids and counts: face data never goes to a group.
    robots: list[WeComSettings | DingTalkSettings] = [*settings.wecom, *settings.dingtalk]
    for robot in robots:
        channels[robot.name] = RetryingNotifier(
            build_robot(robot, zone), robot.retry.policy(), channel=robot.name
        )
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
