"""The registry pages: villages, areas, landlords, houses, rooms, households, people, enrolment
and the roster import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cunan.app_services import AppServices, NewPersonRequest, page
from cunan.authz import Permission, Principal, require
from cunan.errors import CunanError, ErrorKind, InvalidInput, NotFound, kind_of
from cunan.faces.plain_words import PhotoRefused, explain
from cunan.registry.identity import IdDocument
from cunan.registry.records import PersonChanges
from cunan.storage.enums import ConsentMethod, PersonCategory, PersonStatus
from cunan.storage.query_repository import PeopleFilter
from cunan.web.render import (
    PageError,
    PagePrincipal,
    PageServices,
    page_errors,
    redirect,
    render,
)

router = APIRouter(include_in_schema=False)

PER_PAGE = 25
#: Houses offered in a house picker (a village has tens to a few hundred).
PICKER_HOUSES = 200
_ID = 2**31 - 1


def _categories() -> list[str]:
    return [c.value for c in PersonCategory]


def _statuses() -> list[str]:
    return [s.value for s in PersonStatus]


def _methods() -> list[str]:
    return [m.value for m in ConsentMethod]


def _day(value: str, what: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


def _int(value: str) -> int | None:
    """A number from a query string's filter field; anything else means "no filter"."""
    value = value.strip()
    return int(value) if value.isdigit() and int(value) <= _ID else None


def _refusal(exc: CunanError) -> dict[str, Any]:
    """What the form page shows about a refused change: plain photo verdicts, or the text."""
    if isinstance(exc, PhotoRefused):
        return {"error": None, "photo_problems": exc.problems}
    return {"error": str(exc), "photo_problems": []}


def _try(action: Callable[[], Any]) -> tuple[Any, CunanError | None]:
    """Runs a change; a refusal the form can explain is returned, a missing or forbidden
    record becomes the error page (another landlord's house answers like a missing one)."""
    try:
        return action(), None
    except CunanError as exc:
        if kind_of(exc) in (ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.UNAUTHENTICATED):
            raise PageError(exc) from exc
        return None, exc


# -- villages, grid areas, landlords ------------------------------------------------------------


def _places_page(
    request: Request, who: Principal, svc: AppServices, *, error: str | None = None
) -> Response:
    with page_errors():
        villages = svc.list_villages()
        areas = svc.list_areas()
        landlords = svc.list_landlords()
    context = {"villages": villages, "areas": areas, "landlords": landlords, "error": error}
    return render(request, "registry_places.html", context, who=who, status=422 if error else 200)


