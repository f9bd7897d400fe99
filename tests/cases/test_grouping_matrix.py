"""The vectorised grouping (one matrix of every case's kept embeddings) answers exactly as
the rule applied one case at a time: same case, same distance, same winner of a tie."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pytest
from numpy.typing import NDArray

from cunan.cases.grouping import KeptMatrix, Link, Linkage, OnlineGrouper, linkage_distance
from cunan.storage.cases_repository import CaseRepository
from tests.cases.conftest import MODEL, T0, Env, near

DIM = 128
MAX_KEPT = 8


def one_at_a_time(
    vector: NDArray[np.float32],
    order: Sequence[int],
    kept: dict[int, NDArray[np.float32]],
    linkage: Linkage,
) -> Link:
    """The rule as grouping applied it before the matrix: each candidate in turn, the first
    strictly nearer one wins, cases without embeddings skipped."""
    best_id: int | None = None
    best = float("inf")
    for case_id in order:
        rows = kept[case_id]
        if rows.shape[0] == 0:
            continue
        distance = linkage_distance(vector, rows, linkage)
        if distance < best:
            best_id, best = case_id, distance
    return Link(best_id, best)


def _unit(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _shots(rng: np.random.Generator, face: NDArray[np.float32], n: int) -> NDArray[np.float32]:
    """``n`` shots of one face: the face plus noise, normalised (0.05-0.4 apart)."""
    scale = rng.uniform(0.002, 0.03)
    v = face[None, :] + scale * rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _random_cases(
    rng: np.random.Generator, n_cases: int
) -> tuple[NDArray[np.float32], dict[int, NDArray[np.float32]]]:
    """Cases of a few dozen faces (several cases per face, as grouping splits people),
    some empty, some exact copies of another (ties), ids in no particular order."""
    faces = _unit(rng, 40)
    ids = rng.permutation(np.arange(1, 5 * n_cases))[:n_cases].tolist()
    kept: dict[int, NDArray[np.float32]] = {}
    for i, case_id in enumerate(ids):
        if i % 17 == 5:
            kept[case_id] = np.zeros((0, 0), dtype=np.float32)
        elif i % 11 == 3 and kept:
            kept[case_id] = kept[ids[int(rng.integers(0, i))]].copy()
        else:
            face = faces[int(rng.integers(0, len(faces)))]
            kept[case_id] = _shots(rng, face, int(rng.integers(1, MAX_KEPT + 1)))
    return faces, kept


def _probes(
    rng: np.random.Generator, faces: NDArray[np.float32], kept: dict[int, NDArray[np.float32]]
) -> list[NDArray[np.float32]]:
    """New sightings: other shots of the faces, strangers, and exact copies of kept rows."""
    probes = [_shots(rng, faces[int(rng.integers(0, len(faces)))], 1)[0] for _ in range(60)]
    probes += list(_unit(rng, 20))
    stored = [rows for rows in kept.values() if rows.shape[0]]
    for _ in range(20):
        rows = stored[int(rng.integers(0, len(stored)))]
        probes.append(rows[int(rng.integers(0, rows.shape[0]))].copy())
    return probes


@pytest.mark.parametrize("linkage", ["average", "single"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matrix_agrees_with_the_rule_one_case_at_a_time(linkage: Linkage, seed: int) -> None:
    rng = np.random.default_rng(seed)
    faces, kept = _random_cases(rng, 300)
    matrix = KeptMatrix(DIM, MAX_KEPT)
    for case_id, rows in kept.items():
        matrix.put(case_id, 1, rows)
    order = list(kept)
    ties = 0
    for probe in _probes(rng, faces, kept):
        expected = one_at_a_time(probe, order, kept, linkage)
        got = matrix.nearest(probe, order, linkage)
        assert got.case_id == expected.case_id
        assert got.distance == expected.distance  # the same float, not a close one
        assert expected.case_id is not None
        # A copy of the winner made a tie: the first in ``order`` won it, as before.
        winner = kept[expected.case_id]
        ties += any(c != expected.case_id and np.array_equal(kept[c], winner) for c in order)
    assert ties > 0


@pytest.mark.parametrize("linkage", ["average", "single"])
def test_matrix_follows_changes_to_its_cases(linkage: Linkage) -> None:
    """Replaced, dropped and new cases (as cases gain sightings, split, merge, close and
    reopen) leave the matrix answering as the rule does on the cases as they are now."""
    rng = np.random.default_rng(7)
    faces, kept = _random_cases(rng, 150)
    matrix = KeptMatrix(DIM, MAX_KEPT)
    for case_id, rows in kept.items():
        matrix.put(case_id, 1, rows)
    next_id = max(kept) + 1
    for step in range(300):
        action = step % 5
        case_id = list(kept)[int(rng.integers(0, len(kept)))]
        if action == 0:  # a sighting joined, or a split took some away: new rows
            face = faces[int(rng.integers(0, len(faces)))]
            kept[case_id] = _shots(rng, face, int(rng.integers(0, MAX_KEPT + 1)))
            matrix.put(case_id, step + 2, kept[case_id])
        elif action == 1 and len(kept) > 20:  # closed or merged: no longer a candidate
            del kept[case_id]
            matrix.drop(case_id)
        elif action == 2:  # a new case
            kept[next_id] = _shots(rng, faces[int(rng.integers(0, len(faces)))], 1)
            matrix.put(next_id, 1, kept[next_id])
            next_id += 1
        order = list(rng.permutation(list(kept)).tolist())
        if action == 3:  # only some are candidates: forget the rest
            order = order[: len(order) // 2 + 1]
            matrix.retain(order)
            kept = {c: kept[c] for c in order}
        probe = _probes(rng, faces, kept)[int(rng.integers(0, 100))]
        assert matrix.nearest(probe, order, linkage) == one_at_a_time(probe, order, kept, linkage)
        assert len(matrix) == len(kept)


def test_no_case_with_embeddings_is_no_link() -> None:
    matrix = KeptMatrix(DIM, MAX_KEPT)
    probe = _unit(np.random.default_rng(3), 1)[0]
    assert matrix.nearest(probe, [], "average") == Link(None, float("inf"))
    matrix.put(4, 1, np.zeros((0, 0), dtype=np.float32))
    assert matrix.nearest(probe, [4], "average") == Link(None, float("inf"))


def test_wrong_shapes_are_refused_naming_the_case() -> None:
    matrix = KeptMatrix(DIM, MAX_KEPT)
    with pytest.raises(ValueError, match="case 9"):
        matrix.put(9, 1, np.zeros((2, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="case 9"):
        matrix.put(9, 1, np.zeros((MAX_KEPT + 1, DIM), dtype=np.float32))


def test_online_grouper_groups_as_the_rule_does() -> None:
    """The in-memory grouper (purity measurements) on the matrix gives the grouping the rule
    gives one case at a time."""
    rng = np.random.default_rng(11)
    faces = _unit(rng, 30)
    stream = [_shots(rng, faces[int(rng.integers(0, 30))], 1)[0] for _ in range(400)]
    grouper = OnlineGrouper(0.36, "average", MAX_KEPT)
    members: dict[int, list[NDArray[np.float32]]] = {}
    for vector in stream:
        kept = {c: np.stack(vs[:MAX_KEPT]) for c, vs in members.items()}
        link = one_at_a_time(vector, sorted(kept), kept, "average")
        if link.case_id is not None and link.distance <= 0.36:
            expected = link.case_id
        else:
            expected = len(members) + 1
        members.setdefault(expected, []).append(vector)
        assert grouper.add(vector) == expected
    assert 1 < len(members) < len(stream)


def test_cases_kept_embeddings_are_each_cases_kept_sightings(env: Env) -> None:
    """The one query that loads every case's kept embeddings at a start returns, per case,
    the sightings (and order) the per-case query does, ties in faces and time included."""
    rng = np.random.default_rng(5)
    case_ids: list[int] = []
    for face in _unit(rng, 4):
        first = env.cases.handle_sighting(env.sighting(face, faces=3))
        assert first is not None
        case_ids.append(first.case_id)
        for i in range(11):
            shot = near(face, int(rng.integers(0, 2**31)), scale=0.004)
            # Equal faces and times in several sightings: the order needs its tiebreaker.
            at = T0 + timedelta(minutes=i // 3)
            outcome = env.cases.handle_sighting(env.sighting(shot, at=at, faces=1 + i % 2))
            assert outcome is not None and outcome.case_id == first.case_id
    with env.database.read() as session:
        repo = CaseRepository(session)
        bulk = repo.kept_embeddings([*case_ids, 10**9], limit=MAX_KEPT)
        assert sorted(bulk) == sorted(case_ids)
        for case_id in case_ids:
            one = repo.kept_sightings(case_id, limit=MAX_KEPT)
            assert [k.sighting_id for k in bulk[case_id]] == [r.id for r in one]
            assert [k.ciphertext for k in bulk[case_id]] == [r.embedding_ciphertext for r in one]


def test_grouping_joins_the_case_the_rule_picks(env: Env) -> None:
    """Each new unknown sighting joins (or opens) the case the one-case-at-a-time rule
    picks among the active cases as stored, with the same distance."""
    rng = np.random.default_rng(9)
    faces = _unit(rng, 10)
    settings = env.cases.settings
    for step in range(70):
        vector = _shots(rng, faces[int(rng.integers(0, len(faces)))], 1)[0]
        with env.database.read() as session:
            repo = CaseRepository(session)
            active = repo.case_versions(model_id=MODEL, statuses=("open", "assigned"))
            kept = {
                c: (
                    np.stack([env.cases._sighting_vector(r) for r in rows])
                    if (rows := repo.kept_sightings(c, limit=settings.max_kept_per_case))
                    else np.zeros((0, 0), dtype=np.float32)
                )
                for c, _ in active
            }
        expected = one_at_a_time(vector, [c for c, _ in active], kept, settings.linkage)
        env.clock.advance(minutes=1)
        outcome = env.cases.handle_sighting(env.sighting(vector))
        assert outcome is not None
        if expected.case_id is not None and expected.distance <= settings.link_threshold:
            assert (outcome.case_id, outcome.distance) == (expected.case_id, expected.distance)
        else:
            assert outcome.opened
        if step == 35:
            # A merge and a split change members: the matrix must follow.
            views = env.cases.list_cases()
            env.cases.merge(views[0].id, views[1].id, actor="user:1")
            members = env.cases.members(views[0].id)
            env.cases.split(views[0].id, [members[0].sighting_id], actor="user:1")
