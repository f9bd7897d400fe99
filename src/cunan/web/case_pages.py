"""The case pages: the list, a case with its candidates, assignment, outcomes, merge and split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from cunan.app_services import AppServices, NewPersonRequest, page
from cunan.authz import Permission, Principal
from cunan.cases.views import CaseView
from cunan.duties.clock import start_of_day
from cunan.errors import CunanError, ErrorKind, InvalidInput, NotFound, kind_of
from cunan.registry.identity import IdDocument
from cunan.storage.enums import ConsentMethod, PersonCategory
from cunan.storage.query_repository import PeopleFilter
from cunan.web.render import (
    PageError,
    PagePrincipal,
    PageServices,
    core_of,
    page_errors,
    redirect,
    render,
)
from cunan.web.ui import ACTIVE_STATUSES, _day

router = APIRouter(include_in_schema=False)

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
#: Largest form field holding a list of sighting ids (split, templates to enrol from).
MAX_CHOSEN = 1000

SightingIds = Annotated[list[int] | None, Form(max_length=MAX_CHOSEN)]


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
        labels = svc.case_labels(listing.items)
    filters = {"status": status, "camera": camera, "since": since, "until": until}
    return render(
        request,
        "cases.html",
        {
            "listing": listing,
            "labels": labels,
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
    house: str | None = None,
) -> Response:
    query = request.query_params.get("q", "").strip()
    house = house if house is not None else request.query_params.get("house", "")
    with page_errors():
        case = svc.get_case(case_id)
        sightings = svc.case_sightings(case_id)
        desk = svc.case_desk(case)
        editable = who.may(Permission.EDIT_CASES) and case.status in ACTIVE_STATUSES
        people = (
            svc.list_people(PeopleFilter(name=query), page(0, 20)).items
            if editable and query
            else []
        )
        may_enrol = editable and who.may(Permission.ENROL)
        houses = svc.list_houses(page(0, 200)).items if may_enrol else []
        may_search = editable and who.may(Permission.IDENTIFY)
        # Only on request: each look-up is a 1:N search of the registry, and audited.
        similar = (
            svc.case_candidates(case_id)
            if may_search and request.query_params.get("similar") == "1"
            else None
        )
        chosen = None
        if may_enrol and house.isdigit():
            try:
                chosen = svc.get_house(int(house))
            except NotFound:
                # A stale or mistyped house in the picker's link: show the case, no rooms.
                chosen = None
    deadline_days = core_of(request).settings.cases.deadline_days
    today = svc.today()
    context = {
        "case": case,
        "sightings": sightings,
        "labels": desk.labels,
        "editable": editable,
        "may_enrol": may_enrol,
        "error": error,
        "query": query,
        "people": people,
        "may_search": may_search,
        "similar": similar,
        "houses": houses,
        "house": chosen,
        "landlords": desk.landlords,
        "workers": desk.workers,
        "documents": [d.value for d in IdDocument],
        "methods": [m.value for m in ConsentMethod],
        "today": today,
        "default_deadline": today + timedelta(days=max(1, round(deadline_days))),
        "max_templates": core_of(request).settings.cases.max_templates_from_case,
    }
    return render(request, "case.html", context, who=who, status=status)


@router.get("/cases/{case_id}")
def case_page(case_id: int, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """A case: best crops, sightings, candidates on request, and (for staff) assignment,
    the outcome forms, merge and split."""
    return _case_page(request, who, svc, case_id)


def _act(
    request: Request,
    who: Principal,
    svc: AppServices,
    case_id: int,
    action: Callable[[], object],
    *,
    done: Callable[[object], str] | None = None,
    house: str | None = None,
) -> Response:
    """Runs one change; a refusal shows the case page again with the reason (a record that
    does not exist or may not be touched is an error page)."""
    try:
        result = action()
    except (CunanError, ValueError) as exc:
        kind = kind_of(exc)
        if kind in (ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.UNAUTHENTICATED):
            raise PageError(exc) from exc
        return _case_page(request, who, svc, case_id, error=str(exc), status=422, house=house)
    return redirect(done(result) if done is not None else f"/cases/{case_id}")


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
    user_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Assign (or re-assign) the case to a staff member (the logged-in user unless chosen),
    with an optional deadline day (the end of that day in the village)."""

    def run() -> None:
        day = _day(deadline, "deadline")
        if user_id.strip():
            if not user_id.strip().isdigit():
                raise InvalidInput(
                    f"请从名单中选择工作人员 (user_id: {user_id!r} is not an account)"
                )
            assignee: int | None = int(user_id)
        else:
            assignee = who.user_id
        if assignee is None:
            raise InvalidInput("请选择工作人员 (only a user account can take a case)")
        svc.assign_case(case_id, assignee, _end_of(day, request) if day else None)

    return _act(request, who, svc, case_id, run)


