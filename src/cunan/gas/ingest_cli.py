"""``cunan gas`` ingestion commands: simulate, mosquitto-config, import-history, ingest, purge."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cunan.authz import Permission, require
from cunan.cliutil import DataDirOption, fail, opened_app

console = Console()

ScenarioOption = Annotated[
    str,
    typer.Option(
        help="normal, leak, flapping, silent, malformed, duplicates or out-of-order.",
    ),
]


def register(gas_app: typer.Typer) -> None:
    """Add the ingestion commands to the ``cunan gas`` group."""
    gas_app.command("simulate")(simulate_command)
    gas_app.command("mosquitto-config")(mosquitto_config_command)
    gas_app.command("import-history")(import_history_command)
    gas_app.command("ingest")(ingest_command)
    gas_app.command("purge")(purge_command)


def simulate_command(
    serial: Annotated[list[str], typer.Argument(help="Device serial(s) to publish as.")],
    scenario: ScenarioOption = "normal",
    count: Annotated[int, typer.Option(min=1, help="Readings per device.")] = 60,
    period_s: Annotated[float, typer.Option(help="Device seconds between readings.")] = 1.0,
    rate: Annotated[
        float, typer.Option(help="Messages per second sent (0: as fast as possible).")
    ] = 10.0,
    host: str = "127.0.0.1",
    port: int = 1883,
    username: Annotated[
        str | None, typer.Option(help="Broker user (a device: its serial).")
    ] = None,
    password: Annotated[str | None, typer.Option(envvar="CUNAN_SIM_PASSWORD")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA certificate: connect with TLS.")] = None,
    push_url: Annotated[
        str | None,
        typer.Option(help="Send as CTWing-style HTTP pushes to this URL instead of MQTT."),
    ] = None,
    push_token: Annotated[str | None, typer.Option(envvar="CUNAN_SIM_PUSH_TOKEN")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ground truth as JSON.")
    ] = False,
) -> None:
    """Publish a scenario as real devices would (MQTT QoS 1, or HTTP push), for
    demonstrations and tests; prints what was sent and acknowledged."""
    from cunan.gas.simulator import SCENARIOS, GroundTruth, MqttDevice, push_burst
    from cunan.gas.simulator import scenario as plan

    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    start = datetime.now(UTC)
    truth = GroundTruth()
    if push_url is not None:
        if scenario == "malformed":
            fail("the malformed scenario is MQTT only")
        messages = [m for s in serial for m in plan(scenario, s, start, count, period_s)]
        truth = push_burst(push_url, messages, token=push_token)
    else:
        device = MqttDevice(host, port, username=username, password=password, ca_file=ca_file)
        try:
            if not device.wait_connected():
                fail(f"broker {host}:{port} refused or did not answer ({device.refused})")
            for s in serial:
                items = plan(scenario, s, start, count, period_s)
                if scenario == "malformed":
                    for topic, body in items:
                        device.send_raw(topic, body)
                else:
                    device.send_all(items, rate=rate or None)
            device.wait_acknowledged(60)
        finally:
            device.close()
        truth = device.truth
    summary = {
        "scenario": scenario,
        "devices": len(serial),
        "sent": len(truth.sent),
        "unique": len(truth.unique()),
        "resent": truth.resent,
        "malformed": truth.malformed,
        "acknowledged": len(truth.acknowledged),
    }
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(
            f"{scenario}: {summary['sent']} sent ({summary['unique']} unique, "
            f"{summary['resent']} re-sent), {summary['malformed']} malformed, "
            f"{summary['acknowledged']} acknowledged",
            markup=False,
        )


def mosquitto_config_command(
    out: Annotated[Path, typer.Argument(help="Directory for passwd, acl and mosquitto.conf.")],
    port: int = 1883,
    persistence_dir: Annotated[Path | None, typer.Option(help="Broker persistence dir.")] = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_ca: Path | None = None,
    require_client_cert: bool = False,
    run_as: Annotated[
        str | None, typer.Option(help="The account Mosquitto runs as (reads passwd).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write Mosquitto's password file and ACL from the devices' credentials: each device may
    publish only under cunan/gas/{its serial}/#; CunAn's account (gas.ingest mqtt_username
    and mqtt_password) reads everything."""
    from cunan.gas.mosquitto import write_broker_files

    with opened_app(data_dir) as (app, services):
        require(services.principal, Permission.EDIT_GAS)
        gas = app.settings.gas.ingest
        if not gas.mqtt_username or not gas.mqtt_password:
            fail("set [gas.ingest] mqtt_username and mqtt_password first (CunAn's own account)")
        files = write_broker_files(
            app.registry.database,
            out,
            ingest_username=gas.mqtt_username,
            ingest_password=gas.mqtt_password,
            port=port,
            persistence_dir=persistence_dir,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            require_client_cert=require_client_cert,
            run_as=run_as,
        )
    console.print(
        f"wrote {files.config_file}, {files.password_file} ({files.devices} devices) and "
        f"{files.acl_file}; reload Mosquitto (kill -HUP) to apply",
        markup=False,
    )


def import_history_command(
    path: Annotated[Path, typer.Argument(help="CSV: serial,time,lel (设备编号,时间,浓度).")],
    data_dir: DataDirOption = None,
) -> None:
    """Import past readings from CSV (UTF-8 or GB18030); rows already stored are skipped.
    Exit 1 when some rows could not be imported (listed with their row number)."""
    with opened_app(data_dir) as (app, services):
        require(services.principal, Permission.EDIT_GAS)

        def progress(done: int, total: int) -> None:
            console.print(f"{done}/{total}", markup=False, end="\r")

        report = app.gas_ingest.import_history_csv(
            path, actor=services.principal.actor, progress=progress
        )
    for problem in report.problems:
        console.print(f"row {problem.row} {problem.column}: {problem.reason}", markup=False)
    console.print(
        f"{report.rows} rows: {report.stored} stored, {report.duplicates} already there, "
        f"{len(report.problems)} problems",
        markup=False,
    )
    if report.problems:
        raise typer.Exit(1)


def ingest_command(
    data_dir: DataDirOption = None,
    seconds: Annotated[float, typer.Option(help="Stop after this long (0: run until ^C).")] = 0,
) -> None:
    """Run MQTT ingestion and the push inbox on their own (``cunan serve`` runs them too)."""
    from cunan.gas.mqtt_ingest import MqttIngestor
    from cunan.gas.push import PushProcessor

    with opened_app(data_dir) as (app, _):
        ingestor = MqttIngestor(app.gas_ingest, app.settings.gas.ingest)
        stop = threading.Event()
        pusher = threading.Thread(target=PushProcessor(app.gas_push).run, args=(stop,))
        ingestor.start()
        pusher.start()
        try:
            deadline = time.monotonic() + seconds if seconds else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            ingestor.stop()
            pusher.join()
        counts = app.gas_ingest.counters.snapshot()
    console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing received")


def purge_command(
    data_dir: DataDirOption = None,
    dry_run: Annotated[bool, typer.Option(help="Count only.")] = False,
) -> None:
    """Delete raw gas messages older than gas.ingest raw_days and per-minute readings older
    than minutes_days (the daily duty does the same)."""
    with opened_app(data_dir) as (app, services):
        require(services.principal, Permission.EDIT_GAS)
        totals = app.gas_ingest.purge(actor=services.principal.actor, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} {totals['messages']} raw messages, {totals['minutes']} minutes, "
        f"{totals['push_bodies']} push bodies",
        markup=False,
    )
