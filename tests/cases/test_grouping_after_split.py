"""A sighting whose case changed members while it waited for the case's lock is grouped
against the case as it is now, not by the distance computed before the change.

The races are PostgreSQL only (see ``test_grouping_race``): a staff member's split or merge
commits between grouping's unlocked match and its lock. SQLite admits one writer at a time,
so there a split simply happens before or after the grouping; the last test checks that
order, the outcome the race must agree with.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pytest

from cunan.cases.grouping import linkage_distance
from tests.cases.conftest import T0, Env, near, unit
from tests.cases.test_grouping_race import STAFF, race
from tests.cli_helpers import staff_account

EVERY_STATUS = ("open", "assigned", "closed", "merged")
REGROUPED = "grouping it again"


@pytest.fixture
def postgres(env: Env) -> Env:
    if env.database.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite's single writer never lets the two overlap")
    return env


def _close(base: np.ndarray, seed: int) -> np.ndarray:
    """Another shot of the face ``base``, about 0.05 from it."""
    return near(base, seed, scale=0.004)


def _two_faces() -> tuple[np.ndarray, np.ndarray]:
    """Two different people whose faces are 0.29 apart: within ``link_threshold`` (0.36), so
    average linkage puts them into one case, but far more than two shots of one face."""
    x = unit(1)
    d = unit(2) - float(unit(2) @ x) * x
    y = x + 0.3 * d / np.linalg.norm(d)
    return x, (y / np.linalg.norm(y)).astype(np.float32)


def _wrongly_merged_case(env: Env) -> tuple[int, list[int], list[int], np.ndarray]:
    """One case holding two shots of X and two of Y (grouped in that order, each within the
    threshold of the case so far): (case id, X's sightings, Y's sightings, Y's face)."""
    x, y = _two_faces()
    ids: list[int] = []
    shots = (_close(x, 11), _close(x, 12), _close(y, 21), _close(y, 22))
    for minutes, vector in enumerate(shots):
        sighting = env.sighting(vector, camera="gate", at=T0 + timedelta(minutes=minutes))
        outcome = env.cases.handle_sighting(sighting)
        assert outcome is not None
        ids.append(sighting)
        case_id = outcome.case_id
    assert env.cases.get(case_id).sightings == 4
    return case_id, ids[:2], ids[2:], y


def _memberships(env: Env) -> list[int]:
    """The sightings of every case, sorted: one listed twice is in two cases."""
    return sorted(
        m.sighting_id
        for view in env.cases.list_cases(statuses=EVERY_STATUS)
        for m in env.cases.members(view.id)
    )


def _assert_after_split(
    env: Env, case_id: int, split_off: int, xs: list[int], ys: list[int], later: int
) -> None:
    assert {m.sighting_id for m in env.cases.members(case_id)} == set(xs)
    assert {m.sighting_id for m in env.cases.members(split_off)} == {*ys, later}
    assert (env.cases.get(case_id).sightings, env.cases.get(split_off).sightings) == (2, 3)
    assert _memberships(env) == sorted((*xs, *ys, later))


def test_a_sighting_of_a_case_split_meanwhile_joins_the_split_off_case(
    postgres: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Y's sighting matches the mixed case (0.18 on average). Staff split Y's sightings off
    while grouping waits for the case's lock: by the case as it is now, Y's sighting is 0.29
    from X's case and 0.07 from the split-off one, so it joins the split-off case."""
    env = postgres
    case_id, xs, ys, y = _wrongly_merged_case(env)
    later = env.sighting(_close(y, 23), camera="market", at=T0 + timedelta(hours=1))
    split_off: list[int] = []

    def staff() -> None:
        split_off.append(env.cases.split(case_id, ys, actor=STAFF).id)

    with caplog.at_level(logging.INFO, logger="cunan.cases.service"):
        result = race(env, staff, later)

    [new_id] = split_off
    assert result is not None and not result.opened
    assert result.case_id == new_id, f"joined case {result.case_id}, split-off is {new_id}"
    assert result.alerted and result.suppressed_by is None  # another camera: no cooldown
    assert result.distance is not None and result.distance < 0.1  # not the stale 0.18
    assert REGROUPED in caplog.text
    _assert_after_split(env, case_id, new_id, xs, ys, later)
    [member] = [m for m in env.cases.members(new_id) if m.sighting_id == later]
    assert member.distance == pytest.approx(result.distance)
    sent = env.channel.sent[-1]
    assert (sent.kind, sent.data["case_id"]) == ("case.sighted", new_id)


def test_a_sighting_of_a_case_merged_into_meanwhile_is_grouped_by_its_new_members(
    postgres: Env,
) -> None:
    """The sighting is 0.06 from case A. Staff merge B (another face, 1.4 away) into A
    while grouping waits for A's lock: by the merged case's average (0.95) the sighting is
    near no case any more, so it opens a new one instead of joining A by the stale 0.06."""
    env = postgres
    z, w = unit(3), unit(4)
    a = env.cases.handle_sighting(env.sighting(_close(z, 31), camera="gate"))
    b1 = env.cases.handle_sighting(env.sighting(_close(w, 41), camera="gate"))
    b2 = env.cases.handle_sighting(env.sighting(_close(w, 42), camera="gate"))
    assert a is not None and b1 is not None and b2 is not None
    assert b1.case_id != a.case_id and b2.case_id == b1.case_id
    later = env.sighting(_close(z, 33), camera="market", at=T0 + timedelta(hours=1))

    result = race(env, lambda: env.cases.merge(a.case_id, b1.case_id, actor=STAFF), later)

    assert result is not None and result.opened and result.alerted
    assert result.case_id not in (a.case_id, b1.case_id)
    assert {m.sighting_id for m in env.cases.members(a.case_id)} == {
        a.sighting_id,
        b1.sighting_id,
        b2.sighting_id,
    }
    assert env.cases.get(b1.case_id).status == "merged"
    assert [m.sighting_id for m in env.cases.members(result.case_id)] == [later]
    assert _memberships(env) == sorted((a.sighting_id, b1.sighting_id, b2.sighting_id, later))


def test_a_sighting_of_a_case_assigned_meanwhile_joins_it_without_regrouping(
    postgres: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """An assignment changes no member: the distance computed before the lock still holds,
    and the sighting joins at once."""
    env = postgres
    case_id, xs, ys, y = _wrongly_merged_case(env)
    later_vector = _close(y, 23)
    later = env.sighting(later_vector, camera="market", at=T0 + timedelta(hours=1))
    x, _ = _two_faces()
    members = np.stack([_close(x, 11), _close(x, 12), _close(y, 21), _close(y, 22)])
    before = linkage_distance(later_vector, members, "average")
    staff_user = staff_account(env.database, "wang")

    with caplog.at_level(logging.INFO, logger="cunan.cases.service"):
        result = race(env, lambda: env.cases.assign(case_id, staff_user, actor=STAFF), later)

    assert result is not None and result.case_id == case_id and result.alerted
    assert result.distance == pytest.approx(before, abs=1e-5)
    assert REGROUPED not in caplog.text
    assert env.cases.get(case_id).status == "assigned"
    assert _memberships(env) == sorted((*xs, *ys, later))


def test_a_sighting_grouped_after_a_split_joins_the_split_off_case(env: Env) -> None:
    """Both engines: the order the race above must agree with (split, then grouping)."""
    case_id, xs, ys, y = _wrongly_merged_case(env)
    new_id = env.cases.split(case_id, ys, actor=STAFF).id
    later = env.sighting(_close(y, 23), camera="market", at=T0 + timedelta(hours=1))

    result = env.cases.handle_sighting(later)

    assert result is not None and result.case_id == new_id and not result.opened
    _assert_after_split(env, case_id, new_id, xs, ys, later)
