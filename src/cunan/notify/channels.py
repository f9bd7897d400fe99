"""Notification channels added on the settings page: kept encrypted, merged with the file's."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from pydantic import SecretStr, ValidationError

from cunan.audit.log import AuditLog
from cunan.errors import Conflict, InvalidInput, NotFound
from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, Notifier
from cunan.notify.mqtt import MqttNotifier
from cunan.notify.settings import (
    DingTalkSettings,
    EmailSettings,
    MqttSettings,
    NotifySettings,
    WebhookSettings,
    WeComSettings,
    build_robot,
)
from cunan.notify.smtp import EmailNotifier
from cunan.notify.webhook import WebhookNotifier, redact_url
from cunan.security.cipher import DecryptionError, FieldCipher
from cunan.storage.database import Database
from cunan.storage.notify_repository import NotifyChannelRepository
from cunan.storage.notify_tables import NotifyChannel

logger = logging.getLogger(__name__)

WebKind = Literal["webhook", "wecom", "dingtalk", "mqtt", "email"]
WebChannelSettings = (
    WebhookSettings | WeComSettings | DingTalkSettings | MqttSettings | EmailSettings
)

# The settings page's channels are the file's models plus the administrator's explicit leave
# to reach a local address (cunan.notify.address): the file's channels are the operator's own.


class PageWebhook(WebhookSettings):
    allow_local_address: bool = False


class PageWeCom(WeComSettings):
    allow_local_address: bool = False


class PageDingTalk(DingTalkSettings):
    allow_local_address: bool = False


class PageMqtt(MqttSettings):
    allow_local_address: bool = False


class PageEmail(EmailSettings):
    allow_local_address: bool = False


#: The kinds the settings page adds: the group robots, webhooks, MQTT brokers and e-mail.
WEB_KINDS: dict[str, type[WebChannelSettings]] = {
    "wecom": PageWeCom,
    "dingtalk": PageDingTalk,
    "webhook": PageWebhook,
    "mqtt": PageMqtt,
    "email": PageEmail,
}
#: The NotifySettings list each kind joins.
KIND_LISTS: dict[str, str] = {
    "wecom": "wecom",
    "dingtalk": "dingtalk",
    "webhook": "webhooks",
    "mqtt": "mqtt",
    "email": "email",
}
#: Fields holding secrets: never shown again, kept when an edit leaves them empty.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "secret"),
    "wecom": ("key",),
    "dingtalk": ("access_token", "secret"),
    "mqtt": ("password",),
    "email": ("password",),
}


def channel_context(channel_id: int) -> bytes:
    """Associated data binding a channel's ciphertext to its row."""
    return f"notify-channel:{channel_id}".encode()


def kind_of(channel: WebChannelSettings) -> WebKind:
    if isinstance(channel, WeComSettings):
        return "wecom"
    if isinstance(channel, DingTalkSettings):
        return "dingtalk"
    if isinstance(channel, MqttSettings):
        return "mqtt"
    if isinstance(channel, EmailSettings):
        return "email"
    return "webhook"


def allows_local(channel: object) -> bool:
    """Whether the administrator allowed this page channel a local or private address."""
    return bool(getattr(channel, "allow_local_address", False))


def _reveal(value: Any) -> Any:
    """A model dump with its secrets in clear (for the ciphertext only)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {str(k): _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def parse(kind: str, values: Mapping[str, Any]) -> WebChannelSettings:
    """A channel's settings from a form, checked by the TOML file's own model."""
    model = WEB_KINDS.get(kind)
    if model is None:
        raise InvalidInput(f"channel kind {kind!r}: one of {', '.join(WEB_KINDS)}")
    try:
        channel = model.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "channel"
        raise InvalidInput(
            f"channel {values.get('name', '?')}: {where}: {first.get('msg', 'invalid')}"
        ) from None
    # Build it once: the notifier's own checks (an http(s) address, a key) refuse it now,
    # on the form, rather than at the first alert.
    try:
        build_one(channel)
    except ValueError as exc:
        message = str(exc)
        if not message.startswith(f"{channel.name}:"):
            message = f"{channel.name}: {message}"
        raise InvalidInput(f"channel {message}") from None
    return channel


def build_one(channel: WebChannelSettings, zone: tzinfo = UTC) -> Notifier:
    """One channel without retries (a test message shows the first answer at once)."""
    if isinstance(channel, MqttSettings):
        return MqttNotifier(
            channel.host,
            channel.topic,
            port=channel.port,
            channel=channel.name,
            qos=channel.qos,
            retain=channel.retain,
            username=channel.username,
            password=_secret(channel.password),
            tls=channel.tls,
            ca_file=channel.ca_file,
            timeout_s=channel.timeout_s,
        )
    if isinstance(channel, EmailSettings):
        return EmailNotifier(
            channel.host,
            sender=channel.sender,
            recipients=channel.recipients,
            port=channel.port,
            channel=channel.name,
            security=channel.security,
            username=channel.username,
            password=_secret(channel.password),
            ca_file=channel.ca_file,
            timeout_s=channel.timeout_s,
        )
    if isinstance(channel, WebhookSettings):
        return WebhookNotifier(
            channel.url,
            channel.secret.get_secret_value(),
            channel=channel.name,
            timeout_s=channel.timeout_s,
            headers=channel.headers,
            use_env_proxy=channel.use_env_proxy,
        )
    return build_robot(channel, zone)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A channel as the settings page lists it: never a secret, the address as host only."""

    name: str
    kind: str
    #: ``file`` (the TOML file: change it there) or ``web`` (the settings page).
    source: str
    target: str
    id: int | None = None
    msgtype: str | None = None
    mentions: int = 0
    signed: bool | None = None
    readable: bool = True
    updated_by: str | None = None
    updated_at: datetime | None = None
    #: An MQTT channel's topic.
    topic: str | None = None
    #: How many addresses an e-mail channel writes to (counts only: addresses are personal).
    recipients: int = 0
    #: The administrator allowed a local or private address (page channels only).
    local_allowed: bool = False


