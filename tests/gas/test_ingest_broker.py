"""Our own Mosquitto processes: per-device credentials and ACL, TLS, a restart mid-stream."""

from __future__ import annotations

import getpass
import ipaddress
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cunan.audit.log import AuditLog
from cunan.authz import local_principal
from cunan.gas.domain import DeviceMessage, MessageKind
from cunan.gas.ingest import GasIngestService
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.mosquitto import write_broker_files
from cunan.gas.mqtt_ingest import MqttIngestor
from cunan.gas.registry import GasRegistry
from cunan.gas.simulator import MqttDevice, normal
from cunan.storage.database import Database
from tests.gas.ingest_fixtures import (
    OwnBroker,
    add_devices,
    own_broker_factory,
    spare_port,
    stored_count,
    stored_keys,
    wait_for,
)
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url", "own_broker_factory"]

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
INGEST_USER = "cunan-ingest"
INGEST_PASSWORD = "ingest-secret-for-tests"

BrokerFactory = Callable[[Path, int], OwnBroker]


def _ingest_settings(port: int, **kw: object) -> GasIngestSettings:
    return GasIngestSettings(
        mqtt_port=port,
        mqtt_username=INGEST_USER,
        mqtt_password=INGEST_PASSWORD,
        mqtt_client_id="cunan-gas-ingest-test",
        batch_wait_ms=20,
        **kw,  # type: ignore[arg-type]
    )


def _issue(database: Database, audit: AuditLog, serial: str) -> str:
    """A device credential, issued the way the registry issues it."""
    registry = GasRegistry(database, audit, local_principal("tests"))
    return registry.issue_credential(registry.device_id_of(serial))


def test_each_device_publishes_only_as_itself(
    database: Database, tmp_path: Path, own_broker_factory: BrokerFactory
) -> None:
    a, b = add_devices(database, 2)
    audit = AuditLog(database)
    secret_a, secret_b = _issue(database, audit, a), _issue(database, audit, b)
    port = spare_port()
    files = write_broker_files(
        database,
        tmp_path / "broker",
        ingest_username=INGEST_USER,
        ingest_password=INGEST_PASSWORD,
        port=port,
        run_as=getpass.getuser(),
    )
    assert files.devices == 2
    assert oct(files.password_file.stat().st_mode & 0o777) == "0o600"
    assert secret_a not in files.password_file.read_text()
    broker = own_broker_factory(files.config_file, port)
    broker.start()
    service = GasIngestService(database)
    ingestor = MqttIngestor(service, _ingest_settings(port))
    ingestor.start()
    device_a = MqttDevice("127.0.0.1", port, username=a, password=secret_a)
    try:
        assert ingestor.wait_connected(10) and device_a.wait_connected()
        own = normal(a, T0, 5)
        device_a.send_all(own)
        # Device A claims to be device B: the broker refuses it (MQTT 5: "not authorized").
        forged = [
            DeviceMessage(b, f"forged{n}", MessageKind.READING, T0, T0, lel=90.0) for n in range(3)
        ]
        device_a.send_all(forged)
        assert device_a.wait_acknowledged(10)
        wait_for(lambda: stored_count(database, [a]) == 5, 20, "device A's own messages")
        # B with its own credential does get through (after the forgeries: none of them is).
        device_b = MqttDevice("127.0.0.1", port, username=b, password=secret_b)
        assert device_b.wait_connected()
        device_b.send_all(normal(b, T0, 2))
        assert device_b.wait_acknowledged(10)
        device_b.close()
        wait_for(lambda: stored_count(database, [b]) == 2, 20, "device B's messages")
    finally:
        device_a.close()
        ingestor.stop()
    assert device_a.truth.acknowledged == {(a, m.message_id) for m in own}
    assert not any(m.startswith("forged") for _, m in stored_keys(database, [a, b]))
    # A wrong password and no password are both refused.
    for username, password in ((a, secret_b), (None, None)):
        stranger = MqttDevice("127.0.0.1", port, username=username, password=password)
        try:
            assert not stranger.wait_connected()
            assert stranger.refused is not None
        finally:
            stranger.close()


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a server certificate it signed for 127.0.0.1 / localhost."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CunAn test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        tmp_path / "ca.pem",
        tmp_path / "server.pem",
        tmp_path / "key.pem",
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def test_ingestion_over_tls(
    database: Database, tmp_path: Path, own_broker_factory: BrokerFactory
) -> None:
    (serial,) = add_devices(database, 1)
    secret = _issue(database, AuditLog(database), serial)
    ca_file, cert_file, key_file = _tls_files(tmp_path)
    port = spare_port()
    files = write_broker_files(
        database,
        tmp_path / "broker",
        ingest_username=INGEST_USER,
        ingest_password=INGEST_PASSWORD,
        port=port,
        run_as=getpass.getuser(),
        tls_cert=cert_file,
        tls_key=key_file,
    )
    own_broker_factory(files.config_file, port).start()
    service = GasIngestService(database)
    ingestor = MqttIngestor(service, _ingest_settings(port, mqtt_tls=True, mqtt_ca_file=ca_file))
    ingestor.start()
    device = MqttDevice("127.0.0.1", port, username=serial, password=secret, ca_file=ca_file)
    try:
        assert ingestor.wait_connected(10) and device.wait_connected()
        device.send_all(normal(serial, T0, 5))
        assert device.wait_acknowledged(10)
        wait_for(lambda: stored_count(database, [serial]) == 5, 20, "stored over TLS")
    finally:
        device.close()
        ingestor.stop()