@router.get("/registry")
def places(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Villages, grid areas and landlords (landlords see their own houses instead)."""
    if who.is_landlord:
        return redirect("/houses")
    return _places_page(request, who, svc)


@router.post("/registry/villages")
def add_village(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
    code: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    _, refused = _try(lambda: svc.create_village(name.strip(), code.strip() or None))
    if refused is not None:
        return _places_page(request, who, svc, error=str(refused))
    return redirect("/registry")


@router.post("/registry/areas")
def add_area(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
) -> Response:
    _, refused = _try(lambda: svc.create_area(name.strip()))
    if refused is not None:
        return _places_page(request, who, svc, error=str(refused))
    return redirect("/registry")


@router.post("/registry/landlords")
def add_landlord(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
    phone: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    _, refused = _try(lambda: svc.create_landlord(name.strip(), phone.strip() or None))
    if refused is not None:
        return _places_page(request, who, svc, error=str(refused))
    return redirect("/registry")


# -- houses, rooms, households ------------------------------------------------------------------


def _houses_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    error: str | None = None,
) -> Response:
    address = request.query_params.get("address", "").strip()[:100]
    offset = _int(request.query_params.get("offset", "")) or 0
    editable = who.may(Permission.EDIT_REGISTRY)
    with page_errors():
        listing = svc.list_houses(page(offset, PER_PAGE), address=address or None)
        areas = svc.list_areas() if editable else []
        landlords = svc.list_landlords() if editable else []
    context = {
        "listing": listing,
        "address": address,
        "per_page": PER_PAGE,
        "editable": editable,
        "areas": areas,
        "landlords": landlords,
        "error": error,
    }
    return render(request, "places_houses.html", context, who=who, status=422 if error else 200)


@router.get("/houses")
def houses(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Houses by address (landlords: their own), and a new house for staff."""
    return _houses_page(request, who, svc)


@router.post("/houses")
def add_house(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    address: Annotated[str, Form(max_length=300)],
    area_id: Annotated[str, Form(max_length=12)] = "",
    landlord_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    created, refused = _try(
        lambda: svc.create_house(address.strip(), _int(area_id), _int(landlord_id))
    )
    if refused is not None:
        return _houses_page(request, who, svc, error=str(refused))
    return redirect(f"/houses/{created}")


def _house_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    house_id: int,
    *,
    error: str | None = None,
) -> Response:
    editable = who.may(Permission.EDIT_REGISTRY)
    with page_errors():
        house = svc.get_house(house_id)
        extras = svc.house_extras(house_id)
        landlords = svc.list_landlords() if not who.is_landlord else []
        areas = svc.list_areas() if not who.is_landlord else []
    landlord = next((x for x in landlords if x.id == house.landlord_id), None)
    area = next((a for a in areas if a.id == extras.area_id), None)
    context = {
        "house": house,
        "households": extras.households,
        "landlord": landlord,
        "landlords": landlords,
        "area": area,
        "editable": editable,
        "enrol": who.may(Permission.ENROL),
        "error": error,
    }
    return render(request, "places_house.html", context, who=who, status=422 if error else 200)


@router.get("/houses/{house_id}")
def house(house_id: int, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """A house: its landlord, rooms (vacant ones too, with capacity), households, tenants."""
    return _house_page(request, who, svc, house_id)


def _house_change(
    request: Request, who: Principal, svc: AppServices, house_id: int, action: Callable[[], Any]
) -> Response:
    _, refused = _try(action)
    if refused is not None:
        return _house_page(request, who, svc, house_id, error=str(refused))
    return redirect(f"/houses/{house_id}")


@router.post("/houses/{house_id}/landlord")
def set_landlord(
    house_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    landlord_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Link the house to its landlord (empty: no landlord)."""
    return _house_change(
        request, who, svc, house_id, lambda: svc.set_house_landlord(house_id, _int(landlord_id))
    )


@router.post("/houses/{house_id}/rooms")
def add_room(
    house_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    label: Annotated[str, Form(max_length=100)],
    capacity: Annotated[int, Form(ge=1, le=1000)] = 1,
) -> Response:
    return _house_change(
        request, who, svc, house_id, lambda: svc.create_room(house_id, label.strip(), capacity)
    )


@router.post("/houses/{house_id}/rooms/{room_id}/capacity")
def set_capacity(
    house_id: int,
    room_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    capacity: Annotated[int, Form(ge=1, le=1000)],
) -> Response:
    def run() -> None:
        # The room must be one of this house's (the form's own house page).
        rooms = svc.get_house(house_id).rooms
        if all(r.id != room_id for r in rooms):
            raise NotFound(f"room {room_id} not found in house {house_id}")
        svc.set_room_capacity(room_id, capacity)

    return _house_change(request, who, svc, house_id, run)


@router.post("/houses/{house_id}/households")
def add_household(
    house_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
    registration_number: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    return _house_change(
        request,
        who,
        svc,
        house_id,
        lambda: svc.create_household(house_id, name.strip(), registration_number.strip() or None),
    )


@router.get("/rooms")
def rooms(
    request: Request, who: PagePrincipal, svc: PageServices, vacant: str = "", offset: int = 0
) -> Response:
    """Every room with its house and occupants today; ``vacant=1``: rooms with a free place."""
    with page_errors():
        listing = svc.list_rooms(page(max(offset, 0), PER_PAGE), vacant_only=vacant == "1")
    context = {"listing": listing, "vacant": vacant == "1", "per_page": PER_PAGE}
    return render(request, "places_rooms.html", context, who=who)


# -- people -------------------------------------------------------------------------------------


@router.get("/people")
def people(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """People by name, ID-number tail, house, room, category, status; paged in SQL."""
    q = request.query_params
    filters = {
        k: q.get(k, "").strip()[:100]
        for k in ("name", "id_tail", "house", "room", "category", "status")
    }
    category = filters["category"] if filters["category"] in _categories() else ""
    status = filters["status"] if filters["status"] in _statuses() else ""
    offset = _int(q.get("offset", "")) or 0
    with page_errors():
        listing = svc.list_people(
            PeopleFilter(
                name=filters["name"] or None,
                id_tail=filters["id_tail"] or None,
                house_id=_int(filters["house"]),
                room_id=_int(filters["room"]),
                category=PersonCategory(category) if category else None,
                status=PersonStatus(status) if status else None,
            ),
            page(offset, PER_PAGE),
        )
        houses = svc.list_houses(page(0, PICKER_HOUSES)).items
    context = {
        "listing": listing,
        "filters": filters,
        "houses": houses,
        "categories": _categories(),
        "statuses": _statuses(),
        "per_page": PER_PAGE,
        "enrol": who.may(Permission.ENROL),
        "removed": q.get("removed", ""),
    }
    return render(request, "people_list.html", context, who=who)


def _enrol_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    form: dict[str, str] | None = None,
    refusal: dict[str, Any] | None = None,
) -> Response:
    house_id = _int(request.query_params.get("house", "") or (form or {}).get("house", ""))
    with page_errors():
        require(who, Permission.ENROL)
        houses = svc.list_houses(page(0, PICKER_HOUSES)).items
        chosen = None
        if house_id is not None:
            try:
                chosen = svc.get_house(house_id)
            except NotFound:
                chosen = None
    context = {
        "houses": houses,
        "house": chosen,
        "form": form or {},
        "categories": _categories(),
        "methods": _methods(),
        "documents": [d.value for d in IdDocument],
        "today": svc.today(),
        "error": None,
        "photo_problems": [],
        **(refusal or {}),
    }
    return render(request, "people_enrol.html", context, who=who, status=422 if refusal else 200)


@router.get("/people/new")
def enrol_form(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Register a person: details, consent, a room, and a photo (upload or the phone's camera)."""
    return _enrol_page(request, who, svc)


@router.post("/people/new")
async def enrol_submit(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
    category: Annotated[PersonCategory, Form()] = PersonCategory.TENANT,
    id_number: Annotated[str, Form(max_length=32)] = "",
    id_type: Annotated[IdDocument, Form()] = IdDocument.RESIDENT_ID,
    phone: Annotated[str, Form(max_length=32)] = "",
    is_minor: Annotated[str, Form(max_length=5)] = "",
    guardian: Annotated[str, Form(max_length=200)] = "",
    consent_by: Annotated[str, Form(max_length=200)] = "",
    consent_method: Annotated[ConsentMethod, Form()] = ConsentMethod.PAPER,
    house: Annotated[str, Form(max_length=12)] = "",
    room_id: Annotated[str, Form(max_length=12)] = "",
    move_in: Annotated[str, Form(max_length=20)] = "",
    non_face_note: Annotated[str, Form(max_length=500)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
    consent_form: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Enrols the person (with a photo of the signed consent form if one was taken); a
    photo that cannot be used is explained in plain words and the form is shown again
    (nothing stored)."""
    data = await photo.read() if photo is not None else b""
    signed = await consent_form.read() if consent_form is not None else b""
    form = {
        "name": name,
        "category": category.value,
        "id_number": id_number,
        "id_type": id_type.value,
        "phone": phone,
        "is_minor": is_minor,
        "guardian": guardian,
        "consent_by": consent_by,
        "consent_method": consent_method.value,
        "house": house,
        "room_id": room_id,
        "move_in": move_in,
        "non_face_note": non_face_note,
    }

    def run() -> int:
        if not name.strip():
            raise InvalidInput("name: 请填写姓名 (a name is required)")
        return svc.enrol_person(
            NewPersonRequest(
                name=name.strip(),
                category=category,
                consent_by=consent_by.strip() or None,
                consent_method=consent_method,
                id_number=id_number.strip() or None,
                id_document=id_type,
                phone=phone.strip() or None,
                is_minor=bool(is_minor),
                guardian=guardian.strip() or None,
                non_face_note=non_face_note.strip() or None,
                room_id=_int(room_id),
                move_in=_day(move_in, "move_in"),
                consent_form=signed or None,
            ),
            [data] if data else [],
        )

    created, refused = await run_in_threadpool(_try, run)
    if refused is not None:
        return await run_in_threadpool(
            lambda: _enrol_page(request, who, svc, form=form, refusal=_refusal(refused))
        )
    return redirect(f"/people/{created}?done=enrolled")


def _person_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    person_id: int,
    *,
    refusal: dict[str, Any] | None = None,
) -> Response:
    house_id = _int(request.query_params.get("house", ""))
    editable = who.may(Permission.EDIT_REGISTRY)
    with page_errors():
        person = svc.get_person(person_id)
        # Consent history and photos are the village office's, not a landlord's.
        records = svc.person_records(person_id) if not who.is_landlord else None
        houses = svc.list_houses(page(0, PICKER_HOUSES)).items if editable else []
        chosen = None
        if editable and house_id is not None:
            try:
                chosen = svc.get_house(house_id)
            except NotFound:
                chosen = None
        households = []
        if editable:
            # The households of the houses the person lives or lived in, to join one.
            for hid in dict.fromkeys(t.house_id for t in person.tenancies):
                households.extend(svc.house_extras(hid).households)
    context = {
        "person": person,
        "records": records,
        "editable": editable,
        "enrol": who.may(Permission.ENROL),
        "houses": houses,
        "house": chosen,
        "households": households,
        "categories": _categories(),
        "methods": _methods(),
        "today": svc.today(),
        "done": request.query_params.get("done", ""),
        "error": None,
        "photo_problems": [],
        **(refusal or {}),
    }
    return render(request, "people_person.html", context, who=who, status=422 if refusal else 200)


@router.get("/people/{person_id}")
def person(person_id: int, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """A person: details, photos, templates, tenancies, consent history and the changes."""
    return _person_page(request, who, svc, person_id)


def _person_change(
    request: Request,
    who: Principal,
    svc: AppServices,
    person_id: int,
    action: Callable[[], Any],
    done: str,
) -> Response:
    _, refused = _try(action)
    if refused is not None:
        return _person_page(request, who, svc, person_id, refusal=_refusal(refused))
    return redirect(f"/people/{person_id}?done={done}")


@router.get("/people/{person_id}/photos/{photo_id}")
def person_photo(
    person_id: int, photo_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """A kept enrolment photo, for those who may see the person's records; never cached."""
    with page_errors():
        photo = svc.person_photo(person_id, photo_id)
    return Response(
        photo.data,
        media_type=photo.media_type,
        headers={"cache-control": "no-store, private", "x-content-type-options": "nosniff"},
    )


@router.get("/people/{person_id}/consents/{consent_id}/form")
def consent_form(
    person_id: int, consent_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """The photo of a consent's signed form, like an enrolment photo: audited, never cached."""
    with page_errors():
        form = svc.consent_form(person_id, consent_id)
    return Response(
        form.data,
        media_type=form.media_type,
        headers={"cache-control": "no-store, private", "x-content-type-options": "nosniff"},
    )


@router.post("/people/{person_id}/edit")
def edit_person(
    person_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=200)],
    phone: Annotated[str, Form(max_length=32)] = "",
    id_number: Annotated[str, Form(max_length=32)] = "",
    category: Annotated[PersonCategory | None, Form()] = None,
    household_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Changes the fields filled in; an empty ID number keeps the stored one (the page shows
    it masked, so it cannot be sent back unchanged)."""
    return _person_change(
        request,
        who,
        svc,
        person_id,
        lambda: svc.update_person(
            person_id,
            PersonChanges(
                name=name.strip() or None,
                phone=phone.strip() or None,
                id_number=id_number.strip() or None,
                category=category,
                # 0 clears the household ("none" in the form).
                household_id=_int(household_id),
            ),
        ),
        "saved",
    )


@router.post("/people/{person_id}/tenancies")
def add_tenancy(
    person_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    room_id: Annotated[int, Form(ge=1, le=_ID)],
    move_in: Annotated[str, Form(max_length=20)],
    expected_end: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    def run() -> int:
        start = _day(move_in, "move_in")
        if start is None:
            raise InvalidInput("move_in: 请填写入住日期 (the move-in day is required)")
        return svc.add_tenancy(person_id, room_id, start, _day(expected_end, "expected_end"), None)

    return _person_change(request, who, svc, person_id, run, "tenancy")


@router.post("/people/{person_id}/tenancies/{tenancy_id}/move-out")
def move_out(
    person_id: int,
    tenancy_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    move_out: Annotated[str, Form(max_length=20)],
) -> Response:
    """The person moved out of this tenancy's room on the given day (reported by staff)."""

    def run() -> None:
        # Only this person's tenancy, through this person's page.
        if all(t.id != tenancy_id for t in svc.get_person(person_id).tenancies):
            raise NotFound(f"tenancy {tenancy_id} not found for person {person_id}")
        day = _day(move_out, "move_out")
        if day is None:
            raise InvalidInput("move_out: 请填写搬离日期 (the move-out day is required)")
        svc.report_move_out(tenancy_id, day)

    return _person_change(request, who, svc, person_id, run, "moved")


@router.post("/people/{person_id}/photos")
async def add_photo(
    person_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    photo: Annotated[UploadFile, File()],
) -> Response:
    """One more enrolment photo (upload or the phone's camera), judged like the first."""
    data = await photo.read()
    return await run_in_threadpool(
        _person_change,
        request,
        who,
        svc,
        person_id,
        lambda: svc.add_photos(person_id, [data]),
        "photo",
    )


@router.post("/people/{person_id}/consents")
def record_consent(
    person_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    collected_by: Annotated[str, Form(max_length=200)],
    method: Annotated[ConsentMethod, Form()] = ConsentMethod.PAPER,
    guardian: Annotated[str, Form(max_length=200)] = "",
    form_photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """A new consent (after a withdrawal, before photos are added again), with a photo of
    the signed form if one was taken."""
    signed = form_photo.file.read() if form_photo is not None else b""
    return _person_change(
        request,
        who,
        svc,
        person_id,
        lambda: svc.record_consent(
            person_id, collected_by.strip(), method, guardian.strip() or None, signed or None
        ),
        "consent",
    )


@router.post("/people/{person_id}/withdraw")
def withdraw_consent(
    person_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    alternative_note: Annotated[str, Form(max_length=500)],
) -> Response:
    """Consent withdrawn: face templates and photos are deleted now; the note says how staff
    recognise the person from now on."""

    def run() -> list[int]:
        if not alternative_note.strip():
            raise InvalidInput(
                "alternative_note: 请说明不用人脸时如何核实此人 "
                "(say how the person is checked without a face)"
            )
        return svc.withdraw_consent(person_id, alternative_note.strip())

    return _person_change(request, who, svc, person_id, run, "withdrawn")


@router.get("/people/{person_id}/remove")
def remove_confirm(
    person_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """Asks once more before a person is deleted with everything about them."""
    with page_errors():
        person = svc.get_person(person_id)
        require(who, Permission.EDIT_REGISTRY)
    return render(request, "people_remove.html", {"person": person}, who=who)


@router.post("/people/{person_id}/remove")
def remove_person(
    person_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if confirm != "1":
        return redirect(f"/people/{person_id}/remove")
    with page_errors():
        svc.remove_person(person_id)
    return redirect("/people?removed=1")


# -- roster import ------------------------------------------------------------------------------


@router.get("/imports")
def import_form(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Upload a roster (CSV or XLSX) and a ZIP of photos: checked first, imported after."""
    with page_errors():
        require(who, Permission.ENROL)
        require(who, Permission.EDIT_REGISTRY)
    return render(request, "import_form.html", {"error": None}, who=who)


@router.post("/imports")
async def import_upload(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    roster: Annotated[UploadFile, File()],
    photos: Annotated[UploadFile | None, File()] = None,
    create_places: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Starts the dry run (nothing stored); the upload is kept for the real import."""
    roster_data = await roster.read()
    photos_data = await photos.read() if photos is not None else b""
    job, refused = await run_in_threadpool(
        _try,
        lambda: svc.start_import(
            roster_data,
            roster.filename or "roster",
            photos_data or None,
            dry_run=True,
            create_places=bool(create_places),
            keep_checked=True,
        ),
    )
    if refused is not None:
        return render(request, "import_form.html", {"error": str(refused)}, who=who, status=422)
    return redirect(f"/imports/{job.id}")


@router.get("/imports/{job_id}")
def import_job(job_id: str, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """A job's progress (reloads itself without script; live over the event stream with
    it), then its row report and, after a dry run, the button for the real import."""
    with page_errors():
        job = svc.import_job(job_id)
    finished = job.finished_at is not None
    percent = round(100 * job.done / job.total) if job.total else 0
    # A photo's problem in the row report also in the words staff act on ("move closer").
    problems = [(p, explain(p.reason)) for p in job.problems]
    context = {
        "job": job,
        "problems": problems,
        "finished": finished,
        "percent": min(percent, 100),
        "events": who.may(Permission.READ_CASES),
    }
    return render(request, "import_job.html", context, who=who)


@router.post("/imports/{job_id}/run")
def import_run(job_id: str, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """The real import of what the dry run checked."""
    with page_errors():
        job = svc.import_checked(job_id)
    return redirect(f"/imports/{job.id}")
