"""Which addresses a channel added on the settings page may make the server reach (SSRF rule)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cunan.capture.policy import forbidden_address
from cunan.capture.sources import redact_url
from cunan.errors import InvalidInput
from cunan.notify.robots import DINGTALK_BASE, WECOM_BASE

__all__ = ["ChannelAddressRefusedError", "Target", "check_channel", "targets_of"]

Resolver = Callable[[str, int | None], Sequence[str]]

#: The robot services' own addresses: CunAn ships them, they are public by construction and
#: need no look-up (an office PC without internet could not resolve them when the robot is
#: added).
SHIPPED_BASES = frozenset({WECOM_BASE, DINGTALK_BASE})


class ChannelAddressRefusedError(InvalidInput):
    """A channel's address the server may not be made to reach; the message names the field
    and says why (the address redacted), in Chinese first."""


@dataclass(frozen=True, slots=True)
class Target:
    """One place a channel connects to: the form field it comes from, its host and port."""

    field: str
    host: str
    port: int | None
    shown: str


def _resolve(host: str, port: int | None) -> list[str]:
    import socket

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _url_target(field: str, url: str) -> Target:
    parts = urlsplit(url.strip())
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ChannelAddressRefusedError(
            f"{field}: 地址无效 (not a valid address): {redact_url(url)}"
        ) from None
    if not host:
        raise ChannelAddressRefusedError(
            f"{field}: 地址缺少主机 (the address names no host): {redact_url(url)}"
        )
    return Target(field, host, port, parts.netloc.rsplit("@", 1)[-1])


def targets_of(channel: object) -> list[Target]:
    """Where a channel connects: a webhook's URL, a robot's service address (unless it is the
    shipped one), an MQTT broker's or SMTP server's host."""
    url = getattr(channel, "url", None)
    if isinstance(url, str):
        return [_url_target("url", url)]
    base = getattr(channel, "base_url", None)
    if isinstance(base, str):
        if base.rstrip("/") in {b.rstrip("/") for b in SHIPPED_BASES}:
            return []
        return [_url_target("base_url", base)]
    host = getattr(channel, "host", None)
    port = getattr(channel, "port", None)
    if isinstance(host, str):
        return [Target("host", host, port if isinstance(port, int) else None, host)]
    return []


def _not_public(address: str) -> str | None:
    """Why a channel may not reach ``address`` without the administrator's leave, or None."""
    why = forbidden_address(address)
    if why is not None:
        return why
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    shared = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not the internet either
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in shared):
        return "内网地址 (a private network address)"
    if ip.is_reserved:
        return "保留地址 (a reserved address)"
    return None


def check_channel(
    name: str, channel: object, *, allow_local: bool, resolve: Resolver = _resolve
) -> None:
    """Refuse (:class:`ChannelAddressRefusedError`) a channel whose address resolves to the
    server itself, loopback, link-local (cloud metadata), a private network or another
    non-public range, unless the administrator ticked "allow a local address" for it
    (``allow_local``): a receiver, broker or mail server on the village's own network is
    legitimate, but only when someone chose it. Checked when the channel is added or changed
    and again before each test message (a name may resolve differently later)."""
    if allow_local:
        return
    for target in targets_of(channel):
        try:
            addresses = resolve(target.host, target.port)
        except (OSError, UnicodeError):
            raise ChannelAddressRefusedError(
                f"通知渠道 {name} 的{_FIELD_WORDS.get(target.field, target.field)}"
                f"（{target.field}）无法解析 (cannot resolve the host {target.host!r})"
            ) from None
        for address in addresses:
            why = _not_public(address)
            if why is not None:
                raise ChannelAddressRefusedError(
                    f"通知渠道 {name} 的{_FIELD_WORDS.get(target.field, target.field)}"
                    f"（{target.field}）不允许：{target.shown} 是{why}。如确实要发到本机或"
                    "内网，请勾选“允许本机或内网地址” (tick 'allow a local or private "
                    "address' to use it)"
                )


_FIELD_WORDS = {
    "url": "接收地址",
    "base_url": "机器人服务地址",
    "host": "服务器地址",
}
