"""FastAPI dependencies: the application core, and who is calling (session cookie or token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cunan.api.security import SESSION_COOKIE, bearer_token
from cunan.app import CunanApp
from cunan.app_services import AppServices
from cunan.auth.service import AuthService
from cunan.authz import Permission, Principal, require
from cunan.errors import Unauthenticated


def core(request: Request) -> CunanApp:
    app: CunanApp = request.app.state.core
    return app


def auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


async def principal(request: Request) -> Principal:
    """The caller: a ``Bearer cunan_...`` API token, else the session cookie; else 401.

    A session checked moments ago is answered on the event loop (no database access);
    anything that reads or writes the database runs in a worker thread. Each sync
    dependency would cost a hop to a worker thread and back on every request."""
    service = auth(request)
    # The same parser as the CSRF guard: a request that skipped the CSRF check is
    # authenticated by its token, never by a cookie riding along.
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        return await run_in_threadpool(service.principal_for_token, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        known = service.trusted_principal(cookie)
        if known is not None:
            return known
        return await run_in_threadpool(service.principal_for_session, cookie)
    raise Unauthenticated("请先登录 (log in first)")


CoreDep = Annotated[CunanApp, Depends(core)]
AuthDep = Annotated[AuthService, Depends(auth)]
PrincipalDep = Annotated[Principal, Depends(principal)]


async def services(app: CoreDep, who: PrincipalDep) -> AppServices:
    # No I/O: on the event loop, not a worker thread.
    return app.services_for(who)


ServicesDep = Annotated[AppServices, Depends(services)]


def needs(permission: Permission) -> Any:
    """A route dependency refusing callers whose role lacks ``permission``."""

    async def check(who: PrincipalDep) -> None:
        require(who, permission)

    return Depends(check)
