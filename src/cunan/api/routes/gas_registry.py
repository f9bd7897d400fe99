"""The gas registry over HTTP: businesses and contacts, device models, devices, imports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Response, UploadFile
from pydantic import BaseModel, Field

from cunan.api.deps import ServicesDep, needs
from cunan.app_services import Listing, page
from cunan.authz import Permission
from cunan.gas.domain import ContactRole, DeviceKind, GasType, PowerSupply
from cunan.gas.registry import (
    BusinessDetail,
    BusinessFilter,
    BusinessInput,
    BusinessSummary,
    ContactInput,
    DeviceFilter,
    DeviceInput,
    DeviceView,
    ModelInput,
    ModelView,
)
from cunan.gas.registry_import import ImportKind, RowStatus, import_gas_upload

router = APIRouter(prefix="/api/v1/gas", tags=["gas registry"])

_MAX_ID = 2**31 - 1
BusinessId = Annotated[int, Path(ge=1, le=_MAX_ID)]
DeviceId = Annotated[int, Path(ge=1, le=_MAX_ID)]
ModelId = Annotated[int, Path(ge=1, le=_MAX_ID)]
Lel = Annotated[float, Field(gt=0, le=100)]
Status = Annotated[str, Field(pattern="^(active|closed)$")]


class Created(BaseModel):
    id: int


class BusinessBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    licence_no: str = Field(min_length=1, max_length=64)
    village_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    house_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    address: str | None = Field(default=None, max_length=300)
    category: str | None = Field(default=None, max_length=64)
    status: Status = "active"


class BusinessPatch(BaseModel):
    """Only the fields sent change (null clears address, category and house)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    licence_no: str | None = Field(default=None, min_length=1, max_length=64)
    village_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    house_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    address: str | None = Field(default=None, max_length=300)
    category: str | None = Field(default=None, max_length=64)
    status: Status | None = None


class ContactBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    #: The contact's own account (business role for owner and safety officer, maintainer
    #: role for maintainers); null: none.
    user_id: int | None = Field(default=None, ge=1, le=_MAX_ID)