def describe(channel: object, source: str, row: NotifyChannel | None = None) -> ChannelView:
    extra: dict[str, Any] = {"local_allowed": allows_local(channel)}
    if row is not None:
        extra |= {"id": row.id, "updated_by": row.updated_by, "updated_at": row.updated_at}
    if isinstance(channel, WeComSettings):
        return ChannelView(
            channel.name,
            "wecom",
            source,
            redact_url(channel.base_url),
            msgtype=channel.msgtype,
            mentions=len(channel.mentioned_mobiles),
            **extra,
        )
    if isinstance(channel, DingTalkSettings):
        return ChannelView(
            channel.name,
            "dingtalk",
            source,
            redact_url(channel.base_url),
            msgtype=channel.msgtype,
            mentions=len(channel.at_mobiles),
            signed=channel.secret is not None,
            **extra,
        )
    if isinstance(channel, WebhookSettings):
        return ChannelView(channel.name, "webhook", source, redact_url(channel.url), **extra)
    if isinstance(channel, MqttSettings):
        where = f"{channel.host}:{channel.port}"
        return ChannelView(channel.name, "mqtt", source, where, topic=channel.topic, **extra)
    if isinstance(channel, EmailSettings):
        where = f"{channel.host}:{channel.port}"
        count = len(channel.recipients)
        return ChannelView(channel.name, "email", source, where, recipients=count, **extra)
    host = getattr(channel, "host", "")
    return ChannelView(getattr(channel, "name", "?"), "?", source, str(host), **extra)


