"""``cunan serve``: the web application and API, cameras, case grouping and duties in one process.

- the HTTP API (and, later, the pages) on ``--host``/``--port`` (``web.host``/``web.port``);
- the camera worker (``cunan worker``: leases, one spawned process per camera);
- the case consumer (cases from the ``sighting.decided`` events in the outbox); known
  sightings close the person's "please confirm" tasks at once;
- the daily duties (retention purge, not-seen reconciliation, face-data counter) on the
  scheduler, at ``duties.daily_at`` in ``duties.timezone``.

On a data dir that does not exist yet, ``serve`` creates it (database, key) and, with no
administrator yet, prints a one-time set-up link (or takes ``CUNAN_ADMIN_PASSWORD``).
SIGINT or SIGTERM stops everything cleanly: requests in flight finish, camera processes
store their open tracks and exit, leases are released, and the exit code is 0.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import signal
import socket
import ssl
import threading
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from cunan.cliutil import OPEN_ERRORS, DataDirOption, user_errors
from cunan.config import Settings, load_settings
from cunan.registry.datadir import KEY_FILENAME, resolve_data_dir

logger = logging.getLogger(__name__)

#: Environment variable that names the first administrator's password (automation).
ADMIN_PASSWORD_ENV = "CUNAN_ADMIN_PASSWORD"
#: How often the watchdog checks that the background threads still run.
WATCHDOG_S = 0.5


def _ensure_initialised(data_dir: Path, settings: Settings) -> None:
    """Create database and key on first run (the administrator is made by the set-up link)."""
    from cunan.registry.datadir import initialise, key_file_path
    from cunan.storage.database import SQLITE_FILENAME

    if key_file_path(data_dir, settings).exists() or (data_dir / SQLITE_FILENAME).exists():
        return
    registry = initialise(
        data_dir, settings, admin_username=None, admin_password=None, village_name="本村"
    )
    registry.close()
    typer.echo(f"已创建数据目录 (created data dir) {data_dir}")
    typer.echo(f"请备份密钥文件 (back up the key file): {data_dir / KEY_FILENAME}")


def serve_command(
    data_dir: DataDirOption = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: web.host, 0.0.0.0).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: web.port, 8080; 0 picks a free one).")
    ] = None,
    lease_s: Annotated[
        float,
        typer.Option("--lease-s", help="Camera lease period (see 'cunan worker')."),
    ] = 30.0,
    max_cameras: Annotated[
        int | None, typer.Option(help="At most this many cameras on this host.")
    ] = None,
    cameras: Annotated[
        bool, typer.Option(help="Run the cameras of this installation here.")
    ] = True,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            "--ssl-certfile",
            help="Serve HTTPS with this certificate (PEM, the chain after it); with --ssl-keyfile.",
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option("--ssl-keyfile", help="The certificate's private key (PEM)."),
    ] = None,
) -> None:
    """Run the village installation: web API, cameras, case grouping and the daily duties.

    Prints the address (and, on first run, the set-up link). Stop it with Ctrl-C or SIGTERM.
    """
    from cunan.api.app import create_api, prepare_routes
    from cunan.app import BackgroundOptions, CunanApp
    from cunan.web.render import prepare_templates

    with user_errors(ValueError):
        tls = _check_tls(ssl_certfile, ssl_keyfile)
    with user_errors(*OPEN_ERRORS):
        settings = load_settings()
        target = resolve_data_dir(data_dir, settings)
        _ensure_initialised(target, settings)
        core = CunanApp.open(settings, target)
    web = settings.web
    bind_host = host or web.host
    bind_port = web.port if port is None else port
    failed = False
    try:
        auth = core.auth
        setup_token: str | None = None
        if auth.needs_setup():
            password = os.environ.get(ADMIN_PASSWORD_ENV)
            if password:
                with user_errors(*OPEN_ERRORS):
                    auth.setup_admin(
                        "admin", password, village_id=core.registry.service.default_village_id()
                    )
                typer.echo(
                    "已创建管理员 admin (administrator 'admin' created from the environment)"
                )
            else:
                setup_token = secrets.token_urlsafe(24)
        api = create_api(core, auth_service=auth, setup_token=setup_token)
        prepare_routes(api)
        prepare_templates()
        config = uvicorn.Config(
            api,
            host=bind_host,
            port=bind_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Plain asyncio and h11: village PCs may run Windows, no compiled extras needed.
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=10,
            # X-Forwarded-* are believed only from web.trusted_proxies (cunan.api.app);
            # uvicorn's own default would believe any process on this PC.
            proxy_headers=False,
            ssl_certfile=str(ssl_certfile) if tls else None,
            ssl_keyfile=str(ssl_keyfile) if tls else None,
        )
        scheme = "https" if tls else "http"
        if not tls and not _is_loopback(bind_host):
            typer.echo(PLAIN_HTTP_WARNING.format(host=bind_host), err=True)
        server = _Server(config, stopping=api.state.stopping)
        core.start(BackgroundOptions(cameras=cameras, lease_s=lease_s, max_cameras=max_cameras))

        def announce() -> None:
            server.started_event.wait()
            if server.should_exit:
                return
            address = server.address()
            typer.echo(f"CunAn 村安 正在运行 (serving) {scheme}://{address}/  (API: /api/v1)")
            if setup_token is not None:
                typer.echo(
                    f"首次使用，请打开设置链接创建管理员 (first run, set up the administrator): "
                    f"{scheme}://{address}/setup?token={setup_token}"
                )

        def watchdog() -> None:
            nonlocal failed
            while not server.should_exit:
                if not core.healthy():
                    logger.error("serve: a background component stopped unexpectedly; stopping")
                    failed = True
                    server.stopping.set()
                    server.should_exit = True
                    return
                server.exit_event.wait(WATCHDOG_S)

        threading.Thread(target=announce, name="cunan-announce", daemon=True).start()
        threading.Thread(target=watchdog, name="cunan-watchdog", daemon=True).start()
        server.run()
        if server.received:
            logger.info("serve: %s received, stopping", signal.Signals(server.received[0]).name)
        if not server.started:
            failed = True
            typer.echo(f"error: cannot listen on {bind_host}:{bind_port}", err=True)
    finally:
        core.close()
        logger.info("serve: stopped")
    if failed:
        raise typer.Exit(1)


#: Printed at start when passwords would cross the network in clear.
PLAIN_HTTP_WARNING = (
    "警告: 未加密的 HTTP，密码会以明文经过局域网 (warning: plain HTTP on {host}: passwords "
    "cross the LAN in clear; use --ssl-certfile/--ssl-keyfile or a TLS reverse proxy, see "
    "docs/web.md)"
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_tls(certfile: Path | None, keyfile: Path | None) -> bool:
    """Whether to serve HTTPS; refuses half a configuration or files that do not load, now
    rather than as a traceback once the server starts."""
    if certfile is None and keyfile is None:
        return False
    if certfile is None or keyfile is None:
        raise ValueError("--ssl-certfile and --ssl-keyfile go together (give both)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as exc:
        raise ValueError(f"TLS file not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"cannot load the TLS certificate {certfile.name} with key {keyfile.name} "
            f"({getattr(exc, 'reason', None) or exc.strerror or type(exc).__name__})"
        ) from None
    return True


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT/SIGTERM without re-raising the signal after its
    graceful shutdown (uvicorn does, which would turn a clean stop into exit code -15)."""

    def __init__(self, config: uvicorn.Config, *, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping
        self.received: list[int] = []
        self.started_event = threading.Event()
        self.exit_event = threading.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            # Only flags: the handler runs between bytecodes of the main thread.
            self.received.append(signum)
            self.should_exit = True
            self.stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.exit_event.set()
            self.started_event.set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.started_event.set()

    def address(self) -> str:
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                return f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        return f"{self.config.host}:{self.config.port}"
