"""Cases: list, show, crops, assignment and every on-site outcome including 补录."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, Field

from cunan.api.deps import ServicesDep
from cunan.app_services import CandidateView, Listing, NewPersonRequest, page
from cunan.cases.views import CaseView
from cunan.registry.identity import IdDocument
from cunan.storage.enums import ConsentMethod, PersonCategory

router = APIRouter(prefix="/api/v1", tags=["cases"])

#: ``cases.status`` values (storage's CASE_STATUSES): a misspelt filter is refused, not an
#: empty list that reads as "no cases".
CaseStatusName = Literal["open", "assigned", "closed", "merged"]


class Assign(BaseModel):
    user_id: int = Field(ge=1, le=2**31 - 1)
    deadline: datetime | None = None


class Visitor(BaseModel):
    until: datetime


class Escalate(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class RegisteredPerson(BaseModel):
    person_id: int = Field(ge=1, le=2**31 - 1)


class Enrolled(BaseModel):
    person_id: int


class Merge(BaseModel):
    source_id: int = Field(ge=1, le=2**31 - 1)


class Split(BaseModel):
    sighting_ids: list[int] = Field(min_length=1, max_length=1000)


@router.get("/cases", response_model=Listing[CaseView])
def list_cases(
    svc: ServicesDep,
    status: Annotated[list[CaseStatusName] | None, Query()] = None,
    camera: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Listing[CaseView]:
    """Cases, most-seen first; filter by status (repeatable), camera name, time."""
    return svc.list_cases(
        page(offset, limit), statuses=status, camera=camera, since=since, until=until
    )


@router.get("/cases/{case_id}", response_model=CaseView)
def get_case(case_id: int, svc: ServicesDep) -> CaseView:
    return svc.get_case(case_id)


@router.get("/cases/{case_id}/candidates", response_model=list[CandidateView])
def case_candidates(
    case_id: int, svc: ServicesDep, top: Annotated[int, Query(ge=1, le=20)] = 5
) -> list[CandidateView]:
    """The registered people nearest to the case's faces, nearest first, with distances
    (a 1:N search: staff and admins; audited like identify)."""
    return svc.case_candidates(case_id, top=top)


@router.get(
    "/cases/{case_id}/crops/{sighting_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def case_crop(case_id: int, sighting_id: int, svc: ServicesDep) -> Response:
    """One of the case's best face crops (decrypted on demand, never cached by the client)."""
    return Response(svc.case_crop(case_id, sighting_id), media_type="image/jpeg")


@router.post("/cases/{case_id}/assign", response_model=CaseView)
def assign(case_id: int, body: Assign, svc: ServicesDep) -> CaseView:
    return svc.assign_case(case_id, body.user_id, body.deadline)


@router.post("/cases/{case_id}/false-alarm", response_model=CaseView)
def false_alarm(case_id: int, svc: ServicesDep) -> CaseView:
    return svc.close_false_alarm(case_id)


@router.post("/cases/{case_id}/visitor", response_model=CaseView)
def visitor(case_id: int, body: Visitor, svc: ServicesDep) -> CaseView:
    return svc.close_visitor(case_id, body.until)


@router.post("/cases/{case_id}/escalate", response_model=CaseView)
def escalate(case_id: int, body: Escalate, svc: ServicesDep) -> CaseView:
    return svc.close_escalate(case_id, body.reason)


@router.post("/cases/{case_id}/person", response_model=list[int])
def registered_person(case_id: int, body: RegisteredPerson, svc: ServicesDep) -> list[int]:
    """The case is registered person X: its best crops become their templates."""
    return svc.close_registered_person(case_id, body.person_id)


@router.post("/cases/{case_id}/enrol", status_code=201, response_model=Enrolled)
async def enrol(
    case_id: int,
    svc: ServicesDep,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    room_id: Annotated[int, Form()],
    consent_by: Annotated[str, Form(min_length=1, max_length=200)],
    consent_method: Annotated[ConsentMethod, Form()] = ConsentMethod.PAPER,
    id_number: Annotated[str | None, Form(max_length=32)] = None,
    id_type: Annotated[IdDocument, Form()] = IdDocument.RESIDENT_ID,
    phone: Annotated[str | None, Form(max_length=32)] = None,
    landlord_id: Annotated[int | None, Form()] = None,
    move_in: Annotated[date | None, Form()] = None,
    photo: Annotated[UploadFile | None, File()] = None,
    sighting_ids: Annotated[list[int] | None, Form(max_length=1000)] = None,
    consent_form: Annotated[UploadFile | None, File()] = None,
) -> Enrolled:
    """补录: enrol the person of the case as a tenant of a room, with on-site consent (and
    ``consent_form``, a JPEG or PNG photo of the signed form); the templates come from the
    case's best sightings, or from ``sighting_ids`` (repeatable) when given."""
    from starlette.concurrency import run_in_threadpool

    fresh = await photo.read() if photo is not None else None
    signed = await consent_form.read() if consent_form is not None else None
    request = NewPersonRequest(
        name=name,
        category=PersonCategory.TENANT,
        consent_by=consent_by,
        consent_method=consent_method,
        id_number=id_number,
        id_document=id_type,
        phone=phone,
        room_id=room_id,
        landlord_id=landlord_id,
        move_in=move_in,
        consent_form=signed or None,
    )
    person_id = await run_in_threadpool(
        svc.close_enrol, case_id, request, fresh or None, sighting_ids or None
    )
    return Enrolled(person_id=person_id)


@router.post("/cases/{case_id}/merge", response_model=CaseView)
def merge(case_id: int, body: Merge, svc: ServicesDep) -> CaseView:
    """The same face: case ``source_id``'s sightings move into this case."""
    return svc.merge_cases(case_id, body.source_id)


@router.post("/cases/{case_id}/split", response_model=CaseView)
def split(case_id: int, body: Split, svc: ServicesDep) -> CaseView:
    """These sightings are someone else: they move to a new open case (returned)."""
    return svc.split_case(case_id, body.sighting_ids)


@router.post("/cases/{case_id}/reopen", response_model=CaseView)
def reopen(case_id: int, svc: ServicesDep) -> CaseView:
    return svc.reopen_case(case_id)
