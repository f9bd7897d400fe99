"""Rendering pages: the Jinja2 environment, the page language, who is logged in, error pages."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.concurrency import run_in_threadpool

from cunan.api.security import SESSION_COOKIE
from cunan.app import CunanApp
from cunan.app_services import AppServices
from cunan.auth.service import AuthService
from cunan.authz import Permission, Principal
from cunan.errors import (
    HTTP_STATUS,
    CunanError,
    ErrorKind,
    InvalidInput,
    Unauthenticated,
    kind_of,
)
from cunan.web.i18n import HTML_LANG, LANG_COOKIE, LANGUAGE_NAMES, choose, translations

TEMPLATE_DIR = Path(__file__).parent / "templates"
#: How long the language choice is remembered (seconds).
LANG_COOKIE_AGE = 365 * 24 * 3600


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(context["lang"]).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translations(context["lang"]).ngettext(singular, plural, n)


@pass_context
def _when(context: Context, value: datetime | date | None, style: str = "minute") -> str:
    """A moment as the village reads it: in the village's time zone, never the host's."""
    if value is None:
        return "—"
    if not isinstance(value, datetime):
        return value.isoformat()
    # SQLite hands back naive datetimes that were stored as UTC.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    local = aware.astimezone(context["zone"])
    return local.strftime("%Y-%m-%d" if style == "day" else "%Y-%m-%d %H:%M")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates are package files: compiled once, not checked on disk at every render.
        auto_reload=False,
    )
    # Each render looks the catalog up by the page's own language (context["lang"]), so one
    # environment serves every request without shared mutable state.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    env.filters["when"] = _when
    return env


TEMPLATES = Jinja2Templates(env=_environment())


def prepare_templates() -> None:
    """Compile every template and load every language's catalog now (``cunan serve``, at
    start-up), not in the first requests that need them: ~1 s of CPU on first use."""
    for lang in LANGUAGE_NAMES:
        translations(lang)
    for name in TEMPLATES.env.list_templates(extensions=["html"]):
        TEMPLATES.env.get_template(name)


class LoginRequiredError(Exception):
    """No valid session: the browser is sent to the login page, then back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """A service refused or failed: shown as an error page with the matching status."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def core_of(request: Request) -> CunanApp:
    app: CunanApp = request.app.state.core
    return app


async def page_principal(request: Request) -> Principal:
    """The logged-in user of a page (session cookie only: pages are for people, not tokens).
    Answered on the event loop for a session checked moments ago, else in a worker thread
    (as :func:`cunan.api.deps.principal`)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method not in ("GET", "HEAD"):
        # A form posted after the session ended cannot be replayed by a redirect (it would
        # arrive as a GET): start again from the start page.
        target = "/"
    if not cookie:
        raise LoginRequiredError(target)
    auth: AuthService = request.app.state.auth
    known = auth.trusted_principal(cookie)
    if known is not None:
        return known
    try:
        return await run_in_threadpool(auth.principal_for_session, cookie)
    except Unauthenticated:
        raise LoginRequiredError(target) from None


PagePrincipal = Annotated[Principal, Depends(page_principal)]


async def page_services(request: Request, who: PagePrincipal) -> AppServices:
    # No I/O: on the event loop, not a worker thread.
    return core_of(request).services_for(who)


PageServices = Annotated[AppServices, Depends(page_services)]


@contextmanager
def page_errors() -> Iterator[None]:
    """Errors of the service vocabulary become error pages, not problem+json."""
    try:
        yield
    except CunanError as exc:
        raise PageError(exc) from exc


def language(request: Request) -> str:
    return choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    who: Principal | None = None,
    status: int = 200,
) -> Response:
    """The page ``name`` in the request's language; ``?lang=`` is remembered in a cookie."""
    lang = language(request)
    zone = core_of(request).settings.duties.zone
    base: dict[str, Any] = {
        "lang": lang,
        "html_lang": HTML_LANG[lang],
        "language_names": LANGUAGE_NAMES,
        "zone": zone,
        "who": who,
        "may": (lambda p: who is not None and who.may(Permission(p))),
        "path": request.url.path,
    }
    base.update(context or {})
    response = TEMPLATES.TemplateResponse(request, name, base, status_code=status)
    if request.query_params.get("lang") == lang and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=LANG_COOKIE_AGE, httponly=True, samesite="lax", path="/"
        )
    return response


def redirect(path: str) -> RedirectResponse:
    """After a form post: see the result page (303, so a reload does not post again)."""
    return RedirectResponse(path, status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after login: a path on this site only (never another host)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def install_page_handlers(api: FastAPI) -> None:
    """Login redirects and HTML error pages for the page routes."""

    async def _login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequiredError)
        return redirect("/login?next=" + quote(exc.next_path, safe="/"))

    async def _page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        kind = kind_of(exc.error) or ErrorKind.INVALID
        status = HTTP_STATUS[kind]
        if kind is ErrorKind.UNAUTHENTICATED:
            return redirect("/login")
        who: Principal | None = None
        try:
            who = await page_principal(request)
        except LoginRequiredError:
            who = None
        return render(
            request,
            "error.html",
            {"kind": kind.value, "detail": str(exc.error)},
            who=who,
            status=status,
        )

    # Malformed input to a page (a form field missing or not a number) gets an HTML page;
    # the API keeps its problem+json handler (installed before this one).
    api_invalid = api.exception_handlers.get(RequestValidationError)

    async def _invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if request.url.path.startswith("/api/") and api_invalid is not None:
            answer = api_invalid(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        fields = sorted({str(e.get("loc", ("", ""))[-1]) for e in exc.errors()[:10]})
        return await _page_error(
            request, PageError(InvalidInput("invalid form fields: " + ", ".join(fields)))
        )

    api.add_exception_handler(LoginRequiredError, _login)
    api.add_exception_handler(PageError, _page_error)
    api.add_exception_handler(RequestValidationError, _invalid)