@router.post("/cases/{case_id}/false-alarm")
def case_false_alarm(
    case_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    return _act(request, who, svc, case_id, lambda: svc.close_false_alarm(case_id))


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
            raise InvalidInput("until: 请选择访客离开的日期 (a date is required)")
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
            raise InvalidInput("reason: 请填写上报原因 (a reason is required)")
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
    """The case is registered person X (a candidate or chosen from a name search)."""
    return _act(request, who, svc, case_id, lambda: svc.close_registered_person(case_id, person_id))


def _optional_id(value: str, what: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdigit():
        raise InvalidInput(f"编号只能是数字 ({what}: {value!r} is not a record number)")
    return int(value)


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
    id_type: Annotated[IdDocument, Form()] = IdDocument.RESIDENT_ID,
    phone: Annotated[str, Form(max_length=32)] = "",
    landlord_id: Annotated[str, Form(max_length=12)] = "",
    house: Annotated[str, Form(max_length=12)] = "",
    templates_chosen: Annotated[str, Form(max_length=1)] = "",
    template_ids: SightingIds = None,
    photo: Annotated[UploadFile | None, File()] = None,
    consent_form: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """补录: the case's person becomes a tenant of the room (its landlord unless another is
    chosen), with the consent taken on site (and a photo of the signed form), the templates
    from the crops staff ticked and, if given, a fresh photo from the phone's camera."""
    fresh = photo.file.read() if photo is not None else b""
    signed = consent_form.file.read() if consent_form is not None else b""

    def run() -> None:
        if not name.strip():
            raise InvalidInput("name: 请填写姓名 (a name is required)")
        # The form marks that it offered the crops: none ticked then means "none", which
        # the service refuses, rather than "the best ones".
        chosen: Sequence[int] | None = (template_ids or []) if templates_chosen else None
        svc.close_enrol(
            case_id,
            NewPersonRequest(
                name=name.strip(),
                category=PersonCategory.TENANT,
                consent_by=consent_by.strip(),
                consent_method=consent_method,
                id_number=id_number.strip() or None,
                id_document=id_type,
                phone=phone.strip() or None,
                room_id=room_id,
                landlord_id=_optional_id(landlord_id, "landlord_id"),
                consent_form=signed or None,
            ),
            fresh or None,
            chosen,
        )

    return _act(request, who, svc, case_id, run, house=house)


def _other_case(svc: AppServices, case_id: int, other: str) -> CaseView:
    """The case a merge names, or a refusal naming the number typed."""
    number = _optional_id(other, "source_id")
    if number is None:
        raise InvalidInput("请填写另一个案件的编号 (source_id: the other case's number)")
    if number == case_id:
        raise InvalidInput(f"案件不能与自身合并 (case {case_id} cannot be merged into itself)")
    try:
        return svc.get_case(number)
    except NotFound:
        raise InvalidInput(f"没有编号为 {number} 的案件 (there is no case {number})") from None


@router.post("/cases/{case_id}/merge")
def case_merge(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    source_id: Annotated[str, Form(max_length=12)],
    confirm: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    """The same person as case ``source_id``: that case's sightings move into this one.
    First the two cases side by side to compare, then (``confirm``) the merge."""
    try:
        other = _other_case(svc, case_id, source_id)
    except CunanError as exc:
        return _case_page(request, who, svc, case_id, error=str(exc), status=422)
    if confirm != "1":
        with page_errors():
            case = svc.get_case(case_id)
            labels = svc.case_labels([case, other])
        return render(
            request,
            "case_merge.html",
            {"case": case, "other": other, "labels": labels},
            who=who,
        )
    return _act(request, who, svc, case_id, lambda: svc.merge_cases(case_id, other.id))


@router.post("/cases/{case_id}/split")
def case_split(
    case_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    sighting_ids: SightingIds = None,
    confirm: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    """These sightings are someone else: first the chosen ones listed to check, then
    (``confirm``) they move to a new open case, whose page comes next."""
    chosen = sorted(set(sighting_ids or []))
    if confirm != "1":
        with page_errors():
            case = svc.get_case(case_id)
            members = svc.case_sightings(case_id)
        picked = [m for m in members if m.sighting_id in chosen]
        if not picked or len(picked) != len(chosen) or len(picked) == len(members):
            foreign = sorted(set(chosen) - {m.sighting_id for m in picked})
            reason = (
                f"所选出现记录不属于此案件 (sightings {foreign} are not in case {case_id})"
                if foreign
                else "请勾选拍到另一个人的出现记录，不能全部勾选 (tick the sightings of "
                "someone else, not all of them)"
            )
            return _case_page(request, who, svc, case_id, error=reason, status=422)
        return render(
            request,
            "case_split.html",
            {"case": case, "picked": picked, "remaining": len(members) - len(picked)},
            who=who,
        )

    def run() -> CaseView:
        return svc.split_case(case_id, chosen)

    def new_page(result: object) -> str:
        assert isinstance(result, CaseView)
        return f"/cases/{result.id}"

    return _act(request, who, svc, case_id, run, done=new_page)


@router.post("/cases/{case_id}/reopen")
def case_reopen(case_id: int, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """A closed case open again (an outcome recorded by mistake)."""
    return _act(request, who, svc, case_id, lambda: svc.reopen_case(case_id))
