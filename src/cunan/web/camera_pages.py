"""The camera pages: list with health, add and edit, test connection, snapshot, detection zone."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cunan.app_services import AppServices, CameraRequest
from cunan.authz import Permission, Principal
from cunan.capture.sources import public_url
from cunan.errors import CunanError, ErrorKind, InvalidInput, NotFound, Unavailable, kind_of
from cunan.pipeline.camera_health import CameraHealthView, not_running
from cunan.pipeline.cameras import CameraRecord, rectangle_zone_json, zone_rectangle
from cunan.web.render import PageError, PagePrincipal, PageServices, page_errors, redirect, render

router = APIRouter(include_in_schema=False)

#: Longest a URL, name or reason typed into a form may be (the API's limits).
MAX_URL = 2000
MAX_NAME = 200
MAX_REASON = 2000
#: Zone numbers are full-frame pixels; no camera has a side longer than this.
MAX_PIXEL = 20_000

#: What a failed connection test says, by the words of the capture's own message (the
#: message itself, English and technical, is shown below for the technician).
TEST_REASONS: tuple[tuple[str, str], ...] = (
    ("access denied", "denied"),
    ("timed out", "timeout"),
    ("connection refused", "refused"),
    ("unreachable", "unreachable"),
    ("not found on the server", "path"),
    ("not found", "missing"),
    ("directory", "missing"),
    ("not a video", "not_video"),
    ("invalid data", "not_video"),
    ("no video stream", "not_video"),
)


def _readable(who: Principal) -> None:
    """Landlords (and any role without camera rights) find no camera pages at all."""
    if not who.may(Permission.READ_CAMERAS):
        raise PageError(NotFound("no such page"))


def _row(camera: CameraRecord, health: dict[int, CameraHealthView]) -> dict[str, Any]:
    return {
        "camera": camera,
        "address": public_url(camera.display_url),
        "health": health.get(camera.id) or not_running(camera.id),
    }


@router.get("/cameras")
def cameras_page(request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """Every camera with its health; /static/cameras.js updates the states live."""
    _readable(who)
    with page_errors():
        cameras = svc.list_cameras()
        health = svc.camera_health()
    rows = [_row(c, health) for c in cameras]
    return render(request, "camera_list.html", {"rows": rows}, who=who)


@router.get("/cameras/new")
def new_camera_page(request: Request, who: PagePrincipal) -> Response:
    _readable(who)
    if not who.may(Permission.MANAGE_CAMERAS):
        raise PageError(NotFound("no such page"))
    form = {"name": "", "url": "", "enabled": True, "notice": False, "reason": ""}
    return render(request, "camera_form.html", {"form": form, "camera": None}, who=who)


def _checked(value: str) -> bool:
    return value in ("1", "on", "true", "yes")


@router.post("/cameras")
def add_camera(
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=MAX_NAME)],
    url: Annotated[str, Form(max_length=MAX_URL)],
    enabled: Annotated[str, Form(max_length=10)] = "",
    notice: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
) -> Response:
    """Registers a camera; a refusal shows the form again with what was typed (the URL
    too: it was typed by this user a moment ago)."""
    _readable(who)
    try:
        camera = svc.add_camera(
            CameraRequest(
                name=name.strip(),
                url=url.strip(),
                public_notice_posted=_checked(notice),
                enabled=_checked(enabled),
                public_notice_reason=reason.strip() or None,
            )
        )
    except (CunanError, ValueError) as exc:
        _raise_if_not_a_form_problem(exc)
        form = {
            "name": name,
            "url": url,
            "enabled": _checked(enabled),
            "notice": _checked(notice),
            "reason": reason,
        }
        context = {"form": form, "camera": None, "error": str(exc)}
        return render(request, "camera_form.html", context, who=who, status=422)
    return redirect(f"/cameras/{camera.id}?saved=1")


def _raise_if_not_a_form_problem(exc: Exception) -> None:
    """Refusals the user cannot fix in the form (no right, gone) are error pages."""
    if isinstance(exc, CunanError) and kind_of(exc) in (
        ErrorKind.FORBIDDEN,
        ErrorKind.NOT_FOUND,
        ErrorKind.UNAUTHENTICATED,
    ):
        raise PageError(exc) from exc


def _camera_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    camera_id: int,
    *,
    error: str | None = None,
    test: dict[str, Any] | None = None,
    form: dict[str, Any] | None = None,
    zone_form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    _readable(who)
    with page_errors():
        camera = svc.get_camera(camera_id)
        health = svc.camera_health()
    rectangle = zone_rectangle(camera.zone_json)
    editable = who.may(Permission.MANAGE_CAMERAS)
    context = {
        **_row(camera, health),
        "editable": editable,
        "error": error,
        "test": test,
        "saved": request.query_params.get("saved") == "1",
        "form": form
        or {
            "name": camera.name,
            "url": "",
            "enabled": camera.enabled,
            "notice": camera.public_notice_posted,
            "reason": camera.public_notice_reason or "",
        },
        "zone": zone_form
        or dict(
            zip(
                ("left", "top", "right", "bottom"),
                (f"{v:g}" for v in rectangle) if rectangle else ("", "", "", ""),
                strict=True,
            )
        ),
        "polygon": camera.zone is not None and len(camera.zone.polygon) != 4,
    }
    return render(request, "camera_page.html", context, who=who, status=status)


@router.get("/cameras/{camera_id}")
def camera_page(
    camera_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """A camera: its health and settings; for staff and admins the edit, zone and test forms."""
    return _camera_page(request, who, svc, camera_id)


@router.post("/cameras/{camera_id}")
def edit_camera(
    camera_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=MAX_NAME)],
    url: Annotated[str, Form(max_length=MAX_URL)] = "",
    enabled: Annotated[str, Form(max_length=10)] = "",
    notice: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
) -> Response:
    """Saves the settings form. An empty URL keeps the stored one (whose password the
    page never shows)."""
    _readable(who)
    try:
        svc.update_camera(
            camera_id,
            enabled=_checked(enabled),
            public_notice_posted=_checked(notice),
            zone_json=None,
            name=name,
            url=url.strip() or None,
            public_notice_reason=reason,
        )
    except (CunanError, ValueError) as exc:
        _raise_if_not_a_form_problem(exc)
        form = {
            "name": name,
            "url": url,
            "enabled": _checked(enabled),
            "notice": _checked(notice),
            "reason": reason,
        }
        return _camera_page(request, who, svc, camera_id, error=str(exc), form=form, status=422)
    return redirect(f"/cameras/{camera_id}?saved=1")


def _pixel(value: str, what: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise InvalidInput(f"zone {what}: {value!r} is not a number of pixels") from None
    if not 0 <= number <= MAX_PIXEL:
        raise InvalidInput(f"zone {what}: {number:g} is outside 0 to {MAX_PIXEL} pixels")
    return number


@router.post("/cameras/{camera_id}/zone")
def set_zone(
    camera_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    left: Annotated[str, Form(max_length=20)] = "",
    top: Annotated[str, Form(max_length=20)] = "",
    right: Annotated[str, Form(max_length=20)] = "",
    bottom: Annotated[str, Form(max_length=20)] = "",
    whole: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """The detection zone: a rectangle in full-frame pixels (drawn on the snapshot by
    /static/zone.js, or typed), or the whole frame."""
    _readable(who)
    typed = {"left": left, "top": top, "right": right, "bottom": bottom}
    try:
        if _checked(whole):
            zone = ""  # an empty zone clears it: the whole frame is watched
        else:
            box = [_pixel(v, k) for k, v in typed.items()]
            try:
                zone = rectangle_zone_json(*box)
            except ValueError as exc:
                raise InvalidInput(f"zone: {exc}") from None
        svc.update_camera(camera_id, enabled=None, public_notice_posted=None, zone_json=zone)
    except (CunanError, ValueError) as exc:
        _raise_if_not_a_form_problem(exc)
        return _camera_page(
            request, who, svc, camera_id, error=str(exc), zone_form=typed, status=422
        )
    return redirect(f"/cameras/{camera_id}?saved=1")


def _reason(message: str) -> str:
    lowered = message.lower()
    for words, reason in TEST_REASONS:
        if words in lowered:
            return reason
    return "other"


@router.post("/cameras/{camera_id}/test")
def test_connection(
    camera_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """Tries the camera now and says what happened in words."""
    _readable(who)
    try:
        shot = svc.camera_snapshot(camera_id)
    except Unavailable as exc:
        detail = str(exc)
        test = {"ok": False, "reason": _reason(detail), "detail": detail}
    except CunanError as exc:
        raise PageError(exc) from exc
    else:
        test = {"ok": True, "width": shot.width, "height": shot.height}
    return _camera_page(request, who, svc, camera_id, test=test)


@router.get("/cameras/{camera_id}/snapshot.jpg")
def snapshot(camera_id: int, request: Request, who: PagePrincipal, svc: PageServices) -> Response:
    """The camera's picture now, for those who manage cameras; never stored by a cache.
    ``x-frame-width``/``-height`` give the full frame's size (the picture may be smaller)."""
    _readable(who)
    with page_errors():
        shot = svc.camera_snapshot(camera_id)
    return Response(
        shot.jpeg,
        media_type="image/jpeg",
        headers={
            "cache-control": "no-store, private",
            "x-frame-width": str(shot.width),
            "x-frame-height": str(shot.height),
        },
    )
