"""The pages: login, logout, account and language, the dashboard, the case list and case page."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from cunan.api.security import CSRF_COOKIE, SESSION_COOKIE, same_origin
from cunan.app_services import AppServices, NewPersonRequest, page
from cunan.authz import Permission, Principal
from cunan.duties.clock import start_of_day
from cunan.errors import CunanError, ErrorKind, Forbidden, InvalidInput, NotFound, kind_of
from cunan.storage.enums import ConsentMethod, PersonCategory
from cunan.storage.query_repository import PeopleFilter
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
#: The case list's status filter: the choice and the statuses it means.
STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "active": ACTIVE_STATUSES,
    "open": ("open",),
    "assigned": ("assigned",),
    "closed": ("closed",),
    "merged": ("merged",),
    "all": None,
}
CASES_PER_PAGE = 25


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
    days, counts = _chart_input(stats)
    share = stats.get("tenant_face_data_share")
    chart = sightings_chart(days, counts) if days else None
    context: dict[str, Any] = {
        "open_cases": open_cases,
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


# -- cases ------------------------------------------------------------------------------------


def _day(value: str | None, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


@router.get("/cases")
def cases_list(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    status: str = "active",
    camera: str = "",
    since: str = "",
    until: str = "",
    offset: int = 0,
) -> Response:
    """Cases, most-seen first, filtered by status, camera and the days they were seen."""
    if status not in STATUS_FILTERS:
        status = "active"
    zone = core_of(request).settings.duties.zone
    with page_errors():
        start = _day(since, "since")
        end = _day(until, "until")
        listing = svc.list_cases(
            page(max(offset, 0), CASES_PER_PAGE),
            statuses=STATUS_FILTERS[status],
            camera=camera.strip() or None,
            since=start_of_day(start, zone) if start else None,
            until=start_of_day(end + timedelta(days=1), zone) if end else None,
        )
    filters = {"status": status, "camera": camera, "since": since, "until": until}
    return render(
        request,
        "cases.html",
        {
            "listing": listing,
            "filters": filters,
            "statuses": list(STATUS_FILTERS),
            "per_page": CASES_PER_PAGE,
        },
        who=who,
    )


def _case_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    case_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    query = request.query_params.get("q", "").strip()
    house = request.query_params.get("house", "")
    with page_errors():
        case = svc.get_case(case_id)
        sightings = svc.case_sightings(case_id)
        editable = who.may(Permission.EDIT_CASES) and case.status in ACTIVE_STATUSES
        people = (
            svc.list_people(PeopleFilter(name=query), page(0, 20)).items
            if editable and query
            else []
        )
        houses = svc.list_houses(page(0, 200)).items if editable else []
        may_search = editable and who.may(Permission.IDENTIFY)
        # Only on request: each look-up is a 1:N search of the registry, and audited.
        similar = (
            svc.case_candidates(case_id)
            if may_search and request.query_params.get("similar") == "1"
            else None
        )
        chosen = None
        if editable and house.isdigit():
            try:
                chosen = svc.get_house(int(house))
            except NotFound:
                # A stale or mistyped house in the picker's link: show the case, no rooms.
                chosen = None
    context = {
        "case": case,
        "sightings": sightings,
        "editable": editable,
        "error": error,
        "query": query,
        "people": people,
        "may_search": may_search,
        "similar": similar,
        "houses": houses,
        "house": chosen,
        "methods": [m.value for m in ConsentMethod],
        "today": svc.today(),
    }
    return render(request, "case.html", context, who=who, status=status)


@router.get("/cases/{case_id}")
def case_page(case_id: int, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """A case: best crops, sightings, and (for staff) the outcome forms."""
    return _case_page(request, who, svc, case_id)


def _act(
    request: Request, who: Principal, svc: AppServices, case_id: int, action: Any, *args: Any
) -> Response:
    """Runs one outcome; a refusal shows the case page again with the reason."""
    try:
        action(*args)
    except CunanError as exc:
        kind = kind_of(exc)
        if kind in (ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.UNAUTHENTICATED):
            raise PageError(exc) from exc
        return _case_page(request, who, svc, case_id, error=str(exc), status=422)
    return redirect(f"/cases/{case_id}")


def _end_of(day: date, request: Request) -> datetime:
    zone = core_of(request).settings.duties.zone
    return start_of_day(day + timedelta(days=1), zone) - timedelta(seconds=1)


@router.post("/cases/{case_id}/assign")
def case_assign(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    deadline: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Take the case: assigned to the logged-in user, with an optional deadline day."""

    def run() -> None:
        day = _day(deadline, "deadline")
        if who.user_id is None:
            raise InvalidInput("only a user account can take a case")
        svc.assign_case(case_id, who.user_id, _end_of(day, request) if day else None)

    return _act(request, who, svc, case_id, run)


@router.post("/cases/{case_id}/false-alarm")
def case_false_alarm(
    case_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    return _act(request, who, svc, case_id, svc.close_false_alarm, case_id)


@router.post("/cases/{case_id}/visitor")
def case_visitor(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    until: Annotated[str, Form(max_length=20)],
) -> Response:
    """A visitor until the end of the given day (village time)."""

    def run() -> None:
        day = _day(until, "until")
        if day is None:
            raise InvalidInput("until: a date is required")
        svc.close_visitor(case_id, _end_of(day, request))

    return _act(request, who, svc, case_id, run)


@router.post("/cases/{case_id}/escalate")
def case_escalate(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    reason: Annotated[str, Form(max_length=1000)],
) -> Response:
    def run() -> None:
        if not reason.strip():
            raise InvalidInput("reason: a reason is required")
        svc.close_escalate(case_id, reason.strip())

    return _act(request, who, svc, case_id, run)


@router.post("/cases/{case_id}/person")
def case_person(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    person_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
) -> Response:
    """The case is registered person X (chosen from a name search on the case page)."""
    return _act(request, who, svc, case_id, svc.close_registered_person, case_id, person_id)


@router.post("/cases/{case_id}/enrol")
def case_enrol(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
    room_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
    consent_by: Annotated[str, Form(max_length=200)],
    consent_method: Annotated[ConsentMethod, Form()] = ConsentMethod.PAPER,
    id_number: Annotated[str, Form(max_length=32)] = "",
    phone: Annotated[str, Form(max_length=32)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """补录: the case's person becomes a tenant of the room, with the consent taken on site
    and, if given, a fresh photo from the phone's camera."""
    fresh = photo.file.read() if photo is not None else b""

    def run() -> None:
        if not name.strip():
            raise InvalidInput("name: a name is required")
        svc.close_enrol(
            case_id,
            NewPersonRequest(
                name=name.strip(),
                category=PersonCategory.TENANT,
                consent_by=consent_by.strip(),
                consent_method=consent_method,
                id_number=id_number.strip() or None,
                phone=phone.strip() or None,
                room_id=room_id,
            ),
            fresh or None,
        )

    return _act(request, who, svc, case_id, run)
