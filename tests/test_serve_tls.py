"""``cunan serve`` over TLS, behind a proxy and on the LAN: Secure cookies over HTTPS, an
``X-Forwarded-Proto`` believed only from ``web.trusted_proxies``, and a warning when
passwords would cross the network in clear."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.test_serve_api import PASSWORD

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: Hang guard only: no timing is asserted.
DEADLINE_S = 240.0
ADDRESS = re.compile(r"\(serving\) (https?://[^/\s]+)/")


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        CUNAN_DATA_DIR=str(tmp_path / "data"),
        CUNAN_ADMIN_PASSWORD=PASSWORD,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
        **extra,
    )
    env.pop("CUNAN_DATABASE_URL", None)
    return env


@contextmanager
def serving(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, Path]]:
    """``cunan serve ARGS --no-cameras`` until it prints its address: (address, stderr file)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cunan", "serve", "--port", "0", "--no-cameras", *args],
            env=_environment(tmp_path, **env),
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        try:
            end = time.monotonic() + DEADLINE_S
            found = None
            while found is None and proc.poll() is None and time.monotonic() < end:
                time.sleep(0.2)
                found = ADDRESS.search(out_path.read_text())
            assert found is not None, err_path.read_text()[-3000:]
            yield found.group(1), err_path
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _session_cookie(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    return next(c for c in cookies if c.startswith("cunan_session="))


def _login(client: httpx.Client, **headers: str) -> str:
    response = client.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": PASSWORD},
        headers={"origin": str(client.base_url).rstrip("/"), **headers},
    )
    return _session_cookie(response)


def test_https_with_a_certificate_gives_secure_cookies(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    with serving(
        tmp_path, "--host", "127.0.0.1", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)
    ) as (address, err):
        assert address.startswith("https://")
        port = address.rsplit(":", 1)[1]
        with httpx.Client(
            base_url=f"https://localhost:{port}",
            verify=ssl.create_default_context(cafile=str(cert)),
        ) as client:
            assert "; secure" in _login(client).lower()
        assert "plain HTTP" not in err.read_text()


def test_forwarded_proto_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    with serving(tmp_path / "a", "--host", "127.0.0.1") as (address, err):
        with httpx.Client(base_url=address) as client:
            # This PC is not a trusted proxy by default: the header is someone's claim.
            assert "secure" not in _login(client, **{"x-forwarded-proto": "https"}).lower()
        assert "plain HTTP" not in err.read_text()  # loopback: nothing crosses the LAN
    with (
        serving(
            tmp_path / "b", "--host", "127.0.0.1", CUNAN_WEB__TRUSTED_PROXIES='["127.0.0.1"]'
        ) as (address, _),
        httpx.Client(base_url=address) as client,
    ):
        assert "; secure" in _login(client, **{"x-forwarded-proto": "https"}).lower()
        assert "secure" not in _login(client).lower()


def test_plain_http_on_the_lan_warns(tmp_path: Path) -> None:
    with serving(tmp_path, "--host", "0.0.0.0") as (_, err):
        lines = [line for line in err.read_text().splitlines() if "plain HTTP" in line]
        assert len(lines) == 1 and "passwords cross the LAN in clear" in lines[0]


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    cert, _ = _certificate(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "cunan", "serve", "--ssl-certfile", str(cert)],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--ssl-keyfile" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cunan",
            "serve",
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(cert),
        ],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "cannot load the TLS certificate" in done.stderr
