"""Settings pages (administrators): thresholds, retention, deadlines, channels, users, tokens."""

from __future__ import annotations

import logging
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cunan import settings_overrides as overrides
from cunan.app_services import AppServices
from cunan.authz import Permission, Principal
from cunan.errors import CunanError, ErrorKind, Forbidden, InvalidInput, kind_of
from cunan.notify.channels import SECRET_FIELDS, WEB_KINDS
from cunan.notify.robots import DINGTALK_BASE, WECOM_BASE
from cunan.storage.enums import UserRole
from cunan.web.render import (
    PageError,
    PagePrincipal,
    PageServices,
    core_of,
    page_errors,
    redirect,
    render,
)

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: The settings each values page shows, in its order ("section.field", all editable ones).
SECTIONS: dict[str, tuple[str, ...]] = {
    "recognition": (
        "matching.adaptive",
        "matching.adaptive_target",
        "matching.min_score",
        "matching.max_distance",
        "matching.fallback_max_distance",
        "matching.min_margin",
        "faces.match_threshold",
        "cases.link_threshold",
        *overrides.SIGHTING_QUALITY,
    ),
    "retention": (
        "duties.crops_days",
        "duties.unknown_sightings_days",
        "duties.known_sightings_days",
        "duties.departed_templates_days",
    ),
    "deadlines": (
        "cases.deadline_days",
        "cases.cooldown_minutes",
        "duties.departure_deadline_days",
        "duties.not_seen_days",
        "duties.late_report_window_days",
    ),
}
#: Roles an administrator can create accounts and tokens for (tokens: no landlords).
ACCOUNT_ROLES = (UserRole.STAFF, UserRole.LANDLORD, UserRole.AUDITOR, UserRole.ADMIN)
TOKEN_ROLES = (UserRole.STAFF, UserRole.AUDITOR, UserRole.ADMIN)
USERS_PER_PAGE = 50


def admin_page(who: PagePrincipal) -> Principal:
    """Settings pages are for administrators: anyone else gets the 403 page (the services
    refuse their changes anyway)."""
    if not who.may(Permission.MANAGE_SETTINGS):
        raise PageError(Forbidden("只有管理员可以修改设置 (settings are for administrators)"))
    return who


AdminPrincipal = Annotated[Principal, Depends(admin_page)]


async def _form(request: Request) -> dict[str, str]:
    """A posted form's text fields (pages with fields named by setting keys read it whole)."""
    data = await request.form()
    return {k: str(v)[:2000] for k, v in data.items() if isinstance(v, str)}


@router.get("/settings")
def settings_home(request: Request, who: AdminPrincipal) -> Response:
    """The list of settings pages."""
    return render(request, "settings_home.html", {"sections": list(SECTIONS)}, who=who)


# -- thresholds, retention, deadlines ---------------------------------------------------------


def _field(request: Request, key: str) -> dict[str, Any]:
    settings = core_of(request).settings
    *groups, name = key.split(".")
    model: Any = settings
    for group in groups:
        model = getattr(model, group)
    annotation = type(model).model_fields[name].annotation
    types = get_args(annotation) or (annotation,)
    kind = "bool" if bool in types else "int" if int in types else "float"
    return {
        "key": key,
        "id": key.replace(".", "-"),
        "group": groups[-1] if len(groups) > 1 else None,
        "value": getattr(model, name),
        "kind": kind,
        "optional": type(None) in types,
        "pinned": overrides.set_by_environment(key),
        "env": overrides.env_name(key),
    }


def _parse(field: dict[str, Any], raw: str | None) -> object:
    key, kind = field["key"], field["kind"]
    if kind == "bool":
        return raw is not None
    text = (raw or "").strip()
    if not text:
        if field["optional"]:
            return None
        raise InvalidInput(f"{key}: a value is required")
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise InvalidInput(f"{key}: {text!r} is not a number") from None


def _values_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    section: str,
    *,
    problem: str | None = None,
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    fields = [_field(request, key) for key in SECTIONS[section]]
    calibration = None
    calibration_problem = None
    if section == "recognition" and request.query_params.get("calibrate"):
        try:
            with page_errors():
                calibration = svc.calibration()
        except PageError:
            raise
        except (OSError, RuntimeError, ImportError, ValueError) as exc:
            # No face model on this machine (yet): the page works without the estimate.
            logger.warning("calibration not available: %s", type(exc).__name__)
            calibration_problem = type(exc).__name__
    context = {
        "section": section,
        "fields": fields,
        "problem": problem,
        "entered": entered or {},
        "saved": request.query_params.get("saved", ""),
        "later": request.query_params.get("later", ""),
        "calibration": calibration,
        "calibration_problem": calibration_problem,
    }
    return render(request, "settings_values.html", context, who=who, status=status)


