"""``cunan bench api`` at tiny scale: the data builder and the client loop, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tests.storage.dbfixtures import db_url

from cunan.api.app import create_api
from cunan.app import CunanApp
from cunan.authz import local_principal
from cunan.bench.api_data import STAFF_USER, ApiDataset, ApiDataSpec, build_dataset
from cunan.bench.api_load import (
    KINDS,
    LIVE_CAMERA,
    PAGE_KINDS,
    LoadOptions,
    add_live_camera,
    run_clients,
)
from cunan.config import Settings
from cunan.registry.datadir import initialise
from cunan.storage.auth_tables import AuthSession
from cunan.storage.query_repository import Page, PeopleFilter

__all__ = ["db_url"]

SPEC = ApiDataSpec(people=20, sightings=200, cases=5, seed=3)


@pytest.fixture(scope="module")
def built(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CunanApp, ApiDataset]]:
    data = tmp_path_factory.mktemp("bench-api") / "data"
    settings = Settings(database_url=db_url)
    initialise(
        data,
        settings,
        admin_username="admin",
        admin_password="Bench-admin-9x",
        village_name="压测村",
    ).close()
    core = CunanApp.open(settings, data)
    try:
        yield core, build_dataset(core, SPEC)
    finally:
        core.close()


def test_builder_writes_a_consistent_village(built: tuple[CunanApp, ApiDataset]) -> None:
    core, dataset = built
    svc = core.services_for(local_principal("tests"))
    people = svc.list_people(PeopleFilter(), Page(0, 200))
    assert people.total == SPEC.people
    # Tenants are listed with their room, house and landlord; residents have none.
    tenants = [p for p in people.items if p.category == "tenant"]
    assert tenants and all(p.room and p.address and p.landlord for p in tenants)
    # Every person has one template of the spec's model, and it decrypts to a unit vector.
    stored = core.registry.service.templates_of(people.items[0].id)
    assert [t.model_id for t in stored] == [SPEC.model_id]
    assert abs(float((stored[0].vector ** 2).sum()) - 1.0) < 1e-5
    assert core.registry.service.count_templates(model_id=SPEC.model_id) == SPEC.people
    assert svc.list_sightings(Page(0, 1)).total == SPEC.sightings
    cases = svc.list_cases(Page(0, 200))
    assert cases.total == SPEC.cases
    assert [c.id for c in sorted(cases.items, key=lambda c: c.id)] == list(
        range(dataset.first_case_id, dataset.last_case_id + 1)
    )
    # Each case's counters agree with its member sightings, and the unknown sightings
    # (15 % of them) are all in some case.
    assert sum(c.sightings for c in cases.items) == int(SPEC.sightings * 0.15)
    for case in cases.items:
        assert case.sightings >= 1 and case.first_seen_at <= case.last_seen_at
        assert case.best_sighting_ids
    # The best crop of a case decrypts (bound to its sighting row).
    first = cases.items[0]
    crops = core.cases.best_crops(first.id, limit=1)
    assert crops and crops[0][1][:2] == b"\xff\xd8"  # a JPEG


def test_ids_stay_usable_after_the_bulk_load(built: tuple[CunanApp, ApiDataset]) -> None:
    # Explicit ids must not leave PostgreSQL's sequences behind: a later ordinary insert
    # (here a landlord and a house) gets a fresh id instead of a duplicate-key error.
    core, _ = built
    service = core.registry.service
    landlord = service.add_landlord(service.default_village_id(), "新房东")
    house = service.add_house(service.default_village_id(), "新路1号", landlord_id=landlord)
    assert service.add_room(house, "101") > 0


def test_client_loop_logs_in_and_times_every_kind(built: tuple[CunanApp, ApiDataset]) -> None:
    core, dataset = built
    transport = httpx.ASGITransport(app=create_api(core))
    options = LoadOptions(
        clients=2, requests_per_client=8, duration_s=120.0, think_s=0.0, page_size=5
    )
    started: list[int] = []

    def on_start() -> None:
        # Called once, when both clients have logged in (both sessions exist by now).
        with core.registry.database.read() as session:
            started.append(session.scalar(select(func.count()).select_from(AuthSession)) or 0)

    with core.registry.database.read() as session:
        before = session.scalar(select(func.count()).select_from(AuthSession)) or 0
    result = asyncio.run(
        run_clients("http://testserver", dataset, options, transport=transport, on_start=on_start)
    )
    assert started == [before + 2]
    assert result.dashboard.startswith("GET")
    # Two clients logged in, then made 8 requests each: two of every kind.
    assert len(result.logins.latencies) == 2 and not result.logins.errors
    for kind in KINDS:
        assert len(result.kinds[kind].latencies) == 4, kind
        assert not result.kinds[kind].errors, kind
    data = result.as_json()
    overall = data["overall"]
    assert isinstance(overall, dict)
    assert overall["requests"] == 16 and overall["errors"] == 0
    assert {"p50_ms", "p95_ms", "p99_ms"} <= set(overall)


def test_client_loop_with_pages_times_each_page_apart(built: tuple[CunanApp, ApiDataset]) -> None:
    """``--pages``: the dashboard, case list and case page are asked for as a browser does
    (HTML, the session cookie of the API login) and reported per kind and together."""
    core, dataset = built
    transport = httpx.ASGITransport(app=create_api(core))
    options = LoadOptions(
        clients=2, requests_per_client=14, duration_s=120.0, think_s=0.0, page_size=5, pages=True
    )
    result = asyncio.run(run_clients("http://testserver", dataset, options, transport=transport))
    assert set(result.kinds) == set(KINDS) | set(PAGE_KINDS)
    for kind in (*KINDS, *PAGE_KINDS):
        assert len(result.kinds[kind].latencies) == 4, kind
        assert not result.kinds[kind].errors, kind
    data = result.as_json()
    pages, api = data["pages"], data["api"]
    assert isinstance(pages, dict) and isinstance(api, dict)
    assert pages["requests"] == 12 and api["requests"] == 16
    assert {"p50_ms", "p95_ms", "p99_ms"} <= set(pages)


class _PagesLoggedOut(httpx.AsyncBaseTransport):
    """The API as it is, but page requests arrive without the session cookie (as from a
    browser that lost it): the pages answer with a redirect to the login form."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith("/api/"):
            del request.headers["cookie"]
        return await self.inner.handle_async_request(request)


