"""Villages, grid areas, landlords, houses, rooms and households; person edits and tenancies."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile
from pydantic import BaseModel, Field

from cunan.api.deps import ServicesDep
from cunan.registry.identity import IdDocument
from cunan.registry.records import PersonChanges
from cunan.storage.enums import ConsentMethod, PersonCategory

router = APIRouter(prefix="/api/v1", tags=["registry"])

_ID = Field(ge=1, le=2**31 - 1)
#: Photos per upload request; each is also bounded by the upload limit.
MAX_PHOTOS = 5


class Created(BaseModel):
    id: int


class NewVillage(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    code: str | None = Field(default=None, max_length=32)


class NewNamed(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class NewLandlord(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=32)


class NewHouse(BaseModel):
    address: str = Field(min_length=1, max_length=300)
    area_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    landlord_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class HousePatch(BaseModel):
    landlord_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    #: A new address (the house's name); without ``landlord_id`` only the address changes.
    address: str | None = Field(default=None, min_length=1, max_length=300)


class Rename(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class NewRoom(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    capacity: int = Field(default=1, ge=1, le=1000)


class RoomPatch(BaseModel):
    capacity: int | None = Field(default=None, ge=1, le=1000)
    label: str | None = Field(default=None, min_length=1, max_length=100)


class NewHousehold(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    registration_number: str | None = Field(default=None, max_length=64)


class PersonPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    id_number: str | None = Field(default=None, max_length=32)
    category: PersonCategory | None = None
    household_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    #: What ``id_number`` is: a resident ID (checked: GB 11643 check digit, birth date), a
    #: passport or a 港澳台 permit (the same rules as ``people add --id-type`` and the import).
    id_type: IdDocument = IdDocument.RESIDENT_ID


class NewTenancyBody(BaseModel):
    room_id: int = _ID
    move_in: date
    expected_end: date | None = None
    landlord_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class NewConsent(BaseModel):
    collected_by: str = Field(min_length=1, max_length=200)
    method: ConsentMethod = ConsentMethod.PAPER
    guardian: str | None = Field(default=None, max_length=200)


class Withdrawal(BaseModel):
    #: How staff identify the person without a face from now on.
    alternative_note: str = Field(min_length=1, max_length=500)


class Removed(BaseModel):
    templates_deleted: int


class TemplatesAdded(BaseModel):
    template_ids: list[int]


@router.post("/villages", status_code=201, response_model=Created)
def create_village(body: NewVillage, svc: ServicesDep) -> Created:
    return Created(id=svc.create_village(body.name, body.code))


@router.post("/areas", status_code=201, response_model=Created)
def create_area(body: NewNamed, svc: ServicesDep) -> Created:
    """A grid area (网格) of the caller's village."""
    return Created(id=svc.create_area(body.name))


@router.post("/landlords", status_code=201, response_model=Created)
def create_landlord(body: NewLandlord, svc: ServicesDep) -> Created:
    return Created(id=svc.create_landlord(body.name, body.phone))


@router.post("/houses", status_code=201, response_model=Created)
def create_house(body: NewHouse, svc: ServicesDep) -> Created:
    return Created(id=svc.create_house(body.address, body.area_id, body.landlord_id))


@router.patch("/villages/{village_id}", status_code=204)
def rename_village(village_id: int, body: Rename, svc: ServicesDep) -> Response:
    """Rename a village (administrators)."""
    svc.rename_place("village", village_id, body.name)
    return Response(status_code=204)


@router.delete("/villages/{village_id}", status_code=204)
def remove_village(village_id: int, svc: ServicesDep) -> Response:
    """Delete a village nothing refers to (409 with what still does)."""
    svc.remove_place("village", village_id)
    return Response(status_code=204)


@router.patch("/areas/{area_id}", status_code=204)
def rename_area(area_id: int, body: Rename, svc: ServicesDep) -> Response:
    svc.rename_place("grid_area", area_id, body.name)
    return Response(status_code=204)


@router.delete("/areas/{area_id}", status_code=204)
def remove_area(area_id: int, svc: ServicesDep) -> Response:
    """Delete a grid area without houses or cameras (409 otherwise)."""
    svc.remove_place("grid_area", area_id)
    return Response(status_code=204)


@router.patch("/landlords/{landlord_id}", status_code=204)
def rename_landlord(landlord_id: int, body: Rename, svc: ServicesDep) -> Response:
    svc.rename_place("landlord", landlord_id, body.name)
    return Response(status_code=204)


@router.delete("/landlords/{landlord_id}", status_code=204)
def remove_landlord(landlord_id: int, svc: ServicesDep) -> Response:
    """Delete a landlord without houses, tenancies, tasks or an account (409 otherwise)."""
    svc.remove_place("landlord", landlord_id)
    return Response(status_code=204)


