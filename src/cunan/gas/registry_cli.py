"""``cunan gas business|model|device|import``: the gas registry from the shell."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cunan.app_services import page
from cunan.cliutil import DataDirOption, fail, opened_app
from cunan.gas.domain import ContactRole, DeviceKind, GasType, PowerSupply
from cunan.gas.registry import (
    BusinessFilter,
    BusinessInput,
    ContactInput,
    DeviceFilter,
    DeviceInput,
    ModelInput,
)
from cunan.gas.registry_import import ImportKind

business_app = typer.Typer(help="商户 Businesses that use gas, and their contacts.")
model_app = typer.Typer(help="设备型号 Device models: offline period, service life, set points.")
device_app = typer.Typer(help="设备 Detectors, controllers, shut-off valves, fan links.")
console = Console()

#: Where ``business account`` takes the new account's password from (automation).
PASSWORD_ENV = "CUNAN_NEW_PASSWORD"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def mount(gas_app: typer.Typer) -> None:
    """Add the registry's commands to ``cunan gas``."""
    gas_app.add_typer(business_app, name="business")
    gas_app.add_typer(model_app, name="model")
    gas_app.add_typer(device_app, name="device")
    gas_app.command("import")(gas_import)


def _plain(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _json(value: Any) -> None:
    def convert(item: Any) -> Any:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {k: convert(v) for k, v in dataclasses.asdict(item).items()}
        if isinstance(item, list):
            return [convert(v) for v in item]
        if isinstance(item, dict):
            return {k: convert(v) for k, v in item.items()}
        if isinstance(item, date):
            return item.isoformat()
        return item

    _plain(json.dumps(convert(value), ensure_ascii=False, indent=2))


def _changes(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


# -- businesses --------------------------------------------------------------------------------


@business_app.command("list")
def business_list(
    name: Annotated[str | None, typer.Option(help="Part of the name.")] = None,
    licence: Annotated[str | None, typer.Option(help="Part of the licence number.")] = None,
    village: Annotated[int | None, typer.Option(help="Village id.")] = None,
    category: Annotated[str | None, typer.Option(help="Category (exact).")] = None,
    status: Annotated[str | None, typer.Option(help="active or closed.")] = None,
    offset: int = 0,
    limit: int = 50,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Businesses, filtered and paginated."""
    with opened_app(data_dir) as (_, svc):
        items, total = svc.gas_registry().list_businesses(
            BusinessFilter(name, licence, village, category, status), page(offset, limit)
        )
    if as_json:
        _json({"items": items, "total": total})
        return
    for b in items:
        _plain(
            f"{b.id}\t{b.licence_no}\t{b.name}\t{b.category or '-'}\t{b.status}\t"
            f"{b.devices} device(s)\t{b.address or '-'}"
        )
    _plain(f"{len(items)} of {total}")


@business_app.command("add")
def business_add(
    name: str,
    licence: Annotated[str, typer.Argument(help="Licence number / unified credit code.")],
    house: Annotated[int | None, typer.Option(help="House id on the house registry.")] = None,
    address: Annotated[str | None, typer.Option(help="Address outside the registry.")] = None,
    category: Annotated[str | None, typer.Option(help="中餐, 火锅, 烧烤 ...")] = None,
    village: Annotated[int | None, typer.Option(help="Village id (default: the first).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a business."""
    with opened_app(data_dir) as (_, svc):
        business_id = svc.gas_registry().create_business(
            BusinessInput(name, licence, village, house, address, category)
        )
    _plain(f"business {business_id}")


@business_app.command("show")
def business_show(
    business: Annotated[str, typer.Argument(help="Business id or licence number.")],
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """A business with its contacts."""
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        detail = registry.get_business(registry.business_id_of(business))
    if as_json:
        _json(detail)
        return
    _plain(f"{detail.id} {detail.name} ({detail.licence_no}) {detail.status}")
    _plain(f"address: {detail.address or '-'}  category: {detail.category or '-'}")
    _plain(f"devices: {detail.devices}")
    for c in detail.contacts:
        account = f" account {c.user_id}" if c.user_id is not None else ""
        _plain(f"  {c.role}: {c.name} {c.phone or ''}{account}")


@business_app.command("set")
def business_set(
    business: Annotated[str, typer.Argument(help="Business id or licence number.")],
    name: Annotated[str | None, typer.Option()] = None,
    licence: Annotated[str | None, typer.Option()] = None,
    house: Annotated[int | None, typer.Option(help="House id.")] = None,
    address: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="active or closed.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a business's fields (only those given)."""
    changes = _changes(
        name=name,
        licence_no=licence,
        house_id=house,
        address=address,
        category=category,
        status=status,
    )
    if not changes:
        fail("nothing to change: give at least one option")
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        detail = registry.update_business(registry.business_id_of(business), changes)
    _plain(f"business {detail.id}: {', '.join(sorted(changes))} changed")


@business_app.command("contact")
def business_contact(
    business: Annotated[str, typer.Argument(help="Business id or licence number.")],
    role: Annotated[ContactRole, typer.Argument(help="owner, safety_officer, maintainer_a/b.")],
    name: Annotated[str | None, typer.Argument(help="Name (omit with --remove).")] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    user: Annotated[int | None, typer.Option(help="The contact's account id.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the contact.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Set (or --remove) the business's owner, safety officer or maintainer A/B."""
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        business_id = registry.business_id_of(business)
        if remove:
            registry.remove_contact(business_id, role)
            _plain(f"business {business_id}: {role.value} removed")
            return
        if not name:
            fail("give the contact's name (or --remove)")
        registry.set_contact(business_id, role, ContactInput(name, phone, user))
    _plain(f"business {business_id}: {role.value} set")


@business_app.command("account")
def business_account(
    business: Annotated[str, typer.Argument(help="Business id or licence number.")],
    role: Annotated[ContactRole, typer.Argument(help="owner, safety_officer, maintainer_a/b.")],
    username: str,
    data_dir: DataDirOption = None,
) -> None:
    """A login for the contact (administrators): a business account for owners and safety
    officers, a maintainer account for maintainers. Password: $CUNAN_NEW_PASSWORD, else asked."""
    password = os.environ.get(PASSWORD_ENV) or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        user_id = registry.create_contact_account(
            registry.business_id_of(business), role, username, password
        )
    _plain(f"user {user_id}")


# -- models ------------------------------------------------------------------------------------


@model_app.command("list")
def model_list(
    kind: Annotated[DeviceKind | None, typer.Option()] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Device models."""
    with opened_app(data_dir) as (_, svc):
        items, total = svc.gas_registry().list_models(page(0, 200), kind)
    if as_json:
        _json({"items": items, "total": total})
        return
    for m in items:
        _plain(
            f"{m.id}\t{m.code}\t{m.kind}\t{m.power}\toffline after {m.offline_after_s} s\t"
            f"life {m.service_months or '-'} months\tset points {m.low_lel or '-'}/"
            f"{m.high_lel or '-'} %LEL"
        )


@model_app.command("add")
def model_add(
    code: str,
    kind: Annotated[DeviceKind, typer.Option(help="detector, controller, valve, fan.")],
    power: Annotated[PowerSupply, typer.Option()] = PowerSupply.MAINS,
    maker: Annotated[str | None, typer.Option()] = None,
    offline_after: Annotated[
        int | None, typer.Option(help="Seconds of silence = offline (default by power).")
    ] = None,
    service_months: Annotated[
        int | None, typer.Option(help="Service life (default: detectors 36, valves 120).")
    ] = None,
    low: Annotated[float | None, typer.Option(help="Low set point, %LEL.")] = None,
    high: Annotated[float | None, typer.Option(help="High set point, %LEL.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a device model."""
    with opened_app(data_dir) as (_, svc):
        model_id = svc.gas_registry().create_model(
            ModelInput(code, kind, power, maker, offline_after, service_months, low, high)
        )
    _plain(f"model {model_id}")


@model_app.command("set")
def model_set(
    model: int,
    offline_after: Annotated[int | None, typer.Option()] = None,
    service_months: Annotated[int | None, typer.Option()] = None,
    low: Annotated[float | None, typer.Option(help="Low set point, %LEL.")] = None,
    high: Annotated[float | None, typer.Option(help="High set point, %LEL.")] = None,
    maker: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a model's fields (only those given)."""
    changes = _changes(
        offline_after_s=offline_after,
        service_months=service_months,
        low_lel=low,
        high_lel=high,
        maker=maker,
    )
    if not changes:
        fail("nothing to change: give at least one option")
    with opened_app(data_dir) as (_, svc):
        svc.gas_registry().update_model(model, changes)
    _plain(f"model {model}: {', '.join(sorted(changes))} changed")


# -- devices -----------------------------------------------------------------------------------


@device_app.command("list")
def device_list(
    business: Annotated[str | None, typer.Option(help="Business id or licence number.")] = None,
    kind: Annotated[DeviceKind | None, typer.Option()] = None,
    due_before: Annotated[
        str | None, typer.Option(help="Replacement due before this day (YYYY-MM-DD).")
    ] = None,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed devices.")] = False,
    offset: int = 0,
    limit: int = 50,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Devices, filtered and paginated."""
    before = _day(due_before, "--due-before")
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        business_id = registry.business_id_of(business) if business else None
        items, total = registry.list_devices(
            DeviceFilter(business_id, kind.value if kind else None, before, removed),
            page(offset, limit),
        )
    if as_json:
        _json({"items": items, "total": total})
        return
    for d in items:
        gone = " removed" if d.removed_at is not None else ""
        _plain(
            f"{d.id}\t{d.serial}\t{d.kind}\tbusiness {d.business_id}\t{d.model_code or '-'}\t"
            f"replace by {d.replacement_due or '-'}\t{d.low_lel:g}/{d.high_lel:g} %LEL{gone}"
        )
    _plain(f"{len(items)} of {total}")


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {text!r} is not a date like 2026-03-01")


@device_app.command("add")
def device_add(
    serial: str,
    business: Annotated[str, typer.Option(help="Business id or licence number.")],
    kind: Annotated[DeviceKind, typer.Option()] = DeviceKind.DETECTOR,
    model: Annotated[int | None, typer.Option(help="Model id.")] = None,
    gas: Annotated[GasType | None, typer.Option(help="natural_gas or lpg.")] = None,
    location: Annotated[str | None, typer.Option()] = None,
    installed: Annotated[str | None, typer.Option(help="Install date YYYY-MM-DD.")] = None,
    due: Annotated[str | None, typer.Option(help="Replacement due (default: computed).")] = None,
    low: Annotated[float | None, typer.Option(help="Low set point, %LEL.")] = None,
    high: Annotated[float | None, typer.Option(help="High set point, %LEL.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a device of a business."""
    installed_on, due_on = _day(installed, "--installed"), _day(due, "--due")
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        device_id = registry.create_device(
            DeviceInput(
                registry.business_id_of(business),
                serial,
                kind,
                model,
                gas,
                location,
                installed_on,
                due_on,
                low,
                high,
            )
        )
    _plain(f"device {device_id}")


@device_app.command("show")
def device_show(
    device: Annotated[str, typer.Argument(help="Device id or serial.")],
    data_dir: DataDirOption = None,
) -> None:
    """A device (as JSON)."""
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        view = registry.get_device(registry.device_id_of(device))
    _json(view)


@device_app.command("set")
def device_set(
    device: Annotated[str, typer.Argument(help="Device id or serial.")],
    location: Annotated[str | None, typer.Option()] = None,
    model: Annotated[int | None, typer.Option(help="Model id.")] = None,
    installed: Annotated[str | None, typer.Option(help="Install date YYYY-MM-DD.")] = None,
    due: Annotated[str | None, typer.Option(help="Replacement due YYYY-MM-DD.")] = None,
    low: Annotated[float | None, typer.Option(help="Low set point, %LEL.")] = None,
    high: Annotated[float | None, typer.Option(help="High set point, %LEL.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a device's fields (only those given)."""
    changes = _changes(
        location=location,
        model_id=model,
        installed_on=_day(installed, "--installed"),
        replacement_due=_day(due, "--due"),
        low_lel=low,
        high_lel=high,
    )
    if not changes:
        fail("nothing to change: give at least one option")
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        view = registry.update_device(registry.device_id_of(device), changes)
    _plain(f"device {view.id}: {', '.join(sorted(changes))} changed")


@device_app.command("remove")
def device_remove(
    device: Annotated[str, typer.Argument(help="Device id or serial.")],
    data_dir: DataDirOption = None,
) -> None:
    """Take a device out of service (kept with its history; its credential stops)."""
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        device_id = registry.device_id_of(device)
        registry.remove_device(device_id)
    _plain(f"device {device_id} removed")


@device_app.command("credential")
def device_credential(
    device: Annotated[str, typer.Argument(help="Device id or serial.")],
    data_dir: DataDirOption = None,
) -> None:
    """Issue (or rotate) the device's credential: printed once, only its hash is kept."""
    with opened_app(data_dir) as (_, svc):
        registry = svc.gas_registry()
        secret = registry.issue_credential(registry.device_id_of(device))
    _plain(secret)


# -- import ------------------------------------------------------------------------------------


def gas_import(
    kind: Annotated[ImportKind, typer.Argument(help="businesses or devices.")],
    file: Annotated[Path, typer.Argument(help=".xlsx or .csv (UTF-8 or GBK).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; write nothing.")] = (
        False
    ),
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the problem list to this CSV file.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Import businesses or devices; exit 0 all good, 1 rows failed, 2 bad file.

    Every problem is listed as row, column, reason; rows already registered (same licence
    number / serial) are left unchanged. Import businesses before their devices.
    """
    from cunan.gas.registry_import import RowStatus, import_gas_file
    from cunan.registry.cli import _import_progress
    from cunan.registry.importer import write_problems
    from cunan.registry.roster import RosterFileError
    from cunan.security.spreadsheet import OutputPathError, check_output_file

    if report is not None:
        try:
            check_output_file(report, suffixes=(".csv",))
        except OutputPathError as exc:
            fail(str(exc))
    with opened_app(data_dir) as (_, svc), _import_progress() as (advance, set_total):
        state = {"done": 0}

        def progress(done: int, total: int) -> None:
            if state["done"] == 0:
                set_total(total)
            advance(done - state["done"])
            state["done"] = done

        try:
            result = import_gas_file(
                svc.gas_registry(), file, kind, dry_run=dry_run, progress=progress
            )
        except RosterFileError as exc:
            fail(str(exc))
    for p in result.problems:
        _plain(f"row {p.row}, {p.column}: {p.reason}")
    if report is not None:
        write_problems(result.problems, report)
    if result.ignored_headers:
        _plain("ignored columns: " + ", ".join(result.ignored_headers))
    done = result.count(RowStatus.VALID if dry_run else RowStatus.IMPORTED)
    _plain(
        f"{'dry run: ' if dry_run else ''}{done} {'valid' if dry_run else 'imported'}, "
        f"{result.count(RowStatus.UNCHANGED)} unchanged, {result.count(RowStatus.FAILED)} failed"
    )
    raise typer.Exit(result.exit_code)
