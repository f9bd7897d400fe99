"""Sightings, statistics, cameras, the audit log and health."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from cunan.api.deps import CoreDep, ServicesDep
from cunan.app_services import (
    AuditEntryView,
    CameraRequest,
    Listing,
    SettingsChange,
    SightingSummary,
    page,
)
from cunan.notify.deadletters import DeadLetterView
from cunan.pipeline.cameras import CameraRecord

router = APIRouter(prefix="/api/v1", tags=["operations"])

#: ``sightings.decision`` values (storage's SIGHTING_DECISIONS): a misspelt filter is refused.
DecisionName = Literal["known", "unknown", "undecided"]
public = APIRouter(prefix="/api/v1", tags=["operations"])


class Health(BaseModel):
    status: str
    database: str
    background: bool


class AuditVerdict(BaseModel):
    ok: bool
    entries: int
    problem: str | None


class CameraSummary(BaseModel):
    id: int
    name: str
    url: str
    enabled: bool
    public_notice_posted: bool
    zone: str | None


class NewCamera(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    #: The legally required public notice (告示) is posted where this camera looks.
    public_notice_posted: bool
    enabled: bool = True
    house_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    #: Detection zone as JSON (see docs/capture.md), or null for the whole frame.
    zone: str | None = Field(default=None, max_length=10_000)


class CameraPatch(BaseModel):
    enabled: bool | None = None
    public_notice_posted: bool | None = None
    zone: str | None = Field(default=None, max_length=10_000)


class ConnectionTest(BaseModel):
    ok: bool
    message: str
    width: int | None
    height: int | None


@public.get("/health", response_model=Health)
def health(core: CoreDep) -> Health:
    """Liveness for monitors: no data, only whether the database answers."""
    try:
        with core.registry.database.read() as session:
            from sqlalchemy import text

            session.execute(text("SELECT 1"))
        database = "ok"
    except Exception:  # noqa: BLE001 - health reports any failure as "unavailable"
        database = "unavailable"
    ok = database == "ok" and core.healthy()
    return Health(status="ok" if ok else "degraded", database=database, background=core.healthy())


@router.get("/sightings", response_model=Listing[SightingSummary])
def list_sightings(
    svc: ServicesDep,
    camera_id: int | None = None,
    decision: DecisionName | None = None,
    person_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Listing[SightingSummary]:
    """Sightings, newest first; filter by camera, decision, person and time."""
    return svc.list_sightings(
        page(offset, limit),
        camera_id=camera_id,
        decision=decision,
        person_id=person_id,
        since=since,
        until=until,
    )


@router.get("/audit", response_model=Listing[AuditEntryView])
def list_audit(
    svc: ServicesDep,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    target_type: str | None = Query(default=None, max_length=64),
    target_id: str | None = Query(default=None, max_length=64),
    offset: int = 0,
    limit: int = 50,
) -> Listing[AuditEntryView]:
    """The audit log, newest first (admins and auditors); ``action`` also finds its
    sub-actions (``case`` finds ``case.transition``), ``target_type``/``target_id`` the
    entries about one record (``person``/``42``)."""
    return svc.list_audit(
        page(offset, limit),
        action=action,
        actor=actor,
        since=since,
        until=until,
        target_type=target_type,
        target_id=target_id,
    )


@router.post("/audit/verify", response_model=AuditVerdict)
def verify_audit(svc: ServicesDep) -> AuditVerdict:
    """Recompute the hash chain of the whole log."""
    ok, entries, problem = svc.verify_audit()
    return AuditVerdict(ok=ok, entries=entries, problem=problem)


def _public_url(url: str) -> str:
    """Scheme, host and port only: some cameras carry the password in the path or query
    (``/user=admin_password=...``), which no redaction rule can know in advance."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url.rsplit("/", 1)[-1] if parts.scheme in ("", "file") else parts.scheme + "://"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{port}{rest}"


def _camera(c: CameraRecord) -> CameraSummary:
    return CameraSummary(
        id=c.id,
        name=c.name,
        url=_public_url(c.display_url),
        enabled=c.enabled,
        public_notice_posted=c.public_notice_posted,
        zone=c.zone_json,
    )


