"""Live events over Server-Sent Events, read from the transactional outbox (``live.*``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cunan.api.deps import CoreDep, PrincipalDep, principal
from cunan.authz import Permission, require
from cunan.errors import Unauthenticated

router = APIRouter(prefix="/api/v1", tags=["events"])

#: How often the outbox is polled for new events (seconds).
POLL_S = 1.0
#: A comment line this often keeps proxies and phones from closing an idle stream.
HEARTBEAT_S = 15.0


def _frame(event_id: int, kind: str, payload: object) -> str:
    data = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request, core: CoreDep, who: PrincipalDep) -> StreamingResponse:
    """New cases and cases seen again, as they happen (``event: case.opened`` /
    ``case.sighted``, data: ids and counts). Reconnecting clients send ``Last-Event-ID``."""
    require(who, Permission.READ_CASES)
    stopping: threading.Event = request.app.state.stopping
    resume = request.headers.get("last-event-id", "")
    last = int(resume) if resume.isdigit() else await run_in_threadpool(core.outbox.last_id)

    async def still_allowed() -> bool:
        # The stream outlives the request that opened it: a logout, an expired session, a
        # disabled account or a revoked token ends it at the next heartbeat.
        try:
            await principal(request)
        except Unauthenticated:
            return False
        return True

    async def stream() -> AsyncIterator[str]:
        nonlocal last
        # Tell the browser how soon to reconnect after a dropped connection.
        yield "retry: 3000\n\n"
        idle = 0.0
        while not stopping.is_set() and not await request.is_disconnected():
            found = await run_in_threadpool(core.outbox.live_after, last)
            for event in found:
                last = event.id
                yield _frame(event.id, event.kind.removeprefix("live."), event.payload)
            if found:
                idle = 0.0
            elif idle >= HEARTBEAT_S:
                idle = 0.0
                if not await still_allowed():
                    return
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)
            idle += POLL_S

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
