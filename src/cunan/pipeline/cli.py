"""Commands: ``cunan watch``, ``cunan worker`` and ``cunan cameras ...``."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cunan.app_services import AppServices, CameraRequest
from cunan.capture.reader import CAPTURE_FAILED
from cunan.capture.sources import SourceError
from cunan.cliutil import DataDirOption, err_console, fail, opened_app
from cunan.faces.models import ModelNotAvailableError
from cunan.pipeline.cameras import CameraSettings, NoticeNotPostedError, parse_zone
from cunan.pipeline.runner import DecidedSighting
from cunan.pipeline.store import CameraNotFoundError
from cunan.registry.errors import RegistryError

if TYPE_CHECKING:
    from cunan.app import CunanApp

logger = logging.getLogger(__name__)

console = Console()

cameras_app = typer.Typer(help="Register and manage cameras.", no_args_is_help=True)


@contextmanager
def _app(data_dir: Path | None) -> Iterator[tuple[CunanApp, AppServices]]:
    """The installation and its services as the command line's account (cunan.cliutil)."""
    with opened_app(
        data_dir,
        CameraNotFoundError,
        NoticeNotPostedError,
        ModelNotAvailableError,
        SourceError,
        ValueError,
    ) as opened:
        yield opened


# -- watch ------------------------------------------------------------------------------------


def sighting_json(sighting: DecidedSighting, person_name: str | None) -> dict[str, Any]:
    """The ``--json`` line of one sighting."""
    d = sighting.decision
    return {
        "sighting_id": sighting.sighting_id,
        "camera": sighting.camera,
        "start": sighting.start.isoformat(),
        "end": sighting.end.isoformat(),
        "decision": d.verdict,
        "person_id": sighting.person_id,
        "person_name": person_name,
        "distance": None if d.distance is None else round(d.distance, 4),
        "faces_used": sighting.faces_used,
    }


def watch_command(
    source: Annotated[str, typer.Argument(help="Camera name, stream URL, video file or device.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line per sighting.")
    ] = False,
    data_dir: DataDirOption = None,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime/--fast",
            help="Files: play at their frame rate like a camera, or decode as fast as possible.",
        ),
    ] = True,
    notice_posted: Annotated[
        bool,
        typer.Option(
            "--notice-posted",
            help="Confirm the public notice is posted where this (unregistered) source films.",
        ),
    ] = False,
    fps_cap: Annotated[
        float | None,
        typer.Option(help="Frames analysed per second (default: the camera's setting, 8)."),
    ] = None,
    transport: Annotated[str, typer.Option(help="RTSP transport: tcp or udp.")] = "tcp",
) -> None:
    """Watch one source in the foreground: print and store each decided sighting."""
    from cunan.pipeline.build import build_runner

    with _app(data_dir) as (app, services):
        registry, settings = app.registry, app.settings
        # Registered cameras run with their own settings; an ad-hoc source only with the
        # public notice confirmed (the rule is the services', the flag the user's).
        camera, target = services.watch_target(
            source,
            notice_posted=notice_posted,
            realtime=realtime,
            fps_cap=fps_cap,
            transport=transport,
        )
        names: dict[int, str | None] = {}

        def person_name(person_id: int | None) -> str | None:
            if person_id is None:
                return None
            if person_id not in names:
                try:
                    names[person_id] = registry.service.get_person(person_id).name
                except RegistryError:
                    names[person_id] = None
            return names[person_id]

        def show(sighting: DecidedSighting) -> None:
            name = person_name(sighting.person_id)
            if json_output:
                line = json.dumps(sighting_json(sighting, name), ensure_ascii=False)
                print(line, flush=True)
                return
            d = sighting.decision
            who = f"{name or '?'} (person {sighting.person_id})" if sighting.person_id else ""
            dist = f" distance {d.distance:.3f}" if d.distance is not None else ""
            console.print(
                f"{sighting.start:%Y-%m-%d %H:%M:%S}-{sighting.end:%H:%M:%S} {sighting.camera} "
                f"{d.verdict} {who}{dist} faces {sighting.faces_used}/{d.faces_total}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        runner = build_runner(registry, settings, target, camera=camera, on_sighting=show)
        stop = threading.Event()
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_term)
        # The capture's final failure is this command's one error line (below): the reader's
        # log line saying the same would print it twice.
        reader_log = logging.getLogger("cunan.capture.reader")
        reader_log.addFilter(_without_capture_failed)
        # In the foreground the capture's INFO lines are the user's feedback: connected, and
        # the reminder every few minutes that a failing camera is still being retried.
        level = reader_log.level
        if reader_log.getEffectiveLevel() > logging.INFO:
            reader_log.setLevel(logging.INFO)
        try:
            runner.run(stop)
        except KeyboardInterrupt:
            pass  # the runner stored the open tracks on its way out
        finally:
            signal.signal(signal.SIGTERM, previous)
            reader_log.removeFilter(_without_capture_failed)
            reader_log.setLevel(level)
        health = runner.reader.health()
        if health.state.value == "failed" and health.last_error:
            fail(health.last_error)


def _without_capture_failed(record: logging.LogRecord) -> bool:
    return record.msg is not CAPTURE_FAILED


# -- worker -----------------------------------------------------------------------------------


