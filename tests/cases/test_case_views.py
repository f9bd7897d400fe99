"""Case views: sightings summarised in SQL, and case reads that never wait for the writer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from cunan.cases.digests import DigestCache
from cunan.cases.service import CaseService
from cunan.cases.views import CaseView
from cunan.storage.cases_repository import CaseRepository, MemberDigest
from cunan.storage.pipeline_tables import Sighting
from cunan.storage.retention_repository import RetentionRepository
from tests.cases.conftest import Env, near, unit


def _case_of(env: Env, sighting_id: int) -> int:
    outcome = env.cases.handle_sighting(sighting_id)
    assert outcome is not None
    return outcome.case_id


def test_view_counts_local_days_cameras_and_best_sightings(env: Env) -> None:
    face = unit(1)
    # Local days are UTC+8: 15:30 and 16:30 UTC fall on two local days, 23:00 UTC and
    # 01:00 UTC the next day on one.
    times = [
        datetime(2025, 6, 1, 15, 30, tzinfo=UTC),
        datetime(2025, 6, 1, 16, 30, tzinfo=UTC),
        datetime(2025, 6, 1, 23, 0, tzinfo=UTC),
        datetime(2025, 6, 2, 1, 0, tzinfo=UTC),
    ]
    cameras = ["market", "gate", "gate", "school"]
    faces = [5, 2, 5, 3]
    ids = [
        env.sighting(near(face, i), camera=c, at=t, faces=f)
        for i, (t, c, f) in enumerate(zip(times, cameras, faces, strict=True))
    ]
    case_id = _case_of(env, ids[0])
    for sighting_id in ids[1:]:
        assert _case_of(env, sighting_id) == case_id
    view = env.cases.get(case_id)
    assert view.sightings == 4
    assert view.distinct_days == 2
    assert view.cameras == ("gate", "market", "school")
    # Most good faces first, then the most recent: the two with 5 faces, latest first.
    assert view.best_sighting_ids == (ids[2], ids[0], ids[3], ids[1])


def test_get_many_keeps_order_and_matches_get(env: Env) -> None:
    first = _case_of(env, env.sighting(unit(1)))
    second = _case_of(env, env.sighting(unit(2), camera="market"))
    third = _case_of(env, env.sighting(unit(3)))
    _case_of(env, env.sighting(near(unit(2), 9), camera="gate"))
    views = env.cases.get_many([third, first, 999_999, second])
    assert [v.id for v in views] == [third, first, second]  # a missing id is left out
    assert views == [env.cases.get(i) for i in (third, first, second)]
    assert views[2].sightings == 2 and views[2].cameras == ("gate", "market")


def test_reading_a_case_does_not_wait_for_a_writer(env: Env) -> None:
    case_id = _case_of(env, env.sighting(unit(1)))
    holding = threading.Event()
    finished_read = threading.Event()
    released_before_read: list[bool] = []

    def writer() -> None:
        # A long write (camera storing a sighting, grouping) holds the writer lock; it
        # lets go only once the read finished, or after the hang guard.
        with env.database.transaction():
            holding.set()
            released_before_read.append(not finished_read.wait(30))

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(30)
    try:
        view = env.cases.get(case_id)
        listed = env.cases.get_many([case_id])
        crops = env.cases.best_crops(case_id)
    finally:
        finished_read.set()
        thread.join()
    assert view.id == case_id and listed == [view] and len(crops) == 1
    assert released_before_read == [False], "the read waited for the writer to finish"


def _fresh_view(env: Env, case_id: int) -> CaseView:
    """The case's view from a service that has kept nothing (digests computed now)."""
    service = CaseService(
        env.database, env.cases.cipher, env.registry, env.cases.settings, clock=env.clock
    )
    return service.get(case_id)


