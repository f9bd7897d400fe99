"""``cunan places`` and ``cunan users``: the registry's places and the accounts, from the shell."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cunan.app_services import page
from cunan.cliutil import DataDirOption, opened_app
from cunan.storage.enums import UserRole

places_app = typer.Typer(help="Villages, grid areas, landlords, houses, rooms, households.")
users_app = typer.Typer(help="Accounts: staff, landlords, auditors, administrators.")
console = Console()

#: Where ``users add`` and ``users reset-password`` take the password from (automation).
PASSWORD_ENV = "CUNAN_NEW_PASSWORD"


def _echo_id(kind: str, record_id: int) -> None:
    console.print(f"{kind} {record_id}", markup=False, highlight=False)


@places_app.command("add-area")
def add_area(name: str, data_dir: DataDirOption = None) -> None:
    """A grid area (网格) of the village."""
    with opened_app(data_dir) as (_, svc):
        _echo_id("area", svc.create_area(name))


@places_app.command("add-landlord")
def add_landlord(
    name: str,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A landlord (link their houses with ``add-house --landlord`` or ``set-landlord``)."""
    with opened_app(data_dir) as (_, svc):
        _echo_id("landlord", svc.create_landlord(name, phone))


@places_app.command("add-house")
def add_house(
    address: str,
    area: Annotated[int | None, typer.Option(help="Grid area id.")] = None,
    landlord: Annotated[int | None, typer.Option(help="Landlord id.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A house (门牌 address)."""
    with opened_app(data_dir) as (_, svc):
        _echo_id("house", svc.create_house(address, area, landlord))


@places_app.command("set-landlord")
def set_landlord(
    house: int,
    landlord: Annotated[int | None, typer.Option(help="Landlord id (omit to unlink).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Link a house to its landlord."""
    with opened_app(data_dir) as (_, svc):
        svc.set_house_landlord(house, landlord)
        console.print(f"house {house}: landlord {landlord}", markup=False, highlight=False)


@places_app.command("add-room")
def add_room(
    house: int,
    label: str,
    capacity: Annotated[int, typer.Option(help="People the room holds.")] = 1,
    data_dir: DataDirOption = None,
) -> None:
    """A rental room of a house (it may stay vacant)."""
    with opened_app(data_dir) as (_, svc):
        _echo_id("room", svc.create_room(house, label, capacity))


@places_app.command("set-capacity")
def set_capacity(room: int, capacity: int, data_dir: DataDirOption = None) -> None:
    """Change a room's capacity (refused below the people living there)."""
    with opened_app(data_dir) as (_, svc):
        svc.set_room_capacity(room, capacity)
        console.print(f"room {room}: capacity {capacity}", markup=False, highlight=False)


@places_app.command("add-household")
def add_household(
    house: int,
    name: str,
    number: Annotated[
        str | None, typer.Option(help="Household registration number (户号).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """A registered household (户) of a house."""
    with opened_app(data_dir) as (_, svc):
        _echo_id("household", svc.create_household(house, name, number))


@places_app.command("houses")
def list_houses(
    address: Annotated[str | None, typer.Option(help="Part of the address.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (max 200).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Houses with their landlord."""
    with opened_app(data_dir) as (_, svc):
        listing = svc.list_houses(page(offset, limit), address=address)
    if as_json:
        for h in listing.items:
            record = {"id": h.id, "address": h.address, "landlord": h.landlord}
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    table = Table("id", "address", "landlord", title=f"{listing.total} house(s)")
    for h in listing.items:
        table.add_row(str(h.id), h.address, h.landlord or "")
    console.print(table)


@places_app.command("house")
def show_house(house: int, data_dir: DataDirOption = None) -> None:
    """A house: rooms (capacity, occupants today) and current tenants."""
    with opened_app(data_dir) as (_, svc):
        detail = svc.get_house(house)
    console.print(f"house {detail.id}: {detail.address}", markup=False, highlight=False)
    rooms = Table("room id", "room", "capacity", "occupants")
    for r in detail.rooms:
        rooms.add_row(str(r.id), r.label, str(r.capacity), str(r.occupants))
    console.print(rooms)
    tenants = Table("tenancy", "person", "name", "room", "move-in")
    for t in detail.tenants:
        tenants.add_row(str(t.tenancy_id), str(t.person_id), t.name, t.room, t.move_in.isoformat())
    console.print(tenants)


def _password(prompt: str) -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def add_user(
    username: str,
    role: Annotated[UserRole, typer.Option(help="admin, staff, landlord or auditor.")],
    display_name: Annotated[str | None, typer.Option(help="Name shown in the app.")] = None,
    landlord: Annotated[
        int | None, typer.Option(help="landlord role: the landlord record it speaks for.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an account (password asked twice, or $CUNAN_NEW_PASSWORD)."""
    password = _password(f"Password for {username}")
    with opened_app(data_dir) as (app, svc):
        user = app.auth.create_user(
            svc.principal,
            username,
            password,
            role,
            display_name=display_name,
            landlord_id=landlord,
        )
    _echo_id("user", user.id)


@users_app.command("list")
def list_users(data_dir: DataDirOption = None) -> None:
    """Accounts with role, landlord link and state."""
    with opened_app(data_dir) as (app, svc):
        users, total = app.auth.list_users(svc.principal, limit=200)
    table = Table("id", "username", "role", "landlord", "state", title=f"{total} account(s)")
    for u in users:
        table.add_row(
            str(u.id),
            u.username,
            u.role.value,
            str(u.landlord_id or ""),
            "disabled" if u.disabled else "active",
        )
    console.print(table)


def _set_disabled(username_or_id: str, disabled: bool, data_dir: Path | None) -> None:
    with opened_app(data_dir) as (app, svc):
        user_id = app.auth.user_id_of(svc.principal, username_or_id)
        app.auth.set_disabled(svc.principal, user_id, disabled)
    console.print(
        f"user {username_or_id} {'disabled' if disabled else 'enabled'}",
        markup=False,
        highlight=False,
    )


@users_app.command("disable")
def disable_user(user: str, data_dir: DataDirOption = None) -> None:
    """Disable an account: its sessions end at once."""
    _set_disabled(user, True, data_dir)


@users_app.command("enable")
def enable_user(user: str, data_dir: DataDirOption = None) -> None:
    """Enable a disabled account."""
    _set_disabled(user, False, data_dir)


@users_app.command("reset-password")
def reset_password(user: str, data_dir: DataDirOption = None) -> None:
    """Set a new password (asked twice, or $CUNAN_NEW_PASSWORD); the user's sessions end."""
    password = _password(f"New password for {user}")
    with opened_app(data_dir) as (app, svc):
        app.auth.reset_password(svc.principal, app.auth.user_id_of(svc.principal, user), password)
    console.print(f"password of {user} reset", markup=False, highlight=False)
