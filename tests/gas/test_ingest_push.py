"""HTTP push: refused without token or signature, queued at once, idempotent, processed after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cunan.api.app import create_api
from cunan.app import CunanApp
from cunan.config import GasSettings, Settings
from cunan.gas.domain import DeviceMessage, MessageKind
from cunan.gas.ingest_settings import GasIngestSettings, PushSourceSettings
from cunan.gas.payload import encode_ctwing
from cunan.gas.push import DELIVERY_HEADER, SIGNATURE_HEADER, TOKEN_HEADER, sign
from cunan.gas.simulator import normal, push_burst
from cunan.registry.datadir import initialise
from cunan.storage.gas_tables import GasPushInbox
from tests.gas.ingest_fixtures import Collected, add_devices, stored_count, stored_keys, wait_for
from tests.storage.dbfixtures import db_url

__all__ = ["db_url"]

TOKEN = "push-token-0123456789"
SECRET = "push-hmac-secret-0123456789"
URL = "/api/v1/gas/push/ctwing"
T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def core(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CunanApp]:
    data = tmp_path_factory.mktemp("data") / "d"
    settings = Settings(
        database_url=db_url,
        gas=GasSettings(
            ingest=GasIngestSettings(
                push_max_bytes=4096,
                push_sources={
                    "ctwing": PushSourceSettings(token=TOKEN, hmac_secret=SECRET),
                    "signed": PushSourceSettings(hmac_secret=SECRET),
                },
            )
        ),
    )
    initialise(
        data,
        settings,
        admin_username="admin",
        admin_password="Pw-for-tests-123",
        village_name="燃气村",
    ).close()
    app = CunanApp.open(settings, data)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def client(core: CunanApp) -> TestClient:
    return TestClient(create_api(core))


def _body(message: DeviceMessage) -> bytes:
    return json.dumps(encode_ctwing(message)).encode()


def _inbox(core: CunanApp) -> list[GasPushInbox]:
    with core.registry.database.read() as session:
        return list(session.scalars(select(GasPushInbox).order_by(GasPushInbox.id)))


def test_pushes_without_a_valid_token_or_signature_are_refused(
    core: CunanApp, client: TestClient
) -> None:
    (serial,) = add_devices(core.registry.database, 1)
    body = _body(normal(serial, T0, 1)[0])
    before = len(_inbox(core))
    refusals = [
        (URL, {}),
        (URL, {TOKEN_HEADER: "push-token-0123456788"}),
        (URL, {SIGNATURE_HEADER: sign("another-secret-0123456789", body)}),
        (URL, {SIGNATURE_HEADER: sign(SECRET, body + b" ")}),
        ("/api/v1/gas/push/signed", {TOKEN_HEADER: TOKEN}),  # this source takes signatures only
        ("/api/v1/gas/push/nobody", {TOKEN_HEADER: TOKEN}),
    ]
    for url, headers in refusals:
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 401, (url, headers)
        assert response.headers["content-type"] == "application/problem+json"
    too_big = client.post(URL, content=b"{" + b" " * 5000 + b"}", headers={TOKEN_HEADER: TOKEN})
    assert too_big.status_code == 413

    # Without a length (chunked), a body over the limit is refused too (the route stops
    # reading at the limit; the service would refuse it as well).
    def chunks() -> Iterator[bytes]:
        yield b"{"
        for _ in range(100):
            yield b" " * 1000
        yield b"}"

    chunked = client.post(URL, content=chunks(), headers={TOKEN_HEADER: TOKEN})
    assert chunked.status_code == 413
    assert len(_inbox(core)) == before  # nothing refused was queued


def test_a_push_is_queued_once_and_processed_after(core: CunanApp, client: TestClient) -> None:
    database = core.registry.database
    (serial,) = add_devices(database, 1)
    collected = Collected()
    core.gas_on_stored = collected
    message = normal(serial, T0, 1)[0]
    body = _body(message)
    first = client.post(URL, content=body, headers={TOKEN_HEADER: TOKEN})
    assert first.status_code == 200 and first.json() == {"accepted": True, "duplicate": False}
    # The platform retries the same delivery (no id of its own: the body says which).
    again = client.post(URL, content=body, headers={SIGNATURE_HEADER: sign(SECRET, body)})
    assert again.json() == {"accepted": True, "duplicate": True}
    # A signed body replayed with a fresh delivery header (the signature does not cover the
    # header) is still the same delivery.
    replayed = client.post(
        URL, content=body, headers={SIGNATURE_HEADER: sign(SECRET, body), DELIVERY_HEADER: "new-1"}
    )
    assert replayed.json() == {"accepted": True, "duplicate": True}
    assert stored_count(database, [serial]) == 0  # answered before anything was processed
    queued = [row for row in _inbox(core) if row.processed_at is None]
    assert len(queued) == 1 and queued[0].body == body
    report = core.gas_push.process_pending()
    assert (report.rows, report.stored, report.failed_rows) == (1, 1, 0)
    assert stored_keys(database, [serial]) == {(serial, message.message_id)}
    assert [m.source for m in collected.messages] == ["http"]
    assert core.gas_push.backlog() == 0
    core.gas_on_stored = None


def test_bad_bodies_are_kept_with_their_error(core: CunanApp, client: TestClient) -> None:
    database = core.registry.database
    (serial,) = add_devices(database, 1)
    good = normal(serial, T0, 1)[0]
    stranger = DeviceMessage("NOBODY-9", "x1", MessageKind.READING, T0, T0, lel=3.0)
    bodies = {
        "broken": b"{not json",
        "out-of-range": json.dumps(
            {**encode_ctwing(good), "payload": {"serviceData": {"lel": 300}}}
        ).encode(),
        "unknown": _body(stranger),
        "good": _body(good),
    }
    for name, body in bodies.items():
        headers = {TOKEN_HEADER: TOKEN, DELIVERY_HEADER: f"bad-bodies-{name}"}
        assert client.post(URL, content=body, headers=headers).status_code == 200
    report = core.gas_push.process_pending()
    assert (report.rows, report.stored, report.failed_rows) == (4, 1, 3)
    rows = {row.delivery_id: row for row in _inbox(core) if row.delivery_id.startswith("bad-")}
    assert all(row.processed_at is not None for row in rows.values())
    assert "not UTF-8 JSON" in (rows["bad-bodies-broken"].error or "")
    assert "'lel'" in (rows["bad-bodies-out-of-range"].error or "")
    assert "unknown_device NOBODY-9" in (rows["bad-bodies-unknown"].error or "")
    assert rows["bad-bodies-good"].error is None
    assert rows["bad-bodies-broken"].body == b"{not json"  # kept as it came


def test_a_burst_of_pushes_is_all_stored(core: CunanApp, client: TestClient) -> None:
    database = core.registry.database
    serials = add_devices(database, 4)
    plan = [m for s in serials for m in normal(s, T0, 40)]
    truth = push_burst(URL, plan, hmac_secret=SECRET, per_body=5, client=client)
    assert truth.acknowledged == set(truth.unique())
    while core.gas_push.process_pending(limit=7).rows:
        pass
    assert stored_keys(database, serials) == set(truth.unique())


def test_the_running_application_drains_the_inbox_by_itself(
    core: CunanApp, client: TestClient
) -> None:
    from cunan.app import BackgroundOptions

    database = core.registry.database
    (serial,) = add_devices(database, 1)
    core.start(BackgroundOptions(cameras=False, cases=False, duties=False, gas=True))
    try:
        truth = push_burst(URL, normal(serial, T0, 12), token=TOKEN, per_body=3, client=client)
        wait_for(lambda: stored_count(database, [serial]) == 12, 30, "the processor")
    finally:
        core.stop()
    assert stored_keys(database, [serial]) == set(truth.unique())
