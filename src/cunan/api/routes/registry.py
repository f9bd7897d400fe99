"""People, houses, rooms and tenancies; enrolment by upload; identify an uploaded image."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from pydantic import BaseModel

from cunan.api.deps import ServicesDep, needs
from cunan.app_services import (
    ConfirmationTask,
    FaceComparison,
    FaceIdentification,
    HouseDetail,
    HouseSummary,
    Listing,
    NewPersonRequest,
    OverdueDeparture,
    PersonDetail,
    PersonSummary,
    page,
)
from cunan.authz import Permission
from cunan.duties.reconcile import TaskView
from cunan.registry.identity import IdDocument
from cunan.storage.enums import ConsentMethod, PersonCategory, PersonStatus
from cunan.storage.query_repository import PeopleFilter

router = APIRouter(prefix="/api/v1", tags=["registry"])

#: Photos per enrolment request; each is also bounded by the upload limit.
MAX_PHOTOS = 5


class Created(BaseModel):
    id: int


class MoveOut(BaseModel):
    move_out: date


async def _read(files: list[UploadFile]) -> list[bytes]:
    if len(files) > MAX_PHOTOS:
        from cunan.errors import InvalidInput

        raise InvalidInput(f"at most {MAX_PHOTOS} photos per request")
    return [await f.read() for f in files]


@router.get("/people", response_model=Listing[PersonSummary])
def list_people(
    svc: ServicesDep,
    name: str | None = None,
    id_tail: Annotated[str | None, "last digits of the ID number"] = None,
    house_id: int | None = None,
    room_id: int | None = None,
    category: PersonCategory | None = None,
    status: PersonStatus | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Listing[PersonSummary]:
    """People, filtered and paginated (landlords: their current and past tenants only)."""
    return svc.list_people(
        PeopleFilter(
            name=name,
            id_tail=id_tail,
            house_id=house_id,
            room_id=room_id,
            category=category,
            status=status,
        ),
        page(offset, limit),
    )


@router.get("/people/{person_id}", response_model=PersonDetail)
def get_person(person_id: int, svc: ServicesDep) -> PersonDetail:
    return svc.get_person(person_id)


@router.post("/people", status_code=201, response_model=Created)
async def enrol_person(
    svc: ServicesDep,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    category: Annotated[PersonCategory, Form()] = PersonCategory.TENANT,
    consent_by: Annotated[str | None, Form(max_length=200)] = None,
    consent_method: Annotated[ConsentMethod, Form()] = ConsentMethod.PAPER,
    id_number: Annotated[str | None, Form(max_length=32)] = None,
    phone: Annotated[str | None, Form(max_length=32)] = None,
    is_minor: Annotated[bool, Form()] = False,
    guardian: Annotated[str | None, Form(max_length=200)] = None,
    non_face_note: Annotated[str | None, Form(max_length=500)] = None,
    room_id: Annotated[int | None, Form()] = None,
    landlord_id: Annotated[int | None, Form()] = None,
    move_in: Annotated[date | None, Form()] = None,
    id_type: Annotated[IdDocument, Form()] = IdDocument.RESIDENT_ID,
    allow_same_face: Annotated[bool, Form()] = False,
    photos: Annotated[list[UploadFile] | None, File()] = None,
) -> Created:
    """Register a person with consent and enrolment photos (multipart form)."""
    from starlette.concurrency import run_in_threadpool

    data = await _read(photos or [])
    request = NewPersonRequest(
        name=name,
        category=category,
        consent_by=consent_by,
        consent_method=consent_method,
        id_number=id_number,
        phone=phone,
        is_minor=is_minor,
        guardian=guardian,
        non_face_note=non_face_note,
        room_id=room_id,
        landlord_id=landlord_id,
        move_in=move_in,
        id_document=id_type,
        allow_same_face=allow_same_face,
    )
    person_id = await run_in_threadpool(svc.enrol_person, request, data)
    return Created(id=person_id)


@router.post(
    "/identify",
    response_model=list[FaceIdentification],
    # Refused before the upload is read; AppServices checks again.
    dependencies=[needs(Permission.IDENTIFY)],
)
async def identify(
    svc: ServicesDep, image: Annotated[UploadFile, File()]
) -> list[FaceIdentification]:
    """Each face of an uploaded photo: registered person or unknown, with reasons."""
    from starlette.concurrency import run_in_threadpool

    data = await image.read()
    return await run_in_threadpool(svc.identify, data)


@router.post(
    "/faces/compare",
    response_model=FaceComparison,
    # Refused before the uploads are read; AppServices checks again.
    dependencies=[needs(Permission.IDENTIFY)],
)
async def compare_faces(
    svc: ServicesDep,
    image_a: Annotated[UploadFile, File()],
    image_b: Annotated[UploadFile, File()],
) -> FaceComparison:
    """1:1: are the largest faces of two photos the same person? The decision, the distance
    and how sure (the population-aware operating point of ``cunan faces compare``)."""
    from starlette.concurrency import run_in_threadpool

    first, second = await image_a.read(), await image_b.read()
    return await run_in_threadpool(svc.compare_faces, first, second)


@router.get("/houses", response_model=Listing[HouseSummary])
def list_houses(
    svc: ServicesDep, address: str | None = None, offset: int = 0, limit: int = 50
) -> Listing[HouseSummary]:
    """Houses (landlords: their own only)."""
    return svc.list_houses(page(offset, limit), address=address)


@router.get("/houses/{house_id}", response_model=HouseDetail)
def get_house(house_id: int, svc: ServicesDep) -> HouseDetail:
    """A house with its rooms (capacity, occupants today) and current tenants."""
    return svc.get_house(house_id)


@router.post("/tenancies/{tenancy_id}/move-out", status_code=204)
def report_move_out(tenancy_id: int, body: MoveOut, svc: ServicesDep) -> Response:
    """Report that a tenant moved out (landlords: their own tenants only)."""
    svc.report_move_out(tenancy_id, body.move_out)
    return Response(status_code=204)


@router.get("/departures/overdue", response_model=list[OverdueDeparture])
def overdue_departures(svc: ServicesDep) -> list[OverdueDeparture]:
    """Move-outs reported late or not at all (landlords: their own tenants)."""
    return svc.overdue_departures()


@router.get("/tasks", response_model=list[ConfirmationTask])
def confirmation_tasks(svc: ServicesDep, open_only: bool = True) -> list[ConfirmationTask]:
    """Confirmation tasks (still living here?) of tenants not seen for long."""
    return svc.confirmation_tasks(open_only=open_only)


@router.post("/tasks/{task_id}/confirm", response_model=TaskView)
def confirm_task(task_id: int, svc: ServicesDep) -> TaskView:
    """The tenant still lives here; if they moved out, report the move-out instead."""
    return svc.confirm_task(task_id)


class ImportStarted(BaseModel):
    job_id: str
    dry_run: bool


class ImportProblem(BaseModel):
    row: int
    column: str
    reason: str


class ImportStatus(BaseModel):
    job_id: str
    state: str
    dry_run: bool
    total: int | None
    done: int
    counts: dict[str, int]
    problems: list[ImportProblem]
    error: str | None


@router.post("/imports", status_code=202, response_model=ImportStarted)
async def start_import(
    svc: ServicesDep,
    roster: Annotated[UploadFile, File()],
    photos: Annotated[UploadFile | None, File()] = None,
    dry_run: Annotated[bool, Form()] = True,
    create_places: Annotated[bool, Form()] = False,
) -> ImportStarted:
    """Upload a roster (XLSX or CSV) and a ZIP of its photos; a dry run by default (check
    every row, store nothing). Follow the job at ``/imports/{job_id}``."""
    from starlette.concurrency import run_in_threadpool

    roster_data = await roster.read()
    photos_data = await photos.read() if photos is not None else None
    job = await run_in_threadpool(
        lambda: svc.start_import(
            roster_data,
            roster.filename or "roster",
            photos_data or None,
            dry_run=dry_run,
            create_places=create_places,
        )
    )
    return ImportStarted(job_id=job.id, dry_run=job.dry_run)


@router.get("/imports/{job_id}", response_model=ImportStatus)
def import_status(job_id: str, svc: ServicesDep) -> ImportStatus:
    """Progress, counts per row status, and every row problem (row, column, reason)."""
    job = svc.import_job(job_id)
    return ImportStatus(
        job_id=job.id,
        state=job.state.value,
        dry_run=job.dry_run,
        total=job.total,
        done=job.done,
        counts=job.counts,
        problems=[ImportProblem(row=p.row, column=p.column, reason=p.reason) for p in job.problems],
        error=job.error,
    )
