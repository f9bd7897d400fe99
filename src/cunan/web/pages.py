"""The first-run set-up page: the first administrator, from the link `cunan serve` printed."""

from __future__ import annotations

import html
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cunan.api.deps import AuthDep, CoreDep
from cunan.errors import CunanError

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>村安 CunAn · 首次设置</title>
<link rel="stylesheet" href="/static/cunan.css"></head>
<body><main>
<h1>村安 CunAn · 首次设置 (first-run set-up)</h1>
{body}
</main></body></html>"""


def _form(token: str, error: str | None = None, username: str = "admin") -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return _PAGE.format(
        body=f"""{message}
<p class="hint">创建第一个管理员账户。此链接只能使用一次。
(Create the first administrator; this link works once.)</p>
<form method="post" action="/setup">
<input type="hidden" name="token" value="{html.escape(token)}">
<label for="username">用户名 (username)</label>
<input id="username" name="username" value="{html.escape(username)}" required maxlength="100"
 autocomplete="username">
<label for="password">密码，至少 8 位 (password, 8+ characters)</label>
<input id="password" name="password" type="password" required minlength="8" maxlength="1024"
 autocomplete="new-password">
<label for="again">再次输入密码 (password again)</label>
<input id="again" name="again" type="password" required minlength="8" maxlength="1024"
 autocomplete="new-password">
<button type="submit">创建管理员 (create administrator)</button>
</form>"""
    )


def _done() -> str:
    return _PAGE.format(
        body="<p>管理员已创建，请登录。(The administrator was created; log in.)</p>"
        '<p><a href="/api/docs">API</a></p>'
    )


def _valid(request: Request, token: str) -> bool:
    expected: str | None = request.app.state.setup_token
    return bool(expected) and secrets.compare_digest(expected or "", token)


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request, token: str = "") -> Response:
    """The set-up form, for the printed link's token only."""
    if not _valid(request, token):
        return HTMLResponse(
            _PAGE.format(
                body='<p class="error">设置链接无效或已使用。(The set-up link is invalid or was '
                "used.)</p>"
            ),
            status_code=403,
        )
    return HTMLResponse(_form(token))


@router.post("/setup", response_class=HTMLResponse)
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
        return RedirectResponse("/setup", status_code=303)
    if password != again:
        return HTMLResponse(
            _form(token, "两次输入的密码不一致 (the passwords differ)", username), 422
        )
    try:
        auth.setup_admin(username, password, village_id=core.registry.service.default_village_id())
    except CunanError as exc:
        return HTMLResponse(_form(token, str(exc), username), 422)
    except ValueError as exc:
        return HTMLResponse(_form(token, str(exc), username), 422)
    request.app.state.setup_token = None
    return HTMLResponse(_done())
