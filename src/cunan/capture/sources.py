"""Camera source descriptions: URL parsing, FFmpeg options, opening through PyAV, error text."""

from __future__ import annotations

import enum
import errno
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

import av
import av.container

#: FFmpeg takes its socket timeouts in microseconds.
_US = 1_000_000

#: ``scheme://`` and the user info, up to the LAST ``@`` of the URL (a password may hold an
#: unencoded ``@``, ``/``, ``?`` or ``#``: ``rtsp://admin:p@s/s@host/s``); the URL ends at a
#: space or a quote. A path that merely contains ``@`` is redacted too: safe side.
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s'\"]*@")
#: ``user:password@host`` without a scheme (typed without ``rtsp://``, read as a file name).
_BARE_CREDENTIALS = re.compile(r"(?<![\w/.:@])[^\s/@:'\"]+:[^\s/'\"]*@(?=[\w\[])")
#: Parameters cameras take credentials in (many Chinese cameras and NVRs:
#: ``?user=admin&password=...``, ``?loginuse=...&loginpas=...``, and in the path:
#: ``/user=admin_password=..._channel=1``): any such key not glued to a preceding letter or
#: digit. The value runs to ``& ; #``, a space or a quote, so ``_channel=...`` after a
#: password is blanked with it (safe side).
_SECRET_PARAMS = re.compile(
    r"(?P<key>(?<![A-Za-z0-9])(?:password|passwd|passwort|pass|pwd|psw|user|username|usr|"
    r"loginuse|loginpas|token|access_token|auth|authorization|secret|apikey|api_key|key)=)"
    r"[^&;#\s'\"]*",
    re.IGNORECASE,
)
#: A secret shorter than this is not searched for in free text (it would blank digits of
#: timeouts and port numbers); :func:`redact_url`'s patterns still remove it from URLs.
_MIN_SCRUBBED = 3


def redact_url(text: str) -> str:
    """``text`` with every ``scheme://user:pass@`` reduced to ``scheme://***@`` and the
    values of credential parameters (``password=``, ``pwd=``, ``user=`` ...) blanked.

    Camera URLs routinely carry the camera's password; it must never reach a log line, a
    health message or the UI. Works on whole messages too (FFmpeg errors quote the URL).
    """
    text = _CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _BARE_CREDENTIALS.sub("***@", text)
    return _SECRET_PARAMS.sub(r"\g<key>***", text)


def url_secrets(url: str) -> list[str]:
    """The secrets a camera URL carries: its user info and credential parameter values,
    each also as percent-decoded and percent-encoded (messages may quote either form)."""
    found: list[str] = []
    token = url.strip()
    scheme_end = token.find("://")
    rest = token[scheme_end + 3 :] if scheme_end >= 0 else token
    if "@" in rest:
        userinfo = rest[: rest.rindex("@")]
        found.append(userinfo)
        found.extend(part for part in userinfo.split(":", 1))
    for match in _SECRET_PARAMS.finditer(token):
        found.append(match.group(0)[len(match.group("key")) :])
    out: set[str] = set()
    for secret in found:
        for form in (secret, unquote(secret), quote(secret, safe=""), quote(secret)):
            if len(form) >= _MIN_SCRUBBED:
                out.add(form)
    # Longest first: a password inside the whole user info is replaced with it.
    return sorted(out, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) with the URL's credentials removed however
    they appear: in the URL's own form (:func:`redact_url`) or quoted loose, decoded or
    re-encoded, as FFmpeg and the operating system sometimes do."""
    text = redact_url(text)
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


class SourceKind(enum.StrEnum):
    """What kind of source a URL names, which decides the FFmpeg options used."""

    RTSP = "rtsp"
    RTSPS = "rtsps"
    HTTP = "http"  # MJPEG (multipart/x-mixed-replace) or any stream FFmpeg probes over HTTP(S)
    FILE = "file"
    V4L2 = "v4l2"

    @property
    def live(self) -> bool:
        """Live sources reconnect after EOF; files end (or loop)."""
        return self is not SourceKind.FILE


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """How to open one camera; every timeout in seconds.

    ``open_timeout_s`` bounds connecting and probing, ``read_timeout_s`` bounds each read once
    streaming (a camera that stops sending is noticed after that long). ``realtime`` plays a
    file at its own frame rate (like a camera); ``False`` decodes it as fast as possible for
    batch work. ``loop`` restarts a file at its end instead of ending.
    """

    url: str
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    realtime: bool = True
    loop: bool = False
    #: V4L2 only: e.g. "1280x720", 15, "mjpeg"; None lets the driver choose.
    video_size: str | None = None
    framerate: float | None = None
    input_format: str | None = None
    #: Extra FFmpeg options, applied last (they override the ones built here).
    extra_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("capture timeouts must be positive (seconds)")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport must be 'tcp' or 'udp', not {self.rtsp_transport!r}")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source resolved to exactly what is passed to ``av.open``."""

    kind: SourceKind
    target: str  # URL, file path or device path given to FFmpeg
    format: str | None
    options: dict[str, str]
    open_timeout_s: float
    read_timeout_s: float
    realtime: bool
    loop: bool

    @property
    def live(self) -> bool:
        return self.kind.live

    @property
    def display(self) -> str:
        """The target with credentials removed, safe to log."""
        return redact_url(self.target)


