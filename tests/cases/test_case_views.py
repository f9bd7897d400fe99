"""Case views: sightings summarised in SQL, and case reads that never wait for the writer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

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