def _section(section: str) -> str:
    if section not in SECTIONS:
        raise PageError(InvalidInput(f"no settings page {section!r}"))
    return section


@router.get("/settings/values/{section}")
def values_page(section: str, request: Request, who: AdminPrincipal, svc: PageServices) -> Response:
    """One page of values: the current ones, those fixed by the environment shown greyed."""
    return _values_page(request, who, svc, _section(section))


@router.post("/settings/values/{section}")
async def values_submit(
    section: str, request: Request, who: AdminPrincipal, svc: PageServices
) -> Response:
    """Saves the values that changed (one audited change); decision thresholds apply at once,
    the rest after the next start."""
    _section(section)
    entered = await _form(request)
    # The database work runs in the thread pool, as a plain (def) page's would.
    return await run_in_threadpool(_values_save, section, request, who, svc, entered)


def _values_save(
    section: str, request: Request, who: Principal, svc: AppServices, entered: dict[str, str]
) -> Response:
    changes: dict[str, object] = {}
    try:
        for key in SECTIONS[section]:
            field = _field(request, key)
            if field["pinned"]:
                continue
            value = _parse(field, entered.get(key))
            if value != field["value"]:
                changes[key] = value
        if not changes:
            return redirect(f"/settings/values/{section}?saved=none")
        result = svc.update_settings(changes)
    except CunanError as exc:
        if kind_of(exc) is not ErrorKind.INVALID:
            raise PageError(exc) from exc
        return _values_page(
            request, who, svc, section, problem=str(exc), entered=entered, status=422
        )
    later = "1" if result.after_restart else ""
    return redirect(f"/settings/values/{section}?saved=1&later={later}")


# -- users ------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    problem: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    auth = request.app.state.auth
    offset = max(0, int(request.query_params.get("offset", "0") or 0))
    with page_errors():
        users, total = auth.list_users(who, offset=offset, limit=USERS_PER_PAGE)
        landlords = svc.landlords_for_accounts()
    names = {lid: name for lid, name, _ in landlords}
    context = {
        "users": users,
        "total": total,
        "offset": offset,
        "per_page": USERS_PER_PAGE,
        "landlords": landlords,
        "landlord_names": names,
        "roles": [r.value for r in ACCOUNT_ROLES],
        "problem": problem,
        "form": form or {},
        "done": request.query_params.get("done", ""),
    }
    return render(request, "settings_users.html", context, who=who, status=status)


def _refused(exc: CunanError) -> None:
    """A refusal of rights or a missing record is an error page; the rest is shown on the
    form it came from."""
    if kind_of(exc) in (ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.UNAUTHENTICATED):
        raise PageError(exc) from exc


@router.get("/settings/users")
def users_page(request: Request, who: AdminPrincipal, svc: PageServices) -> Response:
    """Accounts: create (a landlord account linked to its landlord record), disable,
    enable, new password."""
    return _users_page(request, who, svc)


@router.post("/settings/users")
def users_create(
    request: Request,
    who: AdminPrincipal,
    svc: PageServices,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=20)],
    display_name: Annotated[str, Form(max_length=200)] = "",
    landlord_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    form = {"username": username, "role": role, "display_name": display_name}
    form["landlord_id"] = landlord_id
    try:
        try:
            chosen = UserRole(role)
        except ValueError:
            raise InvalidInput(f"role: {role!r} is not a role") from None
        landlord = int(landlord_id) if landlord_id.strip().isdigit() else None
        if chosen is UserRole.LANDLORD and landlord is None:
            raise InvalidInput(
                "landlord_id: 房东账号须关联房东记录 (a landlord account needs its landlord record)"
            )
        if chosen is not UserRole.LANDLORD:
            landlord = None
        request.app.state.auth.create_user(
            who,
            username,
            password,
            chosen,
            display_name=display_name.strip() or None,
            landlord_id=landlord,
        )
    except CunanError as exc:
        _refused(exc)
        return _users_page(request, who, svc, problem=str(exc), form=form, status=422)
    except ValueError as exc:  # the password strength check speaks ValueError
        return _users_page(request, who, svc, problem=str(exc), form=form, status=422)
    return redirect("/settings/users?done=created")


@router.post("/settings/users/{user_id}/disable")
def users_disable(
    user_id: int, request: Request, who: AdminPrincipal, svc: PageServices
) -> Response:
    """Disable an account: every session of it ends at once."""
    try:
        request.app.state.auth.set_disabled(who, user_id, True)
    except CunanError as exc:
        _refused(exc)
        return _users_page(request, who, svc, problem=str(exc), status=422)
    return redirect("/settings/users?done=disabled")


