"""The auditor's privacy report and the case flow per week or month (statistics)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter

from cunan.api.deps import ServicesDep
from cunan.audit.privacy import PrivacyReport
from cunan.stats.service import CasePeriod

router = APIRouter(prefix="/api/v1", tags=["reports"])


@router.get("/privacy", response_model=PrivacyReport)
def privacy_report(
    svc: ServicesDep, since: date | None = None, until: date | None = None
) -> PrivacyReport:
    """People with face data against the filing threshold, consents and withdrawals, purges
    and 1:N searches per account per village day, for ``since``..``until`` (village days,
    both included; the last 30 days by default, at most 92). Auditors and administrators."""
    return svc.privacy_report(since, until)


@router.get("/stats/cases", response_model=list[CasePeriod] | None)
def case_flow(
    svc: ServicesDep, period: Literal["week", "month"] = "week", count: int = 8
) -> list[CasePeriod] | None:
    """Cases opened and closed in each of the last ``count`` weeks or months (village
    calendar, oldest first); null without the cases workflow."""
    return svc.case_flow(period, count)
