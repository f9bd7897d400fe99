"""The first-run set-up page: the first administrator, from the link `cunan serve` printed."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from cunan.api.deps import AuthDep, CoreDep
from cunan.errors import CunanError
from cunan.web.render import render

router = APIRouter(include_in_schema=False)


def _valid(request: Request, token: str) -> bool:
    expected: str | None = request.app.state.setup_token
    return bool(expected) and secrets.compare_digest(expected or "", token)


@router.get("/setup")
def setup_page(request: Request, token: str = "") -> Response:
    """The set-up form, for the printed link's token only."""
    if not _valid(request, token):
        return render(request, "setup.html", {"state": "invalid"}, status=403)
    return render(request, "setup.html", {"state": "form", "token": token, "username": "admin"})


@router.post("/setup")
def setup_submit(
    request: Request,
    core: CoreDep,
    auth: AuthDep,
    token: Annotated[str, Form(max_length=200)],
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    again: Annotated[str, Form(max_length=1024)],
) -> Response:
    if not _valid(request, token):
        return render(request, "setup.html", {"state": "invalid"}, status=403)
    form = {"state": "form", "token": token, "username": username}
    if password != again:
        return render(request, "setup.html", {**form, "problem": "differ"}, status=422)
    try:
        auth.setup_admin(username, password, village_id=core.registry.service.default_village_id())
    except (CunanError, ValueError) as exc:
        return render(request, "setup.html", {**form, "problem": str(exc)}, status=422)
    request.app.state.setup_token = None
    return render(request, "setup.html", {"state": "done"})