class ChannelStore:
    """The web's channels in ``notify_channels``: each one AES-GCM encrypted with the data key."""

    def __init__(self, database: Database, cipher: FieldCipher) -> None:
        self.database = database
        self.cipher = cipher

    def _decode(self, row: NotifyChannel) -> WebChannelSettings:
        plain = self.cipher.decrypt(
            row.config_ciphertext, channel_context(row.id), what=f"notification channel {row.name}"
        )
        model = WEB_KINDS[row.kind]
        return model.model_validate(json.loads(plain))

    def _seal(self, row: NotifyChannel, channel: WebChannelSettings) -> None:
        plain = json.dumps(_reveal(channel.model_dump()), ensure_ascii=False, default=str)
        row.config_ciphertext = self.cipher.encrypt(plain.encode("utf-8"), channel_context(row.id))
        row.key_id = self.cipher.active_key_id

    def rows(self) -> list[tuple[NotifyChannel, WebChannelSettings | None]]:
        """Every stored channel; ``None`` for one that does not decrypt (wrong key file)."""
        out: list[tuple[NotifyChannel, WebChannelSettings | None]] = []
        with self.database.read() as session:
            repo = NotifyChannelRepository(session)
            for row in repo.channels():
                repo.expunge(row)
                try:
                    out.append((row, self._decode(row)))
                except (
                    DecryptionError,
                    ValidationError,
                    ValueError,
                    KeyError,
                    RuntimeError,
                ) as exc:
                    logger.error("notification channel %s unreadable: %s", row.name, exc)
                    out.append((row, None))
        return out

    def get(self, channel_id: int) -> WebChannelSettings:
        with self.database.read() as session:
            row = NotifyChannelRepository(session).channel(channel_id)
            if row is None:
                raise NotFound(f"notification channel {channel_id} not found")
            return self._decode(row)

    def merged(self, base: NotifySettings) -> NotifySettings:
        """The file's channels and the web's together (a web channel whose name the file
        now uses too is left out, with an error in the log: the file wins)."""
        taken = set(base.names())
        lists: dict[str, list[Any]] = {
            field: list(getattr(base, field)) for field in KIND_LISTS.values()
        }
        for row, channel in self.rows():
            if channel is None:
                continue
            if channel.name in taken:
                logger.error("notification channel %s is also in the settings file", row.name)
                continue
            taken.add(channel.name)
            lists[KIND_LISTS[row.kind]].append(channel)
        return base.model_copy(update=lists)

    def add(
        self, channel: WebChannelSettings, *, reserved: set[str], audit: AuditLog, actor: str
    ) -> int:
        if channel.name in reserved:
            raise Conflict(f"通知渠道 {channel.name} 已存在 (channel name already used)")
        now = datetime.now(UTC)
        with self.database.transaction() as session:
            repo = NotifyChannelRepository(session)
            if repo.name_taken(channel.name):
                raise Conflict(f"通知渠道 {channel.name} 已存在 (channel name already used)")
            row = NotifyChannel(
                name=channel.name,
                kind=kind_of(channel),
                config_ciphertext=b"",
                key_id=self.cipher.active_key_id,
                created_by=actor,
                created_at=now,
                updated_by=actor,
                updated_at=now,
            )
            repo.add(row)  # the id is part of the associated data
            self._seal(row, channel)
            session.flush()
            # Name and kind only: the address, key and secret stay out of the audit log.
            audit.record(
                "notify.channel_add",
                actor=actor,
                target_type="notify_channel",
                target_id=row.id,
                details={"channel": channel.name, "kind": row.kind},
                session=session,
            )
            return row.id

    def update(
        self,
        channel_id: int,
        channel: WebChannelSettings,
        *,
        reserved: set[str],
        audit: AuditLog,
        actor: str,
    ) -> None:
        with self.database.transaction() as session:
            repo = NotifyChannelRepository(session)
            row = repo.channel(channel_id)
            if row is None:
                raise NotFound(f"notification channel {channel_id} not found")
            if row.kind != kind_of(channel):
                raise InvalidInput(f"channel {row.name} is a {row.kind} channel")
            if channel.name != row.name and (
                channel.name in reserved or repo.name_taken(channel.name, other_than=row.id)
            ):
                raise Conflict(f"通知渠道 {channel.name} 已存在 (channel name already used)")
            before = row.name
            row.name = channel.name
            row.updated_by, row.updated_at = actor, datetime.now(UTC)
            self._seal(row, channel)
            session.flush()
            audit.record(
                "notify.channel_change",
                actor=actor,
                target_type="notify_channel",
                target_id=row.id,
                details={"channel": channel.name, "kind": row.kind, "was": before},
                session=session,
            )

    def remove(self, channel_id: int, *, audit: AuditLog, actor: str) -> str:
        with self.database.transaction() as session:
            repo = NotifyChannelRepository(session)
            row = repo.channel(channel_id)
            if row is None:
                raise NotFound(f"notification channel {channel_id} not found")
            name, kind = row.name, row.kind
            repo.remove(row)
            audit.record(
                "notify.channel_remove",
                actor=actor,
                target_type="notify_channel",
                target_id=channel_id,
                details={"channel": name, "kind": kind},
                session=session,
            )
            return name


def with_kept_secrets(
    kind: str,
    values: Mapping[str, Any],
    current: WebChannelSettings,
    *,
    clear: Sequence[str] = (),
) -> dict[str, Any]:
    """An edit form's values, with each secret left empty taken from the stored channel
    (except those in ``clear``: a DingTalk robot that no longer signs)."""
    merged = dict(values)
    stored = _reveal(current.model_dump())
    for name in SECRET_FIELDS.get(kind, ()):
        if name in clear:
            merged[name] = None
        elif not merged.get(name):
            merged[name] = stored.get(name)
    return merged


def sample_message() -> Notification:
    return Notification(
        kind="test",
        title="村安测试消息",
        body="这是一条测试消息：村安可以向这个渠道发送提醒。",
        data={},
    )


def send_test(channel: WebChannelSettings, zone: tzinfo) -> str | None:
    """Send the test message once; the problem in words, or None when it arrived."""
    try:
        notifier = build_one(channel, zone)
    except ValueError as exc:
        return str(exc)
    try:
        notifier.send(sample_message())
    except NotificationError as exc:
        return str(exc)
    return None
