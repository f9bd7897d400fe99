"""One error vocabulary for CLI and API: not found, conflict, invalid, forbidden, unavailable."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong, as the CLI (exit code) and the API (HTTP status) both say it."""

    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"


class CunanError(Exception):
    """Base of the errors a caller can act on; ``kind`` says which of the vocabulary it is."""

    kind: ErrorKind = ErrorKind.INVALID


class NotFound(CunanError):  # noqa: N818 - the vocabulary's words, not "...Error" names
    """The record does not exist, or exists but is not the caller's to see."""

    kind = ErrorKind.NOT_FOUND


class Conflict(CunanError):  # noqa: N818
    """The request contradicts stored state (duplicate, capacity, wrong state)."""

    kind = ErrorKind.CONFLICT


class InvalidInput(CunanError):  # noqa: N818
    """A value is malformed or breaks a rule; nothing was written."""

    kind = ErrorKind.INVALID


class Forbidden(CunanError):  # noqa: N818
    """The caller's role may not do this."""

    kind = ErrorKind.FORBIDDEN


class Unauthenticated(CunanError):  # noqa: N818
    """No valid session or token: log in first."""

    kind = ErrorKind.UNAUTHENTICATED


class Unavailable(CunanError):  # noqa: N818
    """A dependency (database, camera, model) cannot be reached now; try again later."""

    kind = ErrorKind.UNAVAILABLE


#: The most specific kinds first: an error that is both (say) a registry error, which is
#: invalid input, and a not-found error is reported as not found.
_ORDER: tuple[tuple[type[CunanError], ErrorKind], ...] = (
    (NotFound, ErrorKind.NOT_FOUND),
    (Forbidden, ErrorKind.FORBIDDEN),
    (Unauthenticated, ErrorKind.UNAUTHENTICATED),
    (Conflict, ErrorKind.CONFLICT),
    (Unavailable, ErrorKind.UNAVAILABLE),
    (InvalidInput, ErrorKind.INVALID),
)


def kind_of(exc: BaseException) -> ErrorKind | None:
    """The vocabulary word for ``exc``, or None for an internal error (a bug)."""
    for cls, kind in _ORDER:
        if isinstance(exc, cls):
            return kind
    # Plain ValueErrors raised by value checks (bad image, bad setting) are the caller's input.
    if isinstance(exc, ValueError):
        return ErrorKind.INVALID
    return None


#: HTTP status for each kind (the API's problem+json responses).
HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.INVALID: 422,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.UNAVAILABLE: 503,
}

#: Exit code of a command line error of each kind (docs/cli.md). 0 is success and 1 the "no"
#: answer of commands that give one (``faces compare``, ``audit verify``, ``keys check``,
#: ``registry import``); 2 is also what a malformed command line exits with.
EXIT_CODES: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 2,
    ErrorKind.NOT_FOUND: 3,
    ErrorKind.CONFLICT: 4,
    ErrorKind.FORBIDDEN: 5,
    ErrorKind.UNAUTHENTICATED: 5,
    ErrorKind.UNAVAILABLE: 6,
}

#: Exit code of an internal error (a bug): not 1, which ``audit verify`` and others answer
#: with ("the chain is broken"), so that a crash is never read as such an answer.
EXIT_INTERNAL = 70

#: Short Chinese titles of the kinds, for problem+json ``title`` and one-line CLI errors.
TITLES: dict[ErrorKind, str] = {
    ErrorKind.NOT_FOUND: "未找到 (not found)",
    ErrorKind.CONFLICT: "与现有记录冲突 (conflict)",
    ErrorKind.INVALID: "输入有误 (invalid input)",
    ErrorKind.FORBIDDEN: "无权操作 (forbidden)",
    ErrorKind.UNAUTHENTICATED: "请先登录 (login required)",
    ErrorKind.UNAVAILABLE: "服务暂不可用 (unavailable)",
}
