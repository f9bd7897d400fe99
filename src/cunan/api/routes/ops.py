"""Sightings, statistics, cameras, the audit log and health."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from cunan.api.deps import CoreDep, PrincipalDep, ServicesDep
from cunan.app_services import AuditEntryView, Listing, SightingSummary, page
from cunan.authz import Permission, require

router = APIRouter(prefix="/api/v1", tags=["operations"])
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
    decision: str | None = None,
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
    offset: int = 0,
    limit: int = 50,
) -> Listing[AuditEntryView]:
    """The audit log, newest first (admins and auditors)."""
    return svc.list_audit(page(offset, limit), action=action, actor=actor, since=since, until=until)


@router.post("/audit/verify", response_model=AuditVerdict)
def verify_audit(svc: ServicesDep) -> AuditVerdict:
    """Recompute the hash chain of the whole log."""
    ok, entries, problem = svc.verify_audit()
    return AuditVerdict(ok=ok, entries=entries, problem=problem)


@router.get("/cameras", response_model=list[CameraSummary])
def list_cameras(core: CoreDep, who: PrincipalDep) -> list[CameraSummary]:
    """Cameras with their URL (password redacted)."""
    require(who, Permission.READ_CAMERAS)
    return [
        CameraSummary(
            id=c.id,
            name=c.name,
            url=c.display_url,
            enabled=c.enabled,
            public_notice_posted=c.public_notice_posted,
        )
        for c in core.cameras.list()
    ]
