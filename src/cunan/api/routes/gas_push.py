"""HTTP push from IoT platforms (CTWing style): token or signature checked, queued at once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from cunan.api.deps import CoreDep
from cunan.api.problems import problem
from cunan.gas.push import PushTooLargeError

#: Authenticated by the platform's token or signature, never by a session: the application
#: lists these paths in ``TOKEN_PATHS`` (tests/api/test_routes_protected.py checks them).
router = APIRouter(prefix="/api/v1", tags=["gas"])


class PushAccepted(BaseModel):
    accepted: bool
    #: True when this delivery was queued before (the platform retried): nothing new queued.
    duplicate: bool


@router.post("/gas/push/{source}", response_model=PushAccepted)
async def push(source: str, request: Request, core: CoreDep) -> PushAccepted | JSONResponse:
    """Queue one push from platform ``source`` (header ``X-CunAn-Push-Token``, or
    ``X-CunAn-Signature: sha256=<HMAC of the body>``); 200 as soon as it is stored."""
    service = core.gas_push
    length = request.headers.get("content-length")
    limit = service.settings.push_max_bytes
    if length is not None and length.isdigit() and int(length) > limit:
        return _too_large(limit)
    # Read in chunks and stop at the limit: a body sent without a length (chunked) must not
    # be buffered whole before anyone has checked who sent it.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        new = await run_in_threadpool(service.receive, source, body, request.headers)
    except PushTooLargeError:
        return _too_large(limit)
    core.gas_push_wake()
    return PushAccepted(accepted=True, duplicate=not new)


def _too_large(limit: int) -> JSONResponse:
    return problem(
        413,
        "推送内容过大 (push too large)",
        f"the push body is over the limit of {limit} bytes",
        kind="too_large",
    )