@router.get("/cameras", response_model=list[CameraSummary])
def list_cameras(svc: ServicesDep) -> list[CameraSummary]:
    """Cameras with their URL (password redacted)."""
    return [_camera(c) for c in svc.list_cameras()]


@router.post("/cameras", status_code=201, response_model=CameraSummary)
def add_camera(body: NewCamera, svc: ServicesDep) -> CameraSummary:
    """Register a camera. Recognition runs only where the public notice is posted."""
    return _camera(
        svc.add_camera(
            CameraRequest(
                name=body.name,
                url=body.url,
                public_notice_posted=body.public_notice_posted,
                enabled=body.enabled,
                house_id=body.house_id,
                zone_json=body.zone,
            )
        )
    )


@router.get("/cameras/{camera_id}", response_model=CameraSummary)
def get_camera(camera_id: int, svc: ServicesDep) -> CameraSummary:
    return _camera(svc.get_camera(camera_id))


@router.patch("/cameras/{camera_id}", response_model=CameraSummary)
def patch_camera(camera_id: int, body: CameraPatch, svc: ServicesDep) -> CameraSummary:
    """Enable, disable, record the public notice, or set the detection zone."""
    return _camera(
        svc.update_camera(
            camera_id,
            enabled=body.enabled,
            public_notice_posted=body.public_notice_posted,
            zone_json=body.zone,
        )
    )


@router.delete("/cameras/{camera_id}", status_code=204)
def remove_camera(camera_id: int, svc: ServicesDep) -> Response:
    svc.remove_camera(camera_id)
    return Response(status_code=204)


@router.get(
    "/cameras/{camera_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def camera_snapshot(camera_id: int, svc: ServicesDep) -> Response:
    """The camera's picture now; 503 with the reason when it cannot be reached."""
    shot = svc.camera_snapshot(camera_id)
    return Response(
        shot.jpeg,
        media_type="image/jpeg",
        headers={"x-frame-width": str(shot.width), "x-frame-height": str(shot.height)},
    )


@router.post("/cameras/{camera_id}/test", response_model=ConnectionTest)
def test_camera(camera_id: int, svc: ServicesDep) -> ConnectionTest:
    """Try the camera now: a picture arrives, or the reason it does not."""
    from cunan.errors import Unavailable

    try:
        shot = svc.camera_snapshot(camera_id)
    except Unavailable as exc:
        return ConnectionTest(ok=False, message=str(exc), width=None, height=None)
    return ConnectionTest(ok=True, message="ok", width=shot.width, height=shot.height)


@router.get(
    "/sightings/{sighting_id}/crop",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def sighting_crop(sighting_id: int, svc: ServicesDep) -> Response:
    """The sighting's best face crop (decrypted on demand; gone after the retention period)."""
    return Response(svc.sighting_crop(sighting_id), media_type="image/jpeg")


@router.get("/stats", response_model=dict[str, object])
def statistics(svc: ServicesDep) -> dict[str, object]:
    """Residents, tenants, face-data share, rooms, cases, overdue departures, sightings."""
    return svc.statistics()


@router.get("/settings", response_model=dict[str, object])
def settings(svc: ServicesDep) -> dict[str, object]:
    """The settings in force (no secrets)."""
    return svc.settings_view()


@router.patch("/settings", response_model=SettingsChange)
def change_settings(body: dict[str, float | int | None], svc: ServicesDep) -> SettingsChange:
    """Change thresholds, retention periods or deadlines (administrators; the editable keys
    are listed by ``GET /settings``). Decision thresholds apply at once, the rest after a
    restart; settings given by the environment cannot be changed here."""
    return svc.update_settings(dict(body))


@router.get("/notifications/dead-letters", response_model=list[DeadLetterView])
def dead_letters(svc: ServicesDep) -> list[DeadLetterView]:
    """Alerts that could not be delivered to a channel."""
    return svc.dead_letters()
