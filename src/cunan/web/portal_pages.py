"""The landlord portal (phone first): my houses, rooms and tenants, move-outs, tasks, deadlines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cunan.app_services import AppServices, HouseDetail, page
from cunan.authz import Principal
from cunan.errors import CunanError, ErrorKind, InvalidInput, kind_of
from cunan.web.render import PageError, PagePrincipal, PageServices, page_errors, redirect, render
from cunan.web.ui import _day

router = APIRouter(include_in_schema=False)

#: Houses one landlord's portal lists (a landlord has a handful; the services cap pages anyway).
HOUSES_SHOWN = 200
#: What ``?done=`` may say after a form was sent (anything else is ignored).
DONE_MESSAGES = frozenset({"moved_out", "confirmed"})


def _portal(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    done: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    with page_errors():
        houses: list[HouseDetail] = [
            svc.get_house(h.id) for h in svc.list_houses(page(0, HOUSES_SHOWN)).items
        ]
        context: dict[str, Any] = {
            "houses": houses,
            "tasks": svc.confirmation_tasks(),
            "overdue": svc.overdue_departures(),
            "deadlines": svc.departure_deadlines(),
            "today": svc.today(),
            "done": done if done in DONE_MESSAGES else "",
            "error": error,
        }
    return render(request, "portal_home.html", context, who=who, status=status)


@router.get("/portal")
def portal_home(
    request: Request, who: PagePrincipal, svc: PageServices, done: str = ""
) -> Response:
    """What needs doing first (overdue move-outs, tasks to confirm), deadlines, then the
    houses with their rooms and tenants."""
    if not who.is_landlord:
        # The portal is the landlord's own view; everyone else starts at the dashboard.
        return redirect("/")
    return _portal(request, who, svc, done=done)


@router.get("/portal/houses/{house_id}")
def portal_house(
    house_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """One house: its rooms (free places too) and the tenants living there today, each with
    the move-out form. Another landlord's house is "not found", like a missing one."""
    with page_errors():
        house = svc.get_house(house_id)
        today = svc.today()
    return render(request, "portal_house.html", {"house": house, "today": today}, who=who)


def _after(
    request: Request, who: Principal, svc: AppServices, done: str, action: Any, *args: Any
) -> Response:
    """Runs one landlord action; a refusal of the input shows the portal again with the
    reason, a record out of reach is the error page (404 like a missing one)."""
    try:
        action(*args)
    except CunanError as exc:
        if kind_of(exc) in (ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.UNAUTHENTICATED):
            raise PageError(exc) from exc
        return _portal(request, who, svc, error=str(exc), status=422)
    return redirect(f"/portal?done={done}")


@router.post("/portal/tenancies/{tenancy_id}/move-out")
def portal_move_out(
    tenancy_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    move_out: Annotated[str, Form(max_length=20)],
) -> Response:
    """The tenant moved out on this day (village calendar; today at the latest)."""

    def run() -> None:
        day = _day(move_out, "move_out")
        if day is None:
            raise InvalidInput(
                "move_out: 请选择租客搬离的日期 (choose the day the tenant moved out)"
            )
        svc.report_move_out(tenancy_id, day)

    return _after(request, who, svc, "moved_out", run)


@router.post("/portal/tasks/{task_id}/confirm")
def portal_confirm(
    task_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """The tenant still lives here: the task closes."""
    return _after(request, who, svc, "confirmed", svc.confirm_task, task_id)