class SourceError(Exception):
    """A source cannot be opened or read; the message is clear, redacted and safe to show."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        #: True when retrying cannot help (a file that does not exist or is not a video).
        self.permanent = permanent


#: The FFmpeg protocols each kind of source may use, its nested inputs included.
_PROTOCOLS: dict[SourceKind, str] = {
    SourceKind.RTSP: "rtsp,rtp,srtp,udp,tcp",
    SourceKind.RTSPS: "rtsps,rtsp,rtp,srtp,udp,tcp,tls",
    SourceKind.HTTP: "http,https,tcp,tls,crypto",
    SourceKind.FILE: "file",
}


def resolve_source(config: SourceConfig) -> SourceSpec:
    """Turn a camera URL (or file / device path) into FFmpeg input, format and options."""
    url = config.url.strip()
    if not url:
        raise ValueError("empty camera URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options: dict[str, str]
    fmt: str | None = None
    if scheme in ("rtsp", "rtsps"):
        kind = SourceKind.RTSP if scheme == "rtsp" else SourceKind.RTSPS
        options = {
            "rtsp_transport": config.rtsp_transport,
            # Since FFmpeg 5 'timeout' is the RTSP socket I/O timeout (it replaced 'stimeout').
            "timeout": str(int(config.read_timeout_s * _US)),
            # Allow some reordering of UDP packets without waiting long for lost ones.
            "max_delay": "500000",
        }
    elif scheme in ("http", "https"):
        kind = SourceKind.HTTP
        options = {
            "rw_timeout": str(int(config.read_timeout_s * _US)),
            "timeout": str(int(config.open_timeout_s * _US)),
        }
    elif scheme == "v4l2" or (scheme == "" and url.startswith("/dev/video")):
        kind = SourceKind.V4L2
        fmt = "video4linux2"
        url = unquote(parts.path) if scheme == "v4l2" else url
        options = {}
        if config.video_size:
            options["video_size"] = config.video_size
        if config.framerate:
            options["framerate"] = f"{config.framerate:g}"
        if config.input_format:
            options["input_format"] = config.input_format
    elif scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter
        kind = SourceKind.FILE
        url = unquote(parts.path) if scheme == "file" else url
        options = {}
    else:
        raise ValueError(f"unsupported camera URL scheme {scheme!r} in {redact_url(url)}")
    options.update(config.extra_options)
    if kind in _PROTOCOLS:
        # Last, so no extra option widens it: a stream (an HLS playlist, an RTSP redirect, a
        # file that is really a playlist) cannot pivot to file:, concat:, subfile:, pipe:
        # or another network protocol than its own.
        options["protocol_whitelist"] = _PROTOCOLS[kind]
    return SourceSpec(
        kind=kind,
        target=url,
        format=fmt,
        options=options,
        open_timeout_s=config.open_timeout_s,
        read_timeout_s=config.read_timeout_s,
        realtime=config.realtime and kind is SourceKind.FILE,
        loop=config.loop and kind is SourceKind.FILE,
    )


def open_source(spec: SourceSpec) -> av.container.InputContainer:
    """Open ``spec`` with both timeouts armed, or raise :class:`SourceError`."""
    if spec.kind is SourceKind.FILE and not Path(spec.target).is_file():
        if Path(spec.target).is_dir():
            raise SourceError(
                f"{spec.display} is a directory, not a video file (name one file in it)",
                permanent=True,
            )
        raise SourceError(f"video file not found: {spec.display}", permanent=True)
    if spec.kind is SourceKind.V4L2 and not Path(spec.target).exists():
        raise SourceError(f"V4L2 device {spec.display} does not exist (camera unplugged?)")
    started = time.monotonic()
    try:
        # PyAV's timeout arms FFmpeg's interrupt callback, which works for every protocol
        # (the socket options above are a second line for the protocols that honour them).
        container = av.open(
            spec.target,
            mode="r",
            format=spec.format,
            options=spec.options,
            timeout=(spec.open_timeout_s, spec.read_timeout_s),
        )
    except av.FFmpegError as exc:
        elapsed = time.monotonic() - started
        message = describe_error(exc, spec, phase="open", elapsed_s=elapsed)
        raise SourceError(message, permanent=_permanent(spec, exc)) from None
    except OSError as exc:  # raised by PyAV for some device errors
        detail = scrub(f"cannot open {spec.display}: {exc.strerror or exc}", spec.target)
        raise SourceError(detail) from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"no video stream in {spec.display}", permanent=not spec.live)
    return container


def _permanent(spec: SourceSpec, exc: av.FFmpegError) -> bool:
    # A file that FFmpeg cannot parse will not get better by retrying; a camera might.
    return spec.kind is SourceKind.FILE and not isinstance(exc, av.ExitError)


def describe_error(
    exc: BaseException,
    spec: SourceSpec,
    *,
    phase: Literal["open", "read"],
    elapsed_s: float | None = None,
) -> str:
    """A clear, redacted, one-line explanation of why ``spec`` failed while ``phase``.

    ``elapsed_s`` (how long the failed call took) tells a timeout from a quick refusal:
    FFmpeg reports an interrupted RTSP handshake as "invalid data", not as a timeout.
    Every secret of the URL is scrubbed from the result, whatever form the error quoted.
    """
    return scrub(_describe(exc, spec, phase=phase, elapsed_s=elapsed_s), spec.target)


def _describe(
    exc: BaseException,
    spec: SourceSpec,
    *,
    phase: Literal["open", "read"],
    elapsed_s: float | None,
) -> str:
    where = spec.display
    timeout = spec.open_timeout_s if phase == "open" else spec.read_timeout_s
    code = getattr(exc, "errno", None)
    timed_out = elapsed_s is not None and elapsed_s >= 0.9 * timeout
    if isinstance(exc, av.ExitError) or code in (errno.ETIMEDOUT, errno.EAGAIN) or timed_out:
        # The interrupt callback fired: nothing usable arrived within the timeout.
        what = "opening" if phase == "open" else "reading"
        return f"timed out after {timeout:g} s {what} {where} (no usable answer from the source)"
    if code == errno.ECONNREFUSED:
        return f"connection refused by {where} (nothing listening on that port?)"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"host unreachable: {where}"
    if code == errno.ENOENT and spec.kind is SourceKind.FILE:
        return f"video file not found: {where}"
    if isinstance(exc, av.InvalidDataError):
        if spec.kind is SourceKind.FILE:
            return f"not a video file FFmpeg can read (damaged, truncated or no video): {where}"
        return f"invalid data from {where} while {phase}ing: not a video stream FFmpeg understands"
    if isinstance(exc, av.HTTPUnauthorizedError | av.HTTPForbiddenError):
        return f"access denied by {where} (check the user name and password)"
    if isinstance(exc, av.HTTPNotFoundError):
        return f"not found on the server: {where} (check the stream path)"
    if isinstance(exc, av.FFmpegError):
        detail = exc.strerror or type(exc).__name__
        return redact_url(f"{phase} failed for {where}: {detail}")
    return redact_url(f"{phase} failed for {where}: {type(exc).__name__}: {exc}")
