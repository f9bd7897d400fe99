"""Gas alarms (list, detail, acknowledge) and gas cases (stage moves, site photos)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile
from pydantic import BaseModel, Field

from cunan.api.deps import CoreDep, PrincipalDep
from cunan.errors import InvalidInput
from cunan.gas.alarms import AlarmDetail, AlarmPage, OnlineRate
from cunan.gas.cases import MAX_NOTE_CHARS, GasCaseView, PhotoView
from cunan.gas.domain import AlarmState, AlarmType, GasCaseStage, Severity
from cunan.storage.gas_alarm_repository import AlarmFilter

router = APIRouter(prefix="/api/v1/gas", tags=["gas alarms"])

#: Longest page of alarms one request returns.
MAX_LIMIT = 500
_ID = Field(ge=1, le=2**31 - 1)


class StageMove(BaseModel):
    stage: GasCaseStage
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


@router.get("/alarms", response_model=AlarmPage)
def list_alarms(
    core: CoreDep,
    who: PrincipalDep,
    business_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    device_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    alarm_type: Annotated[list[AlarmType] | None, Query(alias="type")] = None,
    state: Annotated[list[AlarmState] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    acknowledged: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> AlarmPage:
    """Alarms, newest first; filter by business, device, type, state, severity (each
    repeatable), acknowledged or not, and when raised (``since`` <= raised < ``until``)."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput("since/until 须带时区 (give since/until with a time zone)")
    where = AlarmFilter(
        business_id=business_id,
        device_id=device_id,
        alarm_types=[t.value for t in alarm_type or ()],
        states=[s.value for s in state or ()],
        severities=[s.value for s in severity or ()],
        acknowledged=acknowledged,
        since=since,
        until=until,
    )
    return core.gas_alarms.list_alarms(who, where, offset=offset, limit=limit)


@router.get("/alarms/{alarm_id}", response_model=AlarmDetail)
def alarm_detail(alarm_id: int, core: CoreDep, who: PrincipalDep) -> AlarmDetail:
    """One alarm and its history: raised, updated, notified, acknowledged, cleared."""
    return core.gas_alarms.detail(who, alarm_id)


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmDetail)
def acknowledge(alarm_id: int, core: CoreDep, who: PrincipalDep) -> AlarmDetail:
    """Take the alarm in hand: its escalation stops (409 when already acknowledged)."""
    return core.gas_alarms.acknowledge(who, alarm_id)


@router.get("/online-rate", response_model=OnlineRate)
def online_rate(
    core: CoreDep,
    who: PrincipalDep,
    business_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    year: Annotated[int, Query(ge=2000, le=2100)],
    month: Annotated[int, Query(ge=1, le=12)],
) -> OnlineRate:
    """A business's online rate in a month (village calendar), per device with its offline
    spells: the evidence that its alarms were kept in normal use."""
    return core.gas_alarms.online_rate(who, business_id, year, month)


@router.get("/cases/{case_id}", response_model=GasCaseView)
def gas_case(case_id: int, core: CoreDep, who: PrincipalDep) -> GasCaseView:
    """A gas case: its stage, the moves allowed next, every step, its photos."""
    return core.gas_cases.get(who, case_id)


@router.post("/cases/{case_id}/stage", response_model=GasCaseView)
def move_stage(case_id: int, body: StageMove, core: CoreDep, who: PrincipalDep) -> GasCaseView:
    """Move the case to the next stage (409 for a move the workflow does not allow)."""
    return core.gas_cases.move(who, case_id, body.stage.value, body.note)


@router.post("/cases/{case_id}/photos", status_code=201, response_model=PhotoView)
async def add_photo(
    case_id: int, core: CoreDep, who: PrincipalDep, photo: Annotated[UploadFile, File()]
) -> PhotoView:
    """Attach a photo of the site (JPEG or PNG; stored encrypted)."""
    from starlette.concurrency import run_in_threadpool

    data = await photo.read()
    content_type = (photo.content_type or "").split(";")[0].strip().lower()
    return await run_in_threadpool(core.gas_cases.add_photo, who, case_id, data, content_type)


@router.get(
    "/cases/{case_id}/photos/{photo_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
def photo(case_id: int, photo_id: int, core: CoreDep, who: PrincipalDep) -> Response:
    """A site photo (decrypted on demand, never cached by the client)."""
    data, content_type = core.gas_cases.photo(who, case_id, photo_id)
    # Every /api/ answer is sent with Cache-Control: no-store (cunan.api.security).
    return Response(data, media_type=content_type)