def test_kept_digests_follow_every_change_of_members(env: Env) -> None:
    face, other = unit(1), unit(2)
    first = [env.sighting(near(face, i), camera="gate") for i in range(4)]
    case_id = _case_of(env, first[0])
    for sighting_id in first[1:]:
        assert _case_of(env, sighting_id) == case_id
    second_id = _case_of(env, env.sighting(other, camera="market"))

    def check() -> None:
        # Read twice (the second from what the first kept), then against a new service.
        kept = env.cases.get(case_id)
        assert env.cases.get(case_id) == kept == _fresh_view(env, case_id)
        assert env.cases.get_many([case_id, second_id]) == [
            kept,
            _fresh_view(env, second_id),
        ]

    check()
    # A sighting joins (on another local day).
    env.clock.advance(days=1)
    assert _case_of(env, env.sighting(near(face, 9), camera="school", faces=9)) == case_id
    check()
    assert env.cases.get(case_id).cameras == ("gate", "school")
    # A merge moves the other case's sightings in.
    env.cases.merge(case_id, second_id, actor="staff")
    check()
    assert env.cases.get(case_id).sightings == 6
    # A split moves two out.
    env.cases.split(case_id, first[:2], actor="staff")
    check()
    assert env.cases.get(case_id).sightings == 4
    # Sightings deleted without a version change: a retention purge (bulk DELETE) ...
    with env.database.transaction() as session:
        RetentionRepository(session).delete_unknown_sightings(env.clock.now - timedelta(hours=1))
    check()
    after_purge = env.cases.get(case_id)
    assert after_purge.sightings == 1 and after_purge.cameras == ("school",)
    # ... and one deleted row by row.
    remaining = after_purge.best_sighting_ids[0]
    with env.database.transaction() as session:
        session.delete(session.get(Sighting, remaining))
    check()
    assert env.cases.get(case_id).sightings == 0


def test_a_case_digest_is_read_once_per_version(env: Env) -> None:
    face = unit(1)
    case_id = _case_of(env, env.sighting(face))
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(env.database.engine, "before_cursor_execute", record)
    try:
        env.cases.get(case_id)
        computed = sum("case_sightings" in s for s in statements)
        statements.clear()
        env.cases.get(case_id)
        env.cases.get_many([case_id])
        assert computed > 0 and not any("case_sightings" in s for s in statements)
        # A new member is a new version: computed again.
        assert _case_of(env, env.sighting(near(face, 3))) == case_id
        statements.clear()
        assert env.cases.get(case_id).sightings == 2
        assert any("case_sightings" in s for s in statements)
    finally:
        event.remove(env.database.engine, "before_cursor_execute", record)


def test_a_write_transactions_digest_is_not_kept(env: Env) -> None:
    face = unit(1)
    case_id = _case_of(env, env.sighting(face))
    # A view built inside a write that rolls back must not be reused.
    try:
        with env.database.transaction() as session:
            repo = CaseRepository(session)
            case = repo.case(case_id)
            assert case is not None
            case.version += 1
            session.flush()
            env.cases._views(repo, [case], env.clock.now)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert env.cases.digests.hits == 0
    assert env.cases.get(case_id) == _fresh_view(env, case_id)


def test_digest_cache_bounds_and_generations() -> None:
    now = [0.0]
    cache = DigestCache(size=2, max_age_s=10.0, clock=lambda: now[0])
    one, two = MemberDigest(1, 1, ("gate",), (7,)), MemberDigest(2, 1, ("gate",), (8, 9))
    generation = cache.generation
    cache.put([(1, 0, one), (2, 5, two)], generation)
    assert cache.get(1, 0) == one and cache.get(2, 5) == two
    assert cache.get(2, 6) is None  # another version of the case
    # Bounded: a third case pushes out the least recently read.
    cache.get(1, 0)
    cache.put([(3, 0, one)], generation)
    assert cache.get(2, 5) is None and cache.get(1, 0) == one
    # Too old: computed again.
    now[0] = 11.0
    assert cache.get(1, 0) is None
    # Computed before a deletion committed: not kept.
    stale = cache.generation
    cache.clear()
    cache.put([(1, 0, one)], stale)
    assert cache.get(1, 0) is None
    cache.put([(1, 0, one)], cache.generation)
    assert cache.get(1, 0) == one
