"""The ASGI application: routers, error handlers, guards and the offline API docs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cunan import __version__
from cunan.api.deps import PrincipalDep
from cunan.api.problems import document_problems, install_error_handlers
from cunan.api.routes import auth, cases, events, gas_alarms, gas_push, ops, places, registry
from cunan.api.routes import gas_registry as gas_registry_routes
from cunan.api.routes import reports as report_routes
from cunan.api.security import GuardMiddleware
from cunan.app import CunanApp
from cunan.auth.service import AuthService
from cunan.authz import Permission, require
from cunan.web import (
    audit_pages,
    camera_pages,
    case_pages,
    pages,
    place_edit_pages,
    portal_pages,
    registry_pages,
    settings_pages,
    statistics_pages,
    ui,
)
from cunan.web.render import install_page_handlers

WEB_STATIC = Path(__file__).parent.parent / "web" / "static"

#: Routes anyone may call without logging in. Everything else needs a session or token;
#: tests/api/test_routes_protected.py walks every route and fails on anything not listed.
PUBLIC_PATHS = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/setup",
        "/api/v1/health",
        "/api/docs-assets",
        "/setup",
        "/login",
        "/static",
    }
)


#: Routes machines call with their own credential (a platform's push token or signature,
#: checked by the route itself), never a session: not public, not session-protected.
TOKEN_PATHS = frozenset({"/api/v1/gas/push/{source}"})

#: Routers whose routes need no session (each route must also be in PUBLIC_PATHS, or in
#: TOKEN_PATHS for the token-authenticated ones).
PUBLIC_ROUTERS: tuple[APIRouter, ...] = (
    auth.public,
    ops.public,
    pages.router,
    ui.public,
    gas_push.router,
)
#: Everything else.
PROTECTED_ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    registry.router,
    places.router,
    cases.router,
    gas_alarms.router,
    ops.router,
    events.router,
    ui.router,
    report_routes.router,
    portal_pages.router,
    audit_pages.router,
    statistics_pages.router,
    registry_pages.router,
    place_edit_pages.router,
    settings_pages.router,
    camera_pages.router,
    case_pages.router,
    gas_registry_routes.router,
)


def all_routes(api: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the application answers, included routers too."""
    for route in api.routes:
        if isinstance(route, Route) and route.methods:
            for method in sorted(route.methods):
                yield method, route.path
    for router in (*PUBLIC_ROUTERS, *PROTECTED_ROUTERS):
        for route in router.routes:
            if isinstance(route, Route) and route.methods:
                for method in sorted(route.methods):
                    yield method, route.path


def prepare_routes(api: FastAPI) -> None:
    """Let every route build what it needs to answer now, before the first request.

    FastAPI prepares an included router's routes (their dependencies and parameter
    validators) when a request first walks past them, on the event loop: ~0.35 s of CPU
    here, during which a freshly started server answers nobody. A request path that no
    route matches walks past every route once."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/.cunan-prepare-routes",
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    for route in api.router.routes:
        route.matches(dict(scope))


def _docs_assets() -> Path | None:
    """Swagger UI's files as an installed registry package ships them (never a CDN)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def create_api(
    core: CunanApp, *, auth_service: AuthService | None = None, setup_token: str | None = None
) -> FastAPI:
    """The HTTP API over ``core``; ``setup_token`` enables the first-run set-up call."""
    api = FastAPI(
        title="CunAn 村安 API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    api.state.core = core
    api.state.auth = auth_service or core.auth
    api.state.setup_token = setup_token
    # Set when the server begins to stop: long-lived responses (event streams) end then.
    api.state.stopping = threading.Event()
    install_error_handlers(api)
    install_page_handlers(api)
    api.add_middleware(GuardMiddleware, max_body_bytes=core.settings.web.max_upload_mb * 2**20)
    if core.settings.web.trusted_proxies:
        # Added last, so it runs first: every guard and route sees the proxy's client and
        # scheme. Only the listed peers are believed (uvicorn's own default trusts
        # 127.0.0.1; cunan serve switches that off).
        api.add_middleware(
            ProxyHeadersMiddleware,
            trusted_hosts=[h.strip() for h in core.settings.web.trusted_proxies],
        )

    for router in (*PUBLIC_ROUTERS, *PROTECTED_ROUTERS):
        api.include_router(router)

    api.mount("/static", StaticFiles(directory=WEB_STATIC), name="web-static")
    assets = _docs_assets()
    if assets is not None:
        api.mount("/api/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    def schema() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = document_problems(
                get_openapi(title=api.title, version=api.version, routes=api.routes)
            )
        return api.openapi_schema

    api.openapi = schema  # type: ignore[method-assign]

    def admin_only(who: PrincipalDep) -> None:
        require(who, Permission.READ_API_DOCS)

    @api.get("/api/v1/openapi.json", include_in_schema=False, dependencies=[Depends(admin_only)])
    def openapi_json() -> JSONResponse:
        return JSONResponse(schema())

    @api.get("/api/docs", include_in_schema=False, dependencies=[Depends(admin_only)])
    def docs(request: Request) -> HTMLResponse:
        if assets is None:
            return HTMLResponse("<p>API docs assets are not installed (fastapi-offline).</p>")
        return HTMLResponse(
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            "<title>CunAn API</title>"
            '<link rel="stylesheet" href="/api/docs-assets/swagger-ui.css"></head>'
            '<body data-openapi="/api/v1/openapi.json"><div id="swagger-ui"></div>'
            '<script src="/api/docs-assets/swagger-ui-bundle.js"></script>'
            '<script src="/static/docs.js"></script></body></html>'
        )

    return api
