"""Errors as RFC 9457 problem+json responses, from the one error vocabulary."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cunan.errors import HTTP_STATUS, TITLES, CunanError, ErrorKind, kind_of

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, title: str, detail: str, *, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"type": f"urn:cunan:error:{kind}", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


#: The body of every error response, as the OpenAPI schema documents it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the problem+json errors every operation can answer (any 4xx, and 503 while a
    dependency is down) instead of FastAPI's default 422 body, which this API never sends."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    error = {"description": "Error (RFC 9457)", "content": {PROBLEM_JSON: {"schema": ref}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["4XX"] = error
            responses["503"] = error
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_error_handlers(api: FastAPI) -> None:
    """Every error leaves as problem+json; internal errors never show their text."""

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors()[:10]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return problem(
            422, TITLES[ErrorKind.INVALID], "; ".join(parts) or "invalid request", kind="invalid"
        )

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: ErrorKind.NOT_FOUND, 401: ErrorKind.UNAUTHENTICATED, 403: ErrorKind.FORBIDDEN}
        kind = kinds.get(exc.status_code)
        title = TITLES[kind] if kind else str(exc.detail)
        return problem(
            exc.status_code,
            title,
            str(exc.detail),
            kind=kind.value if kind else "http",
            headers=dict(exc.headers or {}),
        )

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        return answer(exc)

    # Known kinds go through Starlette's exception middleware (a normal response); anything
    # else reaches the server-error handler, which answers 500 without the error's text.
    api.add_exception_handler(CunanError, _known)
    api.add_exception_handler(ValueError, _known)
    api.add_exception_handler(OverflowError, _known)
    api.add_exception_handler(DataError, _known)
    api.add_exception_handler(Exception, _known)


def _out_of_range(exc: Exception) -> bool:
    return isinstance(exc, OverflowError | DataError)


def answer(exc: Exception) -> JSONResponse:
    """The problem response for an exception raised by a service."""
    from cunan.api.security import BodyTooLargeError

    if isinstance(exc, BodyTooLargeError):
        return problem(413, "上传内容过大 (request too large)", str(exc), kind="too_large")
    if _out_of_range(exc):
        # An id, offset or text the database cannot even hold (a number past its integer type,
        # a string past a PostgreSQL column's length): the caller's input, not a server bug.
        # The driver's text quotes the statement's parameters, so it is never shown.
        return problem(
            422,
            TITLES[ErrorKind.INVALID],
            "数值或文本超出数据库可存储的范围 (a number or text is out of the stored range)",
            kind=ErrorKind.INVALID.value,
        )
    kind = kind_of(exc)
    if kind is None:
        # The type only: an exception's text may quote personal data (DEBUG has it all).
        logger.error("internal error (%s) answering a request", type(exc).__name__)
        logger.debug("internal error", exc_info=exc)
        return problem(
            500,
            "内部错误 (internal error)",
            "the server hit an internal error; it is logged (nothing was half-written)",
            kind="internal",
        )
    headers = None
    retry = getattr(exc, "retry_after_s", None)
    if isinstance(retry, int | float):
        headers = {"Retry-After": str(max(1, round(retry)))}
    status = HTTP_STATUS[kind]
    if retry is not None and kind is not ErrorKind.UNAVAILABLE:
        # Refused for now (a login lock-out): 429; a busy server stays 503 with the header.
        status = 429
    return problem(status, TITLES[kind], str(exc), kind=kind.value, headers=headers)
