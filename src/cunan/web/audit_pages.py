"""The audit pages (auditors and administrators): the log with filters, the chain check in
words, and the privacy report."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cunan.app_services import page
from cunan.duties.clock import start_of_day
from cunan.errors import InvalidInput
from cunan.web.render import PagePrincipal, PageServices, core_of, page_errors, render
from cunan.web.ui import _day

router = APIRouter(include_in_schema=False)

AUDIT_PER_PAGE = 50


def _moment(day: date | None, zone: ZoneInfo, what: str) -> datetime | None:
    """Village midnight of ``day`` in UTC; a day at the calendar's far ends is refused."""
    if day is None:
        return None
    try:
        return start_of_day(day, zone)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{what}: {day} is out of range") from None


def _text(value: str, limit: int = 64) -> str | None:
    value = value.strip()[:limit]
    return value or None


@router.get("/audit")
def audit_log(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    target_type: str = "",
    target_id: str = "",
    offset: int = 0,
) -> Response:
    """The audit log, newest first, filtered and paged in SQL; days are village days."""
    zone = core_of(request).settings.duties.zone
    with page_errors():
        start = _day(since, "since")
        end = _day(until, "until")
        listing = svc.list_audit(
            page(max(offset, 0), AUDIT_PER_PAGE),
            action=_text(action),
            actor=_text(actor, 100),
            since=_moment(start, zone, "since"),
            until=_moment(end + timedelta(days=1), zone, "until")
            if end and end < date.max
            else None,
            target_type=_text(target_type),
            target_id=_text(target_id),
        )
    filters = {
        "action": action,
        "actor": actor,
        "since": since,
        "until": until,
        "target_type": target_type,
        "target_id": target_id,
    }
    return render(
        request,
        "audit_log.html",
        {"listing": listing, "filters": filters, "per_page": AUDIT_PER_PAGE},
        who=who,
    )


@router.get("/audit/verify")
def audit_verify(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Recomputes the whole hash chain and says in words whether the log is intact."""
    with page_errors():
        report = svc.audit_chain()
    return render(request, "audit_verify.html", {"report": report}, who=who)


@router.get("/audit/privacy")
def privacy_report(
    request: Request, who: PagePrincipal, svc: PageServices, since: str = "", until: str = ""
) -> Response:
    """Face data held against the filing threshold, consents and withdrawals, purges, and
    1:N searches per account per day, for a period of village days."""
    with page_errors():
        report = svc.privacy_report(_day(since, "since"), _day(until, "until"))
    return render(request, "audit_privacy.html", {"report": report}, who=who)