def test_a_broker_restart_mid_stream_loses_nothing_acknowledged(
    database: Database, tmp_path: Path, own_broker_factory: BrokerFactory
) -> None:
    serials = add_devices(database, 2)
    port = spare_port()
    persistence = tmp_path / "persist"
    persistence.mkdir()
    # No device credentials needed here: the devices publish with one test account.
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n"
        "allow_anonymous true\npersistence true\n"
        f"persistence_location {persistence}/\nautosave_interval 1\n"
        "max_queued_messages 0\nmax_inflight_messages 0\n",
        encoding="utf-8",
    )
    broker = own_broker_factory(config, port)
    broker.start()
    settings = GasIngestSettings(
        mqtt_port=port,
        mqtt_client_id="cunan-restart-test",
        batch_wait_ms=20,
        reconnect_min_s=1,
        reconnect_max_s=2,
    )
    service = GasIngestService(database)
    ingestor = MqttIngestor(service, settings)
    ingestor.start()
    device = MqttDevice("127.0.0.1", port)
    plan = [m for s in serials for m in normal(s, T0, 300)]
    plan.sort(key=lambda m: m.device_time)
    sent_half = threading.Event()

    def publish() -> None:
        for n, m in enumerate(plan):
            device.send(m)
            if n == len(plan) // 2:
                sent_half.set()
            if n % 50 == 0:
                device.wait_acknowledged(2)  # paced, a little like real devices

    try:
        assert ingestor.wait_connected(10) and device.wait_connected()
        publisher = threading.Thread(target=publish)
        publisher.start()
        assert sent_half.wait(30)
        # Mid-stream: some stored, more on the way.
        wait_for(lambda: stored_count(database, serials) > 0, 30, "the first batch")
        broker.stop()
        stored_during = stored_count(database, serials)
        broker.start()
        publisher.join(60)
        device.wait_acknowledged(30)
        acknowledged = set(device.truth.acknowledged)
        assert len(acknowledged) > len(plan) // 2
        wait_for(
            lambda: acknowledged <= stored_keys(database, serials), 60, "every acknowledged one"
        )
    finally:
        device.close()
        ingestor.stop()
    assert 0 < stored_during < len(plan)
    assert service.counters.get("mqtt_connects") >= 2  # it did reconnect
    # Nothing was stored twice however often the broker delivered it.
    assert stored_count(database, serials) == len(stored_keys(database, serials))


@pytest.mark.parametrize("missing", ["tls_key"])
def test_tls_needs_both_files(database: Database, tmp_path: Path, missing: str) -> None:
    from cunan.errors import InvalidInput

    with pytest.raises(InvalidInput):
        write_broker_files(
            database,
            tmp_path,
            ingest_username=INGEST_USER,
            ingest_password=INGEST_PASSWORD,
            tls_cert=tmp_path / "cert.pem",
        )
