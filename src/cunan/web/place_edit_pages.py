"""Rename and delete places from the registry pages: villages, areas, landlords, houses, rooms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cunan.app_services import AppServices
from cunan.authz import Principal
from cunan.errors import NotFound
from cunan.web.registry_pages import _house_page, _places_page, _try
from cunan.web.render import PageError, PagePrincipal, PageServices, redirect

router = APIRouter(include_in_schema=False)

#: The places listed on /registry, by the path word the forms use.
REGISTRY_KINDS = {"villages": "village", "areas": "grid_area", "landlords": "landlord"}

Name = Annotated[str, Form(max_length=300)]


def _on_registry(
    request: Request, who: Principal, svc: AppServices, action: Callable[[], Any]
) -> Response:
    _, refused = _try(action)
    if refused is not None:
        return _places_page(request, who, svc, error=str(refused))
    return redirect("/registry")


def _registry_kind(word: str) -> str:
    kind = REGISTRY_KINDS.get(word)
    if kind is None:
        raise PageError(NotFound(f"no such list {word!r}"))
    return kind


@router.post("/registry/{word}/{record_id}/rename")
def rename_listed(
    word: str,
    record_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Name,
) -> Response:
    """A village's, grid area's or landlord's new name."""
    kind = _registry_kind(word)
    return _on_registry(request, who, svc, lambda: svc.rename_place(kind, record_id, name))


@router.post("/registry/{word}/{record_id}/remove")
def remove_listed(
    word: str, record_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """Delete a village, grid area or landlord nothing refers to; otherwise the page says
    what still does."""
    kind = _registry_kind(word)
    return _on_registry(request, who, svc, lambda: svc.remove_place(kind, record_id))


def _on_house(
    request: Request, who: Principal, svc: AppServices, house_id: int, action: Callable[[], Any]
) -> Response:
    _, refused = _try(action)
    if refused is not None:
        return _house_page(request, who, svc, house_id, error=str(refused))
    return redirect(f"/houses/{house_id}")


@router.post("/houses/{house_id}/rename")
def rename_house(
    house_id: int, request: Request, who: PagePrincipal, svc: PageServices, name: Name
) -> Response:
    """The house's new address."""
    return _on_house(request, who, svc, house_id, lambda: svc.rename_place("house", house_id, name))


@router.post("/houses/{house_id}/remove")
def remove_house(
    house_id: int, request: Request, who: PagePrincipal, svc: PageServices
) -> Response:
    """Delete a house without rooms, households or cameras (the page says which remain)."""
    _, refused = _try(lambda: svc.remove_place("house", house_id))
    if refused is not None:
        return _house_page(request, who, svc, house_id, error=str(refused))
    return redirect("/houses")


def _of_house(svc: AppServices, house_id: int, kind: str, record_id: int) -> None:
    """The room or household must be one of this house's (the form's own house page)."""
    if kind == "room":
        ids = {r.id for r in svc.get_house(house_id).rooms}
    else:
        ids = {h.id for h in svc.house_extras(house_id).households}
    if record_id not in ids:
        raise NotFound(f"{kind} {record_id} not found in house {house_id}")


_PARTS = {"rooms": "room", "households": "household"}


@router.post("/houses/{house_id}/{part}/{record_id}/rename")
def rename_part(
    house_id: int,
    part: str,
    record_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
    name: Name,
) -> Response:
    """A room's new label or a household's new name."""
    kind = _PARTS.get(part, "")

    def run() -> None:
        if not kind:
            raise NotFound(f"no such part of a house: {part!r}")
        _of_house(svc, house_id, kind, record_id)
        svc.rename_place(kind, record_id, name)

    return _on_house(request, who, svc, house_id, run)


@router.post("/houses/{house_id}/{part}/{record_id}/remove")
def remove_part(
    house_id: int,
    part: str,
    record_id: int,
    request: Request,
    who: PagePrincipal,
    svc: PageServices,
) -> Response:
    """Delete a room nobody lived in, or a household nobody belongs to."""
    kind = _PARTS.get(part, "")

    def run() -> None:
        if not kind:
            raise NotFound(f"no such part of a house: {part!r}")
        _of_house(svc, house_id, kind, record_id)
        svc.remove_place(kind, record_id)

    return _on_house(request, who, svc, house_id, run)
