"""Login, logout, the caller's own account, first-run set-up, users and API tokens."""

from __future__ import annotations

import secrets
from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from cunan.api.deps import AuthDep, CoreDep, PrincipalDep
from cunan.api.security import CSRF_COOKIE, SESSION_COOKIE
from cunan.auth.service import TokenSummary, UserSummary
from cunan.errors import Forbidden
from cunan.storage.enums import UserRole

public = APIRouter(prefix="/api/v1", tags=["auth"])
router = APIRouter(prefix="/api/v1", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    user_id: int | None
    username: str
    role: UserRole
    village_id: int | None
    landlord_id: int | None
    via: str


class LoginResponse(BaseModel):
    user: Me
    expires_at: datetime
    csrf_token: str


class SetupRequest(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=1024)


class PasswordChange(BaseModel):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=1024)
    role: UserRole
    display_name: str | None = Field(default=None, max_length=200)
    landlord_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class PasswordReset(BaseModel):
    new_password: str = Field(min_length=8, max_length=1024)


class UserPatch(BaseModel):
    disabled: bool


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: UserRole


class CreatedToken(BaseModel):
    token: TokenSummary
    secret: str


class UserList(BaseModel):
    items: list[UserSummary]
    total: int


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or bool(
        request.app.state.core.settings.web.force_secure_cookies
    )


def _me(who: PrincipalDep) -> Me:
    return Me(
        user_id=who.user_id,
        username=who.username,
        role=who.role,
        village_id=who.village_id,
        landlord_id=who.landlord_id,
        via=who.via,
    )


@public.post("/auth/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, response: Response, auth: AuthDep) -> LoginResponse:
    """Log in: sets the HttpOnly session cookie (SameSite=Lax) and a CSRF cookie."""
    from cunan.api.security import same_origin

    if same_origin(request.scope) is False:
        # A page of another site must not log this browser into an account of its choice.
        raise Forbidden("跨站登录被拒绝 (cross-site login refused)")
    result = auth.login(body.username, body.password, client=_client(request))
    max_age = int((result.expires_at - datetime.now(result.expires_at.tzinfo)).total_seconds())
    secure = _secure(request)
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    csrf = secrets.token_urlsafe(24)
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure
    )
    return LoginResponse(user=_me(result.principal), expires_at=result.expires_at, csrf_token=csrf)


@public.post("/auth/setup", status_code=201)
def setup(body: SetupRequest, request: Request, core: CoreDep, auth: AuthDep) -> dict[str, int]:
    """First run: create the first administrator with the one-time link's token."""
    expected: str | None = request.app.state.setup_token
    if not expected or not secrets.compare_digest(expected, body.token):
        raise Forbidden("设置链接无效或已使用 (the set-up link is invalid or was used)")
    user_id = auth.setup_admin(
        body.username, body.password, village_id=core.registry.service.default_village_id()
    )
    request.app.state.setup_token = None
    return {"user_id": user_id}


@router.post("/auth/logout", status_code=204)
def logout(request: Request, response: Response, auth: AuthDep, who: PrincipalDep) -> Response:
    """End this session (the cookie is cleared)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.logout(token)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE)
    return out


@router.get("/auth/me", response_model=Me)
def me(who: PrincipalDep) -> Me:
    """Who is logged in, with role and scope."""
    return _me(who)


@router.post("/auth/password", status_code=204)
def change_password(body: PasswordChange, who: PrincipalDep, auth: AuthDep) -> Response:
    """Change the caller's own password; all their sessions end (log in again)."""
    auth.change_password(who, body.old_password, body.new_password)
    return Response(status_code=204)


@router.get("/users", response_model=UserList)
def list_users(who: PrincipalDep, auth: AuthDep, offset: int = 0, limit: int = 50) -> UserList:
    """Accounts (administrators only)."""
    from cunan.app_services import page

    at = page(offset, limit)
    items, total = auth.list_users(who, offset=at.offset, limit=at.limit)
    return UserList(items=items, total=total)


@router.post("/users", status_code=201, response_model=UserSummary)
def create_user(body: NewUser, who: PrincipalDep, auth: AuthDep) -> UserSummary:
    """Create a staff, landlord, auditor or admin account."""
    return auth.create_user(
        who,
        body.username,
        body.password,
        body.role,
        display_name=body.display_name,
        landlord_id=body.landlord_id,
    )


@router.get("/users/{user_id}", response_model=UserSummary)
def get_user(user_id: int, who: PrincipalDep, auth: AuthDep) -> UserSummary:
    return auth.get_user(who, user_id)


@router.patch("/users/{user_id}", response_model=UserSummary)
def patch_user(user_id: int, body: UserPatch, who: PrincipalDep, auth: AuthDep) -> UserSummary:
    """Disable (all sessions end) or re-enable an account."""
    return auth.set_disabled(who, user_id, body.disabled)


@router.post("/users/{user_id}/password", status_code=204)
def reset_password(user_id: int, body: PasswordReset, who: PrincipalDep, auth: AuthDep) -> Response:
    """An administrator sets a new password for an account."""
    auth.reset_password(who, user_id, body.new_password)
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenSummary])
def list_tokens(who: PrincipalDep, auth: AuthDep) -> list[TokenSummary]:
    return auth.list_tokens(who)


@router.post("/tokens", status_code=201, response_model=CreatedToken)
def create_token(body: NewToken, who: PrincipalDep, auth: AuthDep) -> CreatedToken:
    """A new integration token; the secret is shown once and only its hash is stored."""
    summary, secret = auth.create_token(who, body.name, body.role)
    return CreatedToken(token=summary, secret=secret)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, who: PrincipalDep, auth: AuthDep) -> Response:
    auth.revoke_token(who, token_id)
    return Response(status_code=204)
