"""The statistics page the village reports upward: printable on A4 and exported as XLSX."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cunan.app_services import AppServices
from cunan.stats.workbook import Cell, Percent, statistics_workbook
from cunan.web.render import (
    TEMPLATES,
    PagePrincipal,
    PageServices,
    core_of,
    language,
    page_errors,
    render,
)

router = APIRouter(include_in_schema=False)

#: The figures, in the order the report lists them (keys of ``AppServices.statistics``).
FIGURES = (
    "residents",
    "tenants",
    "tenants_with_face_data",
    "tenant_face_data_share",
    "rental_houses",
    "rental_rooms",
    "open_cases",
    "verified_cases",
    "median_hours_to_verify",
    "overdue_departures",
    "late_departure_reports",
    "people_with_face_data",
    "filing_threshold",
)
#: How many periods the case table covers: eight weeks, or twelve months.
PERIOD_COUNTS = {"week": 8, "month": 12}


def _period(value: str) -> str:
    return value if value in PERIOD_COUNTS else "week"


def _report(svc: AppServices, period: str) -> dict[str, Any]:
    with page_errors():
        stats = svc.statistics()
        flow = svc.case_flow(period, PERIOD_COUNTS[period])
    as_of = datetime.fromisoformat(str(stats["as_of"]))
    return {"stats": stats, "as_of": as_of, "flow": flow, "period": period, "figures": FIGURES}


def _labels(lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """The figure and sheet labels in ``lang``, from the template the page uses too."""
    module = TEMPLATES.env.get_template("_statistics_labels.html").make_module({"lang": lang})
    exported = module.__dict__
    return dict(exported["figure_labels"]), dict(exported["sheet_labels"])


@router.get("/statistics")
def statistics_page(
    request: Request, who: PagePrincipal, svc: PageServices, period: str = "week"
) -> Response:
    """The figures, then cases opened and closed per week or month; the print stylesheet
    makes it an A4 report."""
    return render(request, "statistics.html", _report(svc, _period(period)), who=who)


def _cell(key: str, value: object) -> Cell:
    if value is None:
        return None
    if key == "tenant_face_data_share" and isinstance(value, int | float):
        return Percent(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return str(value)


@router.get("/statistics.xlsx")
def statistics_xlsx(
    request: Request, who: PagePrincipal, svc: PageServices, period: str = "week"
) -> Response:
    """The same figures as a workbook: one sheet of figures, one of cases per period."""
    period = _period(period)
    report = _report(svc, period)
    stats: dict[str, object] = report["stats"]
    figure_labels, sheet = _labels(language(request))
    zone = core_of(request).settings.duties.zone
    as_of = datetime.now(UTC).astimezone(zone)
    figures: list[list[Cell]] = [
        [sheet["title"], None],
        [sheet["as_of"], as_of.strftime("%Y-%m-%d %H:%M")],
        [sheet["figure"], sheet["value"]],
    ]
    figures += [[figure_labels[key], _cell(key, stats.get(key))] for key in FIGURES]
    cases: list[list[Cell]] = [[sheet["from"], sheet["to"], sheet["opened"], sheet["closed"]]]
    cases += [
        [p.start.isoformat(), p.end.isoformat(), p.opened, p.closed] for p in (report["flow"] or [])
    ]
    per_day = stats.get("sightings_per_camera_per_day")
    sightings: list[list[Cell]] = []
    if isinstance(per_day, dict):
        sightings.append([sheet["camera"], *[str(d) for d in per_day.get("days", [])]])
        # Camera names are typed by staff: the workbook writer makes them inert text.
        sightings += [
            [str(name), *[int(n) for n in counts]]
            for name, counts in sorted(per_day.get("cameras", {}).items())
        ]
    data = statistics_workbook(
        [(sheet["figures"], figures), (sheet["cases"], cases), (sheet["sightings"], sightings)]
    )
    with page_errors():
        svc.record_statistics_export(
            period=period, periods=PERIOD_COUNTS[period], file_format="xlsx"
        )
    name = f"cunan-statistics-{as_of.date().isoformat()}.xlsx"
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