class AccountBody(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


class ModelBody(BaseModel):
    code: str = Field(min_length=1, max_length=100)
    kind: DeviceKind
    power: PowerSupply = PowerSupply.MAINS
    maker: str | None = Field(default=None, max_length=100)
    #: Default: 600 s for mains, 25 h for battery devices.
    offline_after_s: int | None = Field(default=None, ge=60, le=30 * 86400)
    #: Default: 36 months for detectors, 120 for valves.
    service_months: int | None = Field(default=None, ge=1, le=600)
    low_lel: Lel | None = None
    high_lel: Lel | None = None


class ModelPatch(BaseModel):
    code: str | None = Field(default=None, min_length=1, max_length=100)
    kind: DeviceKind | None = None
    power: PowerSupply | None = None
    maker: str | None = Field(default=None, max_length=100)
    offline_after_s: int | None = Field(default=None, ge=60, le=30 * 86400)
    service_months: int | None = Field(default=None, ge=1, le=600)
    low_lel: Lel | None = None
    high_lel: Lel | None = None


class DeviceBody(BaseModel):
    business_id: int = Field(ge=1, le=_MAX_ID)
    serial: str = Field(min_length=1, max_length=64)
    kind: DeviceKind
    model_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    gas_type: GasType | None = None
    location: str | None = Field(default=None, max_length=200)
    installed_on: date | None = None
    #: Default: the install date plus the model's service life.
    replacement_due: date | None = None
    low_lel: Lel | None = None
    high_lel: Lel | None = None


class DevicePatch(BaseModel):
    business_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    kind: DeviceKind | None = None
    model_id: int | None = Field(default=None, ge=1, le=_MAX_ID)
    gas_type: GasType | None = None
    location: str | None = Field(default=None, max_length=200)
    installed_on: date | None = None
    replacement_due: date | None = None
    low_lel: Lel | None = None
    high_lel: Lel | None = None


class Credential(BaseModel):
    device_id: int
    #: Shown this once: only its SHA-256 is kept. The device's MQTT password / push token.
    secret: str
    issued_at: datetime


class ImportProblem(BaseModel):
    row: int
    column: str
    reason: str


class GasImportResult(BaseModel):
    kind: ImportKind
    dry_run: bool
    counts: dict[str, int]
    problems: list[ImportProblem]
    ignored_headers: list[str]


# -- businesses --------------------------------------------------------------------------------


@router.get("/businesses", response_model=Listing[BusinessSummary])
def list_businesses(
    svc: ServicesDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    licence_no: Annotated[str | None, Query(max_length=64)] = None,
    village_id: Annotated[int | None, Query(ge=1, le=_MAX_ID)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(pattern="^(active|closed)$")] = None,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Listing[BusinessSummary]:
    """Businesses, filtered and paginated (business and maintainer accounts: their own)."""
    at = page(offset, limit)
    items, total = svc.gas_registry().list_businesses(
        BusinessFilter(name, licence_no, village_id, category, status), at
    )
    return Listing(items, total, at.offset, at.limit)


@router.post("/businesses", status_code=201, response_model=Created)
def create_business(body: BusinessBody, svc: ServicesDep) -> Created:
    return Created(id=svc.gas_registry().create_business(BusinessInput(**body.model_dump())))


@router.get("/businesses/{business_id}", response_model=BusinessDetail)
def get_business(business_id: BusinessId, svc: ServicesDep) -> BusinessDetail:
    """A business with its contacts (another business's answers 404, like a missing one)."""
    return svc.gas_registry().get_business(business_id)


@router.patch("/businesses/{business_id}", response_model=BusinessDetail)
def patch_business(
    business_id: BusinessId, body: BusinessPatch, svc: ServicesDep
) -> BusinessDetail:
    return svc.gas_registry().update_business(business_id, body.model_dump(exclude_unset=True))


@router.put("/businesses/{business_id}/contacts/{role}", status_code=204)
def put_contact(
    business_id: BusinessId, role: ContactRole, body: ContactBody, svc: ServicesDep
) -> Response:
    """Add or replace the business's owner, safety officer or maintainer A/B."""
    svc.gas_registry().set_contact(business_id, role, ContactInput(**body.model_dump()))
    return Response(status_code=204)


@router.delete("/businesses/{business_id}/contacts/{role}", status_code=204)
def delete_contact(business_id: BusinessId, role: ContactRole, svc: ServicesDep) -> Response:
    svc.gas_registry().remove_contact(business_id, role)
    return Response(status_code=204)


@router.post(
    "/businesses/{business_id}/contacts/{role}/account", status_code=201, response_model=Created
)
def create_contact_account(
    business_id: BusinessId, role: ContactRole, body: AccountBody, svc: ServicesDep
) -> Created:
    """A login for the contact (administrators): a business account for the owner or safety
    officer, a maintainer account for maintainers, linked to the contact."""
    return Created(
        id=svc.gas_registry().create_contact_account(
            business_id, role, body.username, body.password
        )
    )


# -- device models -----------------------------------------------------------------------------


@router.get("/models", response_model=Listing[ModelView])
def list_models(
    svc: ServicesDep,
    kind: DeviceKind | None = None,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Listing[ModelView]:
    at = page(offset, limit)
    items, total = svc.gas_registry().list_models(at, kind)
    return Listing(items, total, at.offset, at.limit)


@router.post("/models", status_code=201, response_model=Created)
def create_model(body: ModelBody, svc: ServicesDep) -> Created:
    return Created(id=svc.gas_registry().create_model(ModelInput(**body.model_dump())))


@router.get("/models/{model_id}", response_model=ModelView)
def get_model(model_id: ModelId, svc: ServicesDep) -> ModelView:
    return svc.gas_registry().get_model(model_id)


@router.patch("/models/{model_id}", response_model=ModelView)
def patch_model(model_id: ModelId, body: ModelPatch, svc: ServicesDep) -> ModelView:
    return svc.gas_registry().update_model(model_id, body.model_dump(exclude_unset=True))


# -- devices -----------------------------------------------------------------------------------


@router.get("/devices", response_model=Listing[DeviceView])
def list_devices(
    svc: ServicesDep,
    business_id: Annotated[int | None, Query(ge=1, le=_MAX_ID)] = None,
    kind: DeviceKind | None = None,
    replacement_before: date | None = None,
    include_removed: bool = False,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Listing[DeviceView]:
    """Devices, filtered (business, kind, replacement due before a day) and paginated."""
    at = page(offset, limit)
    items, total = svc.gas_registry().list_devices(
        DeviceFilter(
            business_id, kind.value if kind else None, replacement_before, include_removed
        ),
        at,
    )
    return Listing(items, total, at.offset, at.limit)


@router.post("/devices", status_code=201, response_model=Created)
def create_device(body: DeviceBody, svc: ServicesDep) -> Created:
    return Created(id=svc.gas_registry().create_device(DeviceInput(**body.model_dump())))


@router.get("/devices/{device_id}", response_model=DeviceView)
def get_device(device_id: DeviceId, svc: ServicesDep) -> DeviceView:
    return svc.gas_registry().get_device(device_id)


@router.patch("/devices/{device_id}", response_model=DeviceView)
def patch_device(device_id: DeviceId, body: DevicePatch, svc: ServicesDep) -> DeviceView:
    """Only the fields sent change; the replacement date follows a new install date or
    model unless it is sent too."""
    return svc.gas_registry().update_device(device_id, body.model_dump(exclude_unset=True))


@router.delete("/devices/{device_id}", status_code=204)
def remove_device(device_id: DeviceId, svc: ServicesDep) -> Response:
    """Take the device out of service: kept with its history, its credential stops working."""
    svc.gas_registry().remove_device(device_id)
    return Response(status_code=204)


@router.post("/devices/{device_id}/credential", status_code=201, response_model=Credential)
def issue_credential(device_id: DeviceId, svc: ServicesDep) -> Credential:
    """A new credential for the device, shown once; an earlier one stops working."""
    registry = svc.gas_registry()
    secret = registry.issue_credential(device_id)
    return Credential(device_id=device_id, secret=secret, issued_at=registry.now())


# -- imports -----------------------------------------------------------------------------------


@router.post(
    "/imports/{kind}", response_model=GasImportResult, dependencies=[needs(Permission.EDIT_GAS)]
)
async def import_file(
    kind: ImportKind,
    svc: ServicesDep,
    file: Annotated[UploadFile, File()],
    dry_run: Annotated[bool, Query()] = True,
) -> GasImportResult:
    """Businesses or devices from an XLSX or CSV file (UTF-8 or GBK): a dry run by default
    (every row checked, nothing stored); each problem names its row and column."""
    from starlette.concurrency import run_in_threadpool

    data = await file.read()
    report = await run_in_threadpool(
        lambda: import_gas_upload(
            svc.gas_registry(), data, file.filename or "upload", kind, dry_run=dry_run
        )
    )
    return GasImportResult(
        kind=report.kind,
        dry_run=report.dry_run,
        counts={s.value: report.count(s) for s in RowStatus},
        problems=[
            ImportProblem(row=p.row, column=p.column, reason=p.reason) for p in report.problems
        ],
        ignored_headers=report.ignored_headers,
    )