@router.post("/settings/users/{user_id}/enable")
def users_enable(
    user_id: int, request: Request, who: AdminPrincipal, svc: PageServices
) -> Response:
    with page_errors():
        request.app.state.auth.set_disabled(who, user_id, False)
    return redirect("/settings/users?done=enabled")


@router.post("/settings/users/{user_id}/password")
def users_password(
    user_id: int,
    request: Request,
    who: AdminPrincipal,
    svc: PageServices,
    new_password: Annotated[str, Form(max_length=1024)],
) -> Response:
    """A new password set by the administrator; the account's sessions end."""
    try:
        request.app.state.auth.reset_password(who, user_id, new_password)
    except CunanError as exc:
        _refused(exc)
        return _users_page(request, who, svc, problem=str(exc), status=422)
    except ValueError as exc:
        return _users_page(request, who, svc, problem=str(exc), status=422)
    return redirect("/settings/users?done=password")


# -- API tokens ----------------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    who: Principal,
    *,
    created: str | None = None,
    created_name: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    with page_errors():
        tokens = request.app.state.auth.list_tokens(who)
    context = {
        "tokens": tokens,
        "roles": [r.value for r in TOKEN_ROLES],
        "created": created,
        "created_name": created_name,
        "problem": problem,
        "done": request.query_params.get("done", ""),
    }
    response = render(request, "settings_tokens.html", context, who=who, status=status)
    if created is not None:
        # The secret is on this page only: no cache, no back-button copy.
        response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/settings/tokens")
def tokens_page(request: Request, who: AdminPrincipal) -> Response:
    """API tokens for integrations: create with a role (the secret shown once), revoke."""
    return _tokens_page(request, who)


@router.post("/settings/tokens")
def tokens_create(
    request: Request,
    who: AdminPrincipal,
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=20)],
) -> Response:
    """Creates the token and shows its secret on the answer itself (not after a redirect:
    it is never stored, so it could not be shown again)."""
    try:
        try:
            chosen = UserRole(role)
        except ValueError:
            raise InvalidInput(f"role: {role!r} is not a role") from None
        summary, secret = request.app.state.auth.create_token(who, name, chosen)
    except CunanError as exc:
        _refused(exc)
        return _tokens_page(request, who, problem=str(exc), status=422)
    return _tokens_page(request, who, created=secret, created_name=summary.name, status=201)


@router.post("/settings/tokens/{token_id}/revoke")
def tokens_revoke(token_id: int, request: Request, who: AdminPrincipal) -> Response:
    with page_errors():
        request.app.state.auth.revoke_token(who, token_id)
    return redirect("/settings/tokens?done=revoked")


# -- notification channels -------------------------------------------------------------------


def _mobiles(raw: str) -> list[str]:
    return [m.strip() for m in raw.replace("，", ",").replace("\n", ",").split(",") if m.strip()]


def _port(raw: str, default: int) -> int | str:
    text = raw.strip()
    # Not a number: the model refuses it, naming the field.
    return default if not text else int(text) if text.isdigit() else text


def _channel_values(kind: str, form: dict[str, str]) -> dict[str, Any]:
    """A channel form's fields as the channel settings model takes them."""
    values: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "allow_local_address": bool(form.get("allow_local_address")),
    }
    if kind == "webhook":
        values["url"] = form.get("url", "").strip()
        values["secret"] = form.get("secret", "")
        return values
    if kind in ("mqtt", "email"):
        values["host"] = form.get("host", "").strip()
        values["username"] = form.get("username", "").strip() or None
        values["password"] = form.get("password", "") or None
        if kind == "mqtt":
            values["port"] = _port(form.get("port", ""), 1883)
            values["topic"] = form.get("topic", "").strip()
            values["qos"] = _port(form.get("qos", ""), 1)
            values["retain"] = bool(form.get("retain"))
            values["tls"] = bool(form.get("tls"))
        else:
            values["port"] = _port(form.get("port", ""), 25)
            values["security"] = form.get("security", "starttls")
            values["sender"] = form.get("sender", "").strip()
            values["recipients"] = _mobiles(form.get("recipients", ""))
        return values
    values["msgtype"] = form.get("msgtype", "markdown")
    base = form.get("base_url", "").strip()
    if base:
        values["base_url"] = base
    if kind == "wecom":
        values["key"] = form.get("key", "").strip()
        values["mentioned_mobiles"] = _mobiles(form.get("mobiles", ""))
    else:
        values["access_token"] = form.get("access_token", "").strip()
        values["secret"] = form.get("secret", "").strip() or None
        values["at_mobiles"] = _mobiles(form.get("mobiles", ""))
    return values