@router.patch("/houses/{house_id}", status_code=204)
def patch_house(house_id: int, body: HousePatch, svc: ServicesDep) -> Response:
    """Link the house to its landlord (null unlinks) and/or give it a new address."""
    if body.address is not None:
        svc.rename_place("house", house_id, body.address)
    if body.address is None or "landlord_id" in body.model_fields_set:
        svc.set_house_landlord(house_id, body.landlord_id)
    return Response(status_code=204)


@router.delete("/houses/{house_id}", status_code=204)
def remove_house(house_id: int, svc: ServicesDep) -> Response:
    """Delete a house without rooms, households or cameras (409 otherwise)."""
    svc.remove_place("house", house_id)
    return Response(status_code=204)


@router.post("/houses/{house_id}/rooms", status_code=201, response_model=Created)
def create_room(house_id: int, body: NewRoom, svc: ServicesDep) -> Created:
    """A rental room (it may stay vacant)."""
    return Created(id=svc.create_room(house_id, body.label, body.capacity))


@router.patch("/rooms/{room_id}", status_code=204)
def patch_room(room_id: int, body: RoomPatch, svc: ServicesDep) -> Response:
    """A room's capacity and/or its new label."""
    if body.capacity is None and body.label is None:
        from cunan.errors import InvalidInput

        raise InvalidInput(f"room {room_id}: give a capacity or a label")
    if body.label is not None:
        svc.rename_place("room", room_id, body.label)
    if body.capacity is not None:
        svc.set_room_capacity(room_id, body.capacity)
    return Response(status_code=204)


@router.delete("/rooms/{room_id}", status_code=204)
def remove_room(room_id: int, svc: ServicesDep) -> Response:
    """Delete a room nobody ever lived in (409 with its tenancies otherwise)."""
    svc.remove_place("room", room_id)
    return Response(status_code=204)


@router.post("/houses/{house_id}/households", status_code=201, response_model=Created)
def create_household(house_id: int, body: NewHousehold, svc: ServicesDep) -> Created:
    return Created(id=svc.create_household(house_id, body.name, body.registration_number))


@router.patch("/households/{household_id}", status_code=204)
def rename_household(household_id: int, body: Rename, svc: ServicesDep) -> Response:
    svc.rename_place("household", household_id, body.name)
    return Response(status_code=204)


@router.delete("/households/{household_id}", status_code=204)
def remove_household(household_id: int, svc: ServicesDep) -> Response:
    """Delete a household nobody belongs to (409 otherwise)."""
    svc.remove_place("household", household_id)
    return Response(status_code=204)


@router.patch("/people/{person_id}", status_code=204)
def patch_person(person_id: int, body: PersonPatch, svc: ServicesDep) -> Response:
    svc.update_person(
        person_id,
        PersonChanges(
            name=body.name,
            phone=body.phone,
            id_number=body.id_number,
            category=body.category,
            household_id=body.household_id,
            id_document=body.id_type,
        ),
    )
    return Response(status_code=204)


@router.delete("/people/{person_id}", response_model=Removed)
def remove_person(person_id: int, svc: ServicesDep) -> Removed:
    """Delete a person with everything about them (face data overwritten)."""
    return Removed(templates_deleted=len(svc.remove_person(person_id)))


@router.post("/people/{person_id}/tenancies", status_code=201, response_model=Created)
def add_tenancy(person_id: int, body: NewTenancyBody, svc: ServicesDep) -> Created:
    return Created(
        id=svc.add_tenancy(
            person_id, body.room_id, body.move_in, body.expected_end, body.landlord_id
        )
    )


@router.post("/people/{person_id}/consents", status_code=201, response_model=Created)
def record_consent(person_id: int, body: NewConsent, svc: ServicesDep) -> Created:
    return Created(id=svc.record_consent(person_id, body.collected_by, body.method, body.guardian))


@router.post("/people/{person_id}/consent-withdrawal", response_model=Removed)
def withdraw_consent(person_id: int, body: Withdrawal, svc: ServicesDep) -> Removed:
    """Consent withdrawn: templates and photos are deleted at once."""
    return Removed(templates_deleted=len(svc.withdraw_consent(person_id, body.alternative_note)))


@router.post("/people/{person_id}/photos", status_code=201, response_model=TemplatesAdded)
async def add_photos(
    person_id: int, svc: ServicesDep, photos: Annotated[list[UploadFile], File()]
) -> TemplatesAdded:
    """More enrolment photos for a person with a valid consent."""
    from starlette.concurrency import run_in_threadpool

    from cunan.errors import InvalidInput

    if len(photos) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos per request")
    data = [await f.read() for f in photos]
    return TemplatesAdded(template_ids=await run_in_threadpool(svc.add_photos, person_id, data))
