"""The settings page's work on notification channels: list, add, edit, remove, test, reload."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cunan.errors import NotFound
from cunan.notify.address import ChannelAddressRefusedError, check_channel
from cunan.notify.channels import (
    SECRET_FIELDS,
    ChannelStore,
    ChannelView,
    WebChannelSettings,
    allows_local,
    describe,
    kind_of,
    parse,
    send_test,
    with_kept_secrets,
)
from cunan.notify.settings import NotifySettings, build_notifiers

if TYPE_CHECKING:
    from cunan.app import CunanApp


def channel_store(app: CunanApp) -> ChannelStore:
    return ChannelStore(app.registry.database, app.registry.service.cipher)


def effective_notify(app: CunanApp) -> NotifySettings:
    """The channels in force: the settings file's, then the settings page's."""
    return channel_store(app).merged(app.settings.notify)


def reload_channels(app: CunanApp) -> None:
    """Alerts go to the changed channels from now on (no restart)."""
    if app.dispatcher is not None:
        app.dispatcher.set_channels(
            build_notifiers(effective_notify(app), zone=app.settings.duties.zone)
        )


class ChannelAdmin:
    """Channel administration for one actor; the caller (AppServices) checked the right."""

    def __init__(self, app: CunanApp, actor: str) -> None:
        self.app = app
        self.actor = actor
        self.store = channel_store(app)

    def _file_names(self) -> set[str]:
        return set(self.app.settings.notify.names())

    def list(self) -> list[ChannelView]:
        """The file's channels (read only here) and the web's, by name."""
        file = self.app.settings.notify
        views = [
            describe(c, "file")
            for c in (*file.wecom, *file.dingtalk, *file.webhooks, *file.mqtt, *file.email)
        ]
        for row, channel in self.store.rows():
            if channel is None:
                views.append(ChannelView(row.name, row.kind, "web", "", id=row.id, readable=False))
            else:
                views.append(describe(channel, "web", row))
        return sorted(views, key=lambda v: (v.source != "web", v.name))

    def form_values(self, channel_id: int) -> tuple[str, dict[str, Any]]:
        """A web channel's kind and its settings for the edit form, secrets left out."""
        channel = self.store.get(channel_id)
        kind = kind_of(channel)
        values = channel.model_dump(mode="json")
        for name in SECRET_FIELDS[kind]:
            values[name] = ""
        return kind, values

    def add(self, kind: str, values: Mapping[str, Any]) -> int:
        channel = parse(kind, values)
        check_channel(channel.name, channel, allow_local=allows_local(channel))
        channel_id = self.store.add(
            channel, reserved=self._file_names(), audit=self.app.audit, actor=self.actor
        )
        reload_channels(self.app)
        return channel_id

    def update(
        self, channel_id: int, values: Mapping[str, Any], *, clear: Sequence[str] = ()
    ) -> None:
        """Change a web channel; secrets left empty are kept, those in ``clear`` removed
        (only optional ones can be: a DingTalk robot's signing secret)."""
        current = self.store.get(channel_id)
        kind = kind_of(current)
        channel = parse(kind, with_kept_secrets(kind, values, current, clear=clear))
        check_channel(channel.name, channel, allow_local=allows_local(channel))
        self.store.update(
            channel_id,
            channel,
            reserved=self._file_names(),
            audit=self.app.audit,
            actor=self.actor,
        )
        reload_channels(self.app)

    def remove(self, channel_id: int) -> str:
        name = self.store.remove(channel_id, audit=self.app.audit, actor=self.actor)
        reload_channels(self.app)
        return name

    def _find(self, name: str) -> tuple[WebChannelSettings, bool]:
        """The channel called ``name`` and whether it is one of the page's (else the file's)."""
        file = self.app.settings.notify
        everything: list[Any] = [*file.wecom, *file.dingtalk, *file.webhooks, *file.mqtt]
        for channel in [*everything, *file.email]:
            if channel.name == name:
                return channel, False
        for _, stored in self.store.rows():
            if stored is not None and stored.name == name:
                return stored, True
        raise NotFound(f"notification channel {name} not found")

    def test(self, name: str) -> str | None:
        """Send the test message on one channel once: None when it arrived, or the problem
        (audited either way: something left the machine, or tried to). A page channel's
        address is checked again first (its host name may point elsewhere now); the file's
        channels are the operator's own."""
        channel, from_page = self._find(name)
        try:
            if from_page:
                check_channel(name, channel, allow_local=allows_local(channel))
        except ChannelAddressRefusedError as exc:
            problem: str | None = str(exc)
        else:
            problem = send_test(channel, self.app.settings.duties.zone)
        self.app.audit.record(
            "notify.test",
            actor=self.actor,
            target_type="notify_channel",
            details={"channel": name, "delivered": problem is None},
        )
        return problem