def _cleared(kind: str, form: dict[str, str]) -> tuple[str, ...]:
    """Optional secrets the edit form asks to remove: a DingTalk robot that no longer signs,
    a broker or mail server that no longer needs a password."""
    if kind == "dingtalk" and form.get("unsigned"):
        return ("secret",)
    if kind in ("mqtt", "email") and form.get("no_password"):
        return ("password",)
    return ()


def _channels_page(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    kind: str | None = None,
    editing: int | None = None,
    form: dict[str, Any] | None = None,
    problem: str | None = None,
    tested: str | None = None,
    test_problem: str | None = None,
    status: int = 200,
) -> Response:
    with page_errors():
        admin = svc.notification_channels()
        channels = admin.list()
        if editing is not None and form is None:
            kind, stored = admin.form_values(editing)
            mobiles = stored.get("mentioned_mobiles") or stored.get("at_mobiles") or []
            recipients = stored.get("recipients") or []
            form = {
                **stored,
                "mobiles": ", ".join(mobiles),
                "recipients": ", ".join(recipients),
            }
    wanted = kind or request.query_params.get("kind", "wecom")
    context = {
        "channels": channels,
        "kind": wanted if wanted in WEB_KINDS else "wecom",
        "kinds": list(WEB_KINDS),
        "editing": editing,
        "form": form or {},
        "secret_fields": SECRET_FIELDS,
        "default_base": {"wecom": WECOM_BASE, "dingtalk": DINGTALK_BASE},
        "problem": problem,
        "tested": tested,
        "test_problem": test_problem,
        "done": request.query_params.get("done", ""),
    }
    return render(request, "settings_notify.html", context, who=who, status=status)


@router.get("/settings/notifications")
def channels_page(request: Request, who: AdminPrincipal, svc: PageServices) -> Response:
    """Channels: the settings file's (read only) and the page's; add a WeCom or DingTalk
    group robot, a webhook, an MQTT broker or an e-mail server; send a test message."""
    return _channels_page(request, who, svc)


@router.post("/settings/notifications")
async def channels_add(request: Request, who: AdminPrincipal, svc: PageServices) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_channel_add, request, who, svc, form)


def _channel_add(
    request: Request, who: Principal, svc: AppServices, form: dict[str, str]
) -> Response:
    kind = form.get("kind", "")
    try:
        if kind not in WEB_KINDS:
            raise InvalidInput(f"kind: {kind!r} is not a channel kind")
        svc.notification_channels().add(kind, _channel_values(kind, form))
    except CunanError as exc:
        _refused(exc)
        kept = {k: v for k, v in form.items() if k not in SECRET_FIELDS.get(kind, ())}
        return _channels_page(
            request,
            who,
            svc,
            kind=kind,
            form=kept,
            problem=str(exc),
            status=422,
        )
    return redirect("/settings/notifications?done=added")


@router.get("/settings/notifications/{channel_id}")
def channels_edit(
    channel_id: int, request: Request, who: AdminPrincipal, svc: PageServices
) -> Response:
    """A page channel's form, filled in; secrets are not shown (empty keeps them)."""
    return _channels_page(request, who, svc, editing=channel_id)


@router.post("/settings/notifications/{channel_id}")
async def channels_update(
    channel_id: int, request: Request, who: AdminPrincipal, svc: PageServices
) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_channel_update, channel_id, request, who, svc, form)


def _channel_update(
    channel_id: int, request: Request, who: Principal, svc: AppServices, form: dict[str, str]
) -> Response:
    kind = ""
    try:
        admin = svc.notification_channels()
        kind, _ = admin.form_values(channel_id)
        admin.update(channel_id, _channel_values(kind, form), clear=_cleared(kind, form))
    except CunanError as exc:
        _refused(exc)
        kept = {k: v for k, v in form.items() if k not in SECRET_FIELDS.get(kind, ())}
        return _channels_page(
            request, who, svc, editing=channel_id, form=kept, problem=str(exc), status=422
        )
    return redirect("/settings/notifications?done=changed")


@router.post("/settings/notifications/{channel_id}/remove")
def channels_remove(
    channel_id: int, request: Request, who: AdminPrincipal, svc: PageServices
) -> Response:
    with page_errors():
        svc.notification_channels().remove(channel_id)
    return redirect("/settings/notifications?done=removed")


@router.post("/settings/notifications-test")
def channels_test(
    request: Request,
    who: AdminPrincipal,
    svc: PageServices,
    name: Annotated[str, Form(max_length=64)],
) -> Response:
    """Sends the test message once and shows what the channel answered (on the answer
    itself: a reload asks before sending again)."""
    with page_errors():
        problem = svc.notification_channels().test(name)
    return _channels_page(request, who, svc, tested=name, test_problem=problem)