def worker_command(
    data_dir: DataDirOption = None,
    lease_s: Annotated[
        float,
        typer.Option("--lease-s", help="Lease period: a dead worker's cameras move after it."),
    ] = 30.0,
    max_cameras: Annotated[
        int | None, typer.Option(help="At most this many cameras on this worker.")
    ] = None,
) -> None:
    """Run the enabled cameras (one process each), sharing them with other workers by lease."""
    from cunan.app import BackgroundOptions

    with _app(data_dir) as (app, _services):
        # The handler only records the signal: setting the event from a handler can deadlock
        # when the main thread is interrupted while it holds the event's internal lock.
        received: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            received.append(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # The installation's background work, cameras only: case grouping and the daily
        # duties run in 'cunan serve'.
        app.start(
            BackgroundOptions(
                cameras=True, cases=False, duties=False, lease_s=lease_s, max_cameras=max_cameras
            )
        )
        try:
            while not received and app.healthy():
                time.sleep(0.5)  # a signal interrupts the sleep; the handler runs at once
        finally:
            app.stop()


# -- cameras ----------------------------------------------------------------------------------


@cameras_app.command("add")
def cameras_add(
    name: Annotated[str, typer.Argument(help="Camera name, e.g. 'east-gate'.")],
    url: Annotated[str, typer.Argument(help="Stream URL (rtsp://, http://), file or device.")],
    area: Annotated[int | None, typer.Option(help="Grid area id.")] = None,
    house: Annotated[int | None, typer.Option(help="House id.")] = None,
    notice_posted: Annotated[
        bool, typer.Option("--notice-posted", help="The public notice sign is posted.")
    ] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Register it disabled.")] = False,
    zone: Annotated[
        str | None,
        typer.Option(
            help='Detection zone JSON: {"rectangle":[l,t,r,b]} or {"polygon":[[x,y],...]}.'
        ),
    ] = None,
    settings: Annotated[
        str | None, typer.Option("--settings", help='Settings JSON, e.g. {"fps_cap": 6}.')
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a camera."""
    with _app(data_dir) as (_, services):
        camera = services.add_camera(
            CameraRequest(
                name=name,
                url=url,
                public_notice_posted=notice_posted,
                enabled=not disabled,
                house_id=house,
                zone_json=zone,
                area_id=area,
                settings=CameraSettings.from_json(settings),
            )
        )
        print(camera.id)
        if not notice_posted:
            err_console.print(
                "note: recognition will not start on this camera until the public notice is "
                f"recorded: cunan cameras enable {name} --notice-posted",
                markup=False,
            )


@cameras_app.command("list")
def cameras_list(
    json_output: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List the cameras (passwords in URLs are hidden)."""
    with _app(data_dir) as (_, services):
        cameras = services.list_cameras()
        if json_output:
            rows = [
                {
                    "id": c.id,
                    "name": c.name,
                    "url": c.display_url,
                    "enabled": c.enabled,
                    "public_notice_posted": c.public_notice_posted,
                    "area_id": c.area_id,
                    "house_id": c.house_id,
                    "zone": json.loads(c.zone_json) if c.zone_json else None,
                    "settings": json.loads(c.settings.to_json()),
                }
                for c in cameras
            ]
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        table = Table("id", "name", "url", "enabled", "notice posted", "fps cap")
        for c in cameras:
            table.add_row(
                str(c.id),
                c.name,
                c.display_url,
                "yes" if c.enabled else "no",
                "yes" if c.public_notice_posted else "NO",
                f"{c.settings.fps_cap:g}",
            )
        console.print(table)


@cameras_app.command("enable")
def cameras_enable(
    name: Annotated[str, typer.Argument(help="Camera name or id.")],
    notice_posted: Annotated[
        bool, typer.Option("--notice-posted", help="Record that the public notice is posted.")
    ] = False,
    zone: Annotated[str | None, typer.Option(help="New detection zone JSON.")] = None,
    settings: Annotated[str | None, typer.Option("--settings", help="New settings JSON.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Enable a camera (and record the public notice, zone or settings)."""
    with _app(data_dir) as (_, services):
        if zone is not None:
            parse_zone(zone)
        camera = services.update_camera(
            name,
            enabled=True,
            public_notice_posted=True if notice_posted else None,
            zone_json=zone,
            settings=CameraSettings.from_json(settings) if settings is not None else None,
        )
        if not camera.public_notice_posted:
            err_console.print(
                f"note: camera {camera.name} is enabled but will not recognise until the "
                "public notice is recorded (--notice-posted)",
                markup=False,
            )


@cameras_app.command("disable")
def cameras_disable(
    name: Annotated[str, typer.Argument(help="Camera name or id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Disable a camera (workers stop it within a lease round)."""
    with _app(data_dir) as (_, services):
        services.update_camera(name, enabled=False, public_notice_posted=None, zone_json=None)


@cameras_app.command("remove")
def cameras_remove(
    name: Annotated[str, typer.Argument(help="Camera name or id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Remove a camera (its sightings are kept, with the camera's name)."""
    with _app(data_dir) as (_, services):
        camera = services.get_camera(name)
        if not yes and not typer.confirm(f"Remove camera {camera.name}?"):
            raise typer.Exit(1)
        services.remove_camera(camera.id)
