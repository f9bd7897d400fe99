"""Which camera addresses a user may make the server connect to (the SSRF rule)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from cunan.capture.sources import redact_url

__all__ = [
    "NETWORK_SCHEMES",
    "CameraUrlRefusedError",
    "check_camera_url",
    "forbidden_address",
    "is_ip_literal",
]

#: The schemes of network cameras; every other source (a file, a device) is the server's own.
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})

Resolver = Callable[[str, int | None], Sequence[str]]


class CameraUrlRefusedError(ValueError):
    """The caller may not make the server open this camera address; the message says why
    (redacted) and is safe to show."""


def _resolve(host: str, port: int | None) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def forbidden_address(address: str) -> str | None:
    """Why a non-administrator may not reach ``address`` (an IP address), or None.

    Loopback reaches the server's own services (the database, Mosquitto, CunAn itself),
    link-local reaches cloud metadata endpoints (169.254.169.254) and unconfigured devices,
    unspecified (0.0.0.0/8, ::) reaches loopback on Linux, multicast is nobody's camera.
    Private LAN addresses stay allowed: that is where a village's cameras are.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0: drop the zone
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    if ip.is_loopback:
        return "本机地址 (a loopback address: the server itself)"
    if ip.is_link_local:
        return "链路本地地址 (a link-local address)"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip.packed[0] == 0):
        return "未指定地址 (an unspecified address)"
    if ip.is_multicast:
        return "组播地址 (a multicast address)"
    if _is_own(ip):
        # The server's LAN address reaches every service listening on all interfaces.
        return "本机地址 (an address of the server itself)"
    return None


def _is_own(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``ip`` is an address of this machine: only those can be bound to."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_camera_url(url: str, *, local_allowed: bool, resolve: Resolver = _resolve) -> None:
    """Refuse (:class:`CameraUrlRefusedError`) a camera address the caller may not use.

    Administrators (``local_allowed``) may use any source the capture layer can open:
    local files, devices and a relay on the server itself. Everyone else (staff) may use
    only ``rtsp``, ``rtsps``, ``http`` and ``https`` URLs whose host resolves to none of the
    addresses :func:`forbidden_address` refuses: otherwise "add camera" and "test
    connection" would let them probe the server's own services and read its files. Checked
    when a camera is added and again before each connection test (a name may resolve
    differently later).
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES:
        if local_allowed:
            return
        shown = f"{scheme}://" if scheme else "a local file or device"
        raise CameraUrlRefusedError(
            f"摄像头地址只能是 rtsp、rtsps、http 或 https (camera URLs must be rtsp://, "
            f"rtsps://, http:// or https://; {shown} is for administrators only)"
        )
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise CameraUrlRefusedError(
            f"摄像头地址无效 (not a valid camera URL): {redact_url(text)}"
        ) from None
    if not host:
        raise CameraUrlRefusedError(
            f"摄像头地址缺少主机 (the camera URL names no host): {redact_url(text)}"
        )
    if local_allowed:
        return
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise CameraUrlRefusedError(
            f"无法解析摄像头主机 (cannot resolve the camera's host {host!r})"
        ) from None
    for address in addresses:
        why = forbidden_address(address)
        if why is not None:
            raise CameraUrlRefusedError(
                f"摄像头地址不允许 (camera host {host!r} is {why}); only an administrator "
                "may add it"
            )