def test_a_page_that_redirects_to_login_is_an_error(built: tuple[CunanApp, ApiDataset]) -> None:
    """A redirect (to the login form) timed nothing: counted as an error, not a latency."""
    core, dataset = built
    transport = _PagesLoggedOut(httpx.ASGITransport(app=create_api(core)))
    options = LoadOptions(clients=1, requests_per_client=7, think_s=0.0, pages=True)
    result = asyncio.run(run_clients("http://testserver", dataset, options, transport=transport))
    for kind in PAGE_KINDS:
        assert not result.kinds[kind].latencies, kind
        assert result.kinds[kind].errors == {"HTTP 303": 1}, kind
    assert all(result.kinds[k].latencies for k in KINDS)


def test_client_loop_counts_refusals_as_errors(built: tuple[CunanApp, ApiDataset]) -> None:
    core, dataset = built
    wrong = ApiDataset(
        spec=dataset.spec,
        staff_user=STAFF_USER,
        staff_password="not-the-password",
        first_case_id=dataset.first_case_id,
        last_case_id=dataset.last_case_id,
    )
    transport = httpx.ASGITransport(app=create_api(core))
    options = LoadOptions(clients=2, requests_per_client=4, duration_s=60.0, think_s=0.0)
    result = asyncio.run(run_clients("http://testserver", wrong, options, transport=transport))
    # A client whose login fails makes no further requests; every failed login is counted.
    assert result.logins.errors == {"HTTP 401": 2}
    assert all(not s.latencies and not s.errors for s in result.kinds.values())


def test_dataset_marker_round_trips(tmp_path: Path) -> None:
    dataset = ApiDataset(
        spec=SPEC, staff_user=STAFF_USER, staff_password="x", first_case_id=1, last_case_id=5
    )
    dataset.save(tmp_path)
    assert ApiDataset.load(tmp_path) == dataset
    (tmp_path / "bench-api.json").write_text("{", encoding="utf-8")
    assert ApiDataset.load(tmp_path) is None


def test_spec_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="people"):
        ApiDataSpec(people=20_000, sightings=400_000, cases=10)
    with pytest.raises(ValueError, match="fewer than the 50 cases"):
        ApiDataSpec(people=20, sightings=100, cases=50)


def test_the_live_camera_is_added_once_with_its_notice_posted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    initialise(
        data, settings, admin_username="admin", admin_password="Bench-admin-9x", village_name="村"
    ).close()
    video = tmp_path / "street-loop.mp4"
    video.write_bytes(b"")
    add_live_camera(data, video)
    add_live_camera(data, video)  # a second run replaces it
    core = CunanApp.open(settings, data)
    try:
        cameras = [c for c in core.cameras.list() if c.name == LIVE_CAMERA]
    finally:
        core.close()
    assert len(cameras) == 1
    assert cameras[0].public_notice_posted and cameras[0].stream_url == str(video)
