"""Request guards for every route: security headers, CSRF origin checks, upload size limits."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cunan.api.problems import problem
from cunan.auth.service import TOKEN_PREFIX

#: No inline script anywhere (pages and the API docs load script files from this origin);
#: images may be data: URLs (SVG charts, previews); nothing from any other host.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

SESSION_COOKIE = "cunan_session"
CSRF_HEADER = "x-csrf-token"
CSRF_COOKIE = "cunan_csrf"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


#: ``Bearer <token>``: the scheme in any case (RFC 9110 says it is case-insensitive), one or
#: more spaces or tabs, then one token68 and nothing else.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*")


def bearer_token(authorization: str | None) -> str | None:
    """The CunAn API token an ``Authorization`` header carries, or None.

    The one parser for both the CSRF guard and :func:`cunan.api.deps.principal`: a request
    skips the CSRF check exactly when it is authenticated by its token and not by the session
    cookie, whatever the spacing or case of the header.
    """
    if authorization is None:
        return None
    match = _BEARER.fullmatch(authorization)
    if match is None or not match.group(1).startswith(TOKEN_PREFIX):
        return None
    return match.group(1)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _header(scope, b"cookie") or ""
    out: dict[str, str] = {}
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


def same_origin(scope: Scope) -> bool | None:
    """Whether the request says it came from a page of this server (None: it does not say).

    Browsers send ``Origin`` (or at least ``Sec-Fetch-Site``) with every state-changing
    request, so a cross-site form or script is recognised; clients that send neither are
    not browsers and carry no ambient cookies an attacker could ride on.
    """
    host = _header(scope, b"host")
    origin = _header(scope, b"origin")
    if origin is not None and origin != "null":
        return host is not None and urlsplit(origin).netloc == host
    if origin == "null":
        return False
    site = _header(scope, b"sec-fetch-site")
    if site is not None:
        return site in {"same-origin", "none"}
    referer = _header(scope, b"referer")
    if referer is not None:
        return host is not None and urlsplit(referer).netloc == host
    return None


class GuardMiddleware:
    """Adds the security headers, refuses cross-site state changes riding on the session
    cookie, and refuses request bodies over the upload limit (413) before reading them."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                if scope.get("path", "").startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        if scope["method"] in _UNSAFE:
            cookies = _cookies(scope)
            # Only a CunAn API token replaces the cookie (cunan.api.deps.principal parses
            # the header with the same function): any other Authorization header still
            # leaves the session cookie in charge.
            bearer = bearer_token(_header(scope, b"authorization")) is not None
            if SESSION_COOKIE in cookies and not bearer:
                verdict = same_origin(scope)
                token = _header(scope, CSRF_HEADER.encode())
                csrf_ok = bool(token) and token == cookies.get(CSRF_COOKIE)
                if verdict is False or (verdict is None and not csrf_ok):
                    response = problem(
                        403,
                        "跨站请求被拒绝 (cross-site request refused)",
                        "state-changing requests must come from this site's own pages",
                        kind="csrf",
                    )
                    await response(scope, receive, send_with_headers)
                    return
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                response = problem(
                    413,
                    "上传内容过大 (request too large)",
                    f"the request body is over the limit of {self.max_body_bytes} bytes",
                    kind="too_large",
                )
                await response(scope, receive, send_with_headers)
                return
            receive = _limited(receive, self.max_body_bytes)
        await self.app(scope, receive, send_with_headers)


class BodyTooLargeError(Exception):
    """A chunked body grew past the limit while it was read."""


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError(f"request body over the limit of {limit} bytes")
        return message

    return wrapped
