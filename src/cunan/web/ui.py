"""The pages: login, logout, account and language, the dashboard (cases: case_pages.py)."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cunan.api.security import CSRF_COOKIE, SESSION_COOKIE, same_origin
from cunan.app_services import page
from cunan.errors import CunanError, ErrorKind, Forbidden, InvalidInput, kind_of
from cunan.web.charts import sightings_chart
from cunan.web.render import (
    PageError,
    PagePrincipal,
    PageServices,
    core_of,
    page_errors,
    redirect,
    render,
    safe_next,
)

#: Pages anyone may open (the login form); every other page needs a session.
public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False)

#: Case statuses that still need someone to go and look.
ACTIVE_STATUSES = ("open", "assigned")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- login, logout, account ------------------------------------------------------------------


@public.get("/login")
def login_page(request: Request, next: str = "/", changed: str = "") -> Response:
    """The login form; ``next`` is where the user was going."""
    return render(
        request, "login.html", {"next": safe_next(next), "username": "", "changed": changed}
    )


@public.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Checks the password, sets the session cookie exactly as the API's login does, and
    sends the browser on to where it was going."""
    if same_origin(request.scope) is False:
        # A login form on another site must not log this browser into someone's account.
        raise PageError(Forbidden("跨站请求被拒绝 (cross-site request refused)"))
    auth = request.app.state.auth
    try:
        result = auth.login(username, password, client=_client(request))
    except CunanError as exc:
        retry = getattr(exc, "retry_after_s", None)
        busy = kind_of(exc) is ErrorKind.UNAVAILABLE
        failed = "busy" if busy else "locked" if retry is not None else "bad"
        response = render(
            request,
            "login.html",
            {"next": safe_next(next), "username": username, "failed": failed},
            status=503 if busy else 429 if retry is not None else 401,
        )
        if busy and isinstance(retry, int | float):
            response.headers["Retry-After"] = str(max(1, round(retry)))
        return response
    response = redirect(safe_next(next))
    max_age = int((result.expires_at - datetime.now(result.expires_at.tzinfo)).total_seconds())
    secure = request.url.scheme == "https" or bool(
        core_of(request).settings.web.force_secure_cookies
    )
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    # The API's scripts read this one (X-CSRF-Token); forms rely on the Origin check.
    response.set_cookie(
        CSRF_COOKIE,
        secrets.token_urlsafe(24),
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=secure,
    )
    return response


@router.post("/logout")
def logout(request: Request, who: PagePrincipal) -> Response:
    """Ends this session in the database and clears the cookies."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        request.app.state.auth.logout(token)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/account")
def account(request: Request, who: PagePrincipal) -> Response:
    """The user's own account: password change and language."""
    return render(request, "account.html", who=who)


@router.post("/account/password")
def change_password(
    request: Request,
    who: PagePrincipal,
    old_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    again: Annotated[str, Form(max_length=1024)],
) -> Response:
    """Changes the user's password; every session of theirs ends (this one too), so they
    log in again with the new password."""
    context: dict[str, Any] = {}
    if new_password != again:
        context["problem"] = "differ"
    elif len(new_password) < 8:
        context["problem"] = "short"
    else:
        try:
            request.app.state.auth.change_password(who, old_password, new_password)
        except CunanError as exc:
            context = {"problem": "refused", "detail": str(exc)}
    if context:
        return render(request, "account.html", context, who=who, status=422)
    response = redirect("/login?changed=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE)
    return response


# -- dashboard --------------------------------------------------------------------------------


def _chart_input(stats: dict[str, object]) -> tuple[list[date], dict[str, list[int]]]:
    per_day = stats.get("sightings_per_camera_per_day")
    if not isinstance(per_day, dict):
        return [], {}
    days = [date.fromisoformat(str(d)) for d in per_day.get("days", [])]
    cameras = per_day.get("cameras", {})
    counts = {str(k): [int(n) for n in v] for k, v in cameras.items()} if cameras else {}
    return days, counts


@router.get("/")
def dashboard(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Open cases first, then today's sightings per camera, cameras, overdue departures and
    tasks; new cases are added live by /static/live.js."""
    if who.is_landlord:
        # Landlords have no dashboard; their own pages start at the landlord portal.
        return redirect("/portal")
    with page_errors():
        open_cases = svc.list_cases(page(0, 20), statuses=ACTIVE_STATUSES)
        stats = svc.statistics()
        cameras = svc.list_cameras()
        camera_health = svc.camera_health()
        overdue = svc.overdue_departures()
        tasks = svc.confirmation_tasks()
        labels = svc.case_labels(open_cases.items)
    days, counts = _chart_input(stats)
    share = stats.get("tenant_face_data_share")
    chart = sightings_chart(days, counts) if days else None
    context: dict[str, Any] = {
        "open_cases": open_cases,
        "labels": labels,
        "stats": stats,
        "cameras": cameras,
        "camera_health": camera_health,
        "overdue": overdue,
        "tasks": tasks,
        "chart": chart,
        # Whole percent of active tenants with face data (None without tenants).
        "share": round(share * 100) if isinstance(share, float | int) else None,
        "today": days[-1] if days else svc.today(),
    }
    return render(request, "dashboard.html", context, who=who)


# -- shared by the pages ---------------------------------------------------------------------


def _day(value: str | None, what: str) -> date | None:
    """A form's day (YYYY-MM-DD), None when empty; a refusal naming the field otherwise."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None
