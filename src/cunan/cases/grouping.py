"""Online linkage of an unknown embedding to the nearest open case (pure numpy, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Linkage = Literal["average", "single"]


@dataclass(frozen=True, slots=True)
class Link:
    """The nearest case and its linkage distance (``case_id`` None: there is no case)."""

    case_id: int | None
    distance: float


def linkage_distance(
    vector: NDArray[np.float32], kept: NDArray[np.float32], linkage: Linkage
) -> float:
    """Distance from ``vector`` to a case whose kept embeddings are the rows of ``kept``."""
    distances = np.linalg.norm(kept - vector[None, :], axis=1)
    return float(distances.mean() if linkage == "average" else distances.min())


def nearest_case(
    vector: NDArray[np.float32],
    cases: Mapping[int, NDArray[np.float32]],
    linkage: Linkage,
) -> Link:
    """The case with the smallest linkage distance (ties: the older, smaller id).

    The rule itself, one case at a time: :class:`KeptMatrix` gives the same answer for
    thousands of cases at once (the tests hold the two to each other)."""
    return _first_nearest(vector, sorted(cases), cases.__getitem__, linkage)


def _first_nearest(
    vector: NDArray[np.float32],
    order: Sequence[int],
    kept_of: Callable[[int], NDArray[np.float32]],
    linkage: Linkage,
) -> Link:
    """The first case in ``order`` with the smallest linkage distance (empty cases skipped)."""
    best = Link(None, float("inf"))
    for case_id in order:
        kept = kept_of(case_id)
        if kept.shape[0] == 0:
            continue
        distance = linkage_distance(vector, kept, linkage)
        if distance < best.distance:
            best = Link(case_id, distance)
    return best


#: How far (absolute, plus the same share of the distance) a case's float64 screening
#: distance may lie above the smallest one and still be re-measured by the exact rule. The
#: screening and the rule's float32 arithmetic differ by ~1e-6 for unit vectors, so every
#: case that could be the rule's nearest (or tie with it) is re-measured.
SCREEN_TOLERANCE = 1e-4


class KeptMatrix:
    """The kept embeddings of many cases (one model) in one array, kept in memory between
    sightings and updated per case as cases change.

    Grouping compares each new unknown sighting with every active case (thousands on a busy
    site) while it holds the database's writer; one case at a time in Python that took as
    long as all the page views together. Here one matrix product screens every case, and
    only the few within :data:`SCREEN_TOLERANCE` of the nearest are measured again by
    :func:`linkage_distance`, in the caller's order: the answer (case, distance, and which
    of two equally near cases wins) is exactly :func:`nearest_case`'s rule.

    Not thread-safe: the caller serialises use (:class:`~cunan.cases.service.CaseService`
    holds a lock around it).
    """

    def __init__(self, dim: int, max_kept: int) -> None:
        if dim < 1 or max_kept < 1:
            raise ValueError("dim and max_kept must be positive")
        self.dim = dim
        self.max_kept = max_kept
        # One slot of ``max_kept`` rows per case; rows past a case's count are zero.
        self._rows = np.zeros((0, max_kept, dim), dtype=np.float64)
        self._squares = np.zeros((0, max_kept), dtype=np.float64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._slot: dict[int, int] = {}
        self._version: dict[int, int] = {}
        # The rows as given (float32): what the exact rule measures.
        self._kept: dict[int, NDArray[np.float32]] = {}
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._slot

    def version(self, case_id: int) -> int | None:
        """The version the case's rows were stored for (None: not held)."""
        return self._version.get(case_id)

    def kept(self, case_id: int) -> NDArray[np.float32]:
        return self._kept[case_id]

    def put(self, case_id: int, version: int, kept: NDArray[np.float32]) -> None:
        """Store (or replace) a case's kept embeddings (rows; none for an empty case)."""
        rows = kept.reshape(0, self.dim) if kept.size == 0 else kept
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(
                f"case {case_id}: kept embeddings of shape {kept.shape}, expected (n, {self.dim})"
            )
        if rows.shape[0] > self.max_kept:
            raise ValueError(
                f"case {case_id}: {rows.shape[0]} kept embeddings, at most {self.max_kept}"
            )
        slot = self._slot.get(case_id)
        if slot is None:
            slot = self._free.pop() if self._free else self._grow()
            self._slot[case_id] = slot
        n = rows.shape[0]
        self._rows[slot] = 0.0
        self._rows[slot, :n] = rows
        self._squares[slot] = 0.0
        self._squares[slot, :n] = np.einsum("ij,ij->i", self._rows[slot, :n], self._rows[slot, :n])
        self._counts[slot] = n
        self._version[case_id] = version
        self._kept[case_id] = rows

    def drop(self, case_id: int) -> None:
        """Forget a case (no longer a candidate)."""
        slot = self._slot.pop(case_id, None)
        if slot is None:
            return
        self._counts[slot] = 0
        self._rows[slot] = 0.0
        self._squares[slot] = 0.0
        del self._version[case_id]
        del self._kept[case_id]
        self._free.append(slot)

    def retain(self, case_ids: Sequence[int]) -> int:
        """Forget every case not in ``case_ids``; returns how many were dropped."""
        keep = set(case_ids)
        gone = [c for c in self._slot if c not in keep]
        for case_id in gone:
            self.drop(case_id)
        return len(gone)

    def _grow(self) -> int:
        used = self._rows.shape[0]
        size = max(64, used * 2)
        rows = np.zeros((size, self.max_kept, self.dim), dtype=np.float64)
        rows[:used] = self._rows
        squares = np.zeros((size, self.max_kept), dtype=np.float64)
        squares[:used] = self._squares
        counts = np.zeros(size, dtype=np.int64)
        counts[:used] = self._counts
        self._rows, self._squares, self._counts = rows, squares, counts
        self._free.extend(range(size - 1, used, -1))
        return used

    def screen(
        self, vector: NDArray[np.float32], case_ids: Sequence[int], linkage: Linkage
    ) -> NDArray[np.float64]:
        """Approximate linkage distance (float64) to each of ``case_ids`` (all held; inf for
        an empty case)."""
        if vector.shape != (self.dim,):
            raise ValueError(f"vector of shape {vector.shape}, expected ({self.dim},)")
        slots = np.fromiter((self._slot[c] for c in case_ids), dtype=np.int64, count=len(case_ids))
        v = vector.astype(np.float64)
        # |k - v|^2 = |k|^2 + |v|^2 - 2 k.v for every kept row of every slot: one
        # matrix-vector product over the whole array (cheaper than gathering the slots).
        dots = (self._rows.reshape(-1, self.dim) @ v).reshape(-1, self.max_kept)
        squared = self._squares[slots] + float(v @ v) - 2.0 * dots[slots]
        distances = np.sqrt(np.maximum(squared, 0.0))
        counts = self._counts[slots]
        present = np.arange(self.max_kept)[None, :] < counts[:, None]
        out: NDArray[np.float64]
        with np.errstate(divide="ignore", invalid="ignore"):
            if linkage == "average":
                out = np.asarray(np.where(present, distances, 0.0).sum(axis=1) / counts)
            else:
                out = np.asarray(np.where(present, distances, np.inf).min(axis=1))
        out[counts == 0] = np.inf
        # A NaN (a damaged embedding) never wins, as in the exact rule.
        out[np.isnan(out)] = np.inf
        return out

    def nearest(self, vector: NDArray[np.float32], order: Sequence[int], linkage: Linkage) -> Link:
        """:func:`nearest_case`'s answer over the held cases ``order`` (ties: the first in
        ``order``), from one screening product and a few exact re-measurements."""
        if not order:
            return Link(None, float("inf"))
        screened = self.screen(vector, order, linkage)
        least = float(screened.min())
        if not np.isfinite(least):
            return Link(None, float("inf"))
        bound = least + SCREEN_TOLERANCE * (1.0 + least)
        near = [order[int(i)] for i in np.flatnonzero(screened <= bound)]  # in ``order``
        return _first_nearest(vector, near, self._kept.__getitem__, linkage)


def nearest_distance(vector: NDArray[np.float32], examples: NDArray[np.float32]) -> float:
    """Distance to the nearest row of ``examples`` (inf when there is none)."""
    if examples.shape[0] == 0:
        return float("inf")
    return float(np.linalg.norm(examples - vector[None, :], axis=1).min())


class OnlineGrouper:
    """The grouping rule alone, in memory: what :class:`~cunan.cases.service.CaseService`
    applies to stored sightings, used to measure purity and completeness on face sets."""

    def __init__(self, threshold: float, linkage: Linkage = "average", max_kept: int = 8) -> None:
        self.threshold = threshold
        self.linkage: Linkage = linkage
        self.max_kept = max_kept
        self._members: dict[int, list[NDArray[np.float32]]] = {}
        self._matrix: KeptMatrix | None = None

    def add(self, vector: NDArray[np.float32]) -> int:
        """The case the vector joins (a new one when no case is within the threshold)."""
        if self._matrix is None:
            self._matrix = KeptMatrix(vector.shape[0], self.max_kept)
        link = self._matrix.nearest(vector, sorted(self._members), self.linkage)
        if link.case_id is not None and link.distance <= self.threshold:
            case_id = link.case_id
            self._members[case_id].append(vector)
        else:
            case_id = len(self._members) + 1
            self._members[case_id] = [vector]
        members = self._members[case_id]
        if len(members) <= self.max_kept:
            # Only the first ``max_kept`` embeddings of a case are linked against.
            self._matrix.put(case_id, len(members), np.stack(members))
        return case_id


@dataclass(frozen=True, slots=True)
class GroupingScore:
    """Purity: share of items in their case's majority identity. Completeness: share of
    items in their identity's largest case. Both 1.0 for a perfect grouping."""

    items: int
    identities: int
    cases: int
    purity: float
    completeness: float


def score_grouping(truth: list[str], cases: list[int]) -> GroupingScore:
    """Purity and completeness of a grouping against the true identities."""
    if len(truth) != len(cases) or not truth:
        raise ValueError("truth and cases must be equally long and not empty")
    by_case: dict[int, dict[str, int]] = {}
    by_identity: dict[str, dict[int, int]] = {}
    for identity, case in zip(truth, cases, strict=True):
        by_case.setdefault(case, {}).setdefault(identity, 0)
        by_case[case][identity] += 1
        by_identity.setdefault(identity, {}).setdefault(case, 0)
        by_identity[identity][case] += 1
    n = len(truth)
    return GroupingScore(
        items=n,
        identities=len(by_identity),
        cases=len(by_case),
        purity=sum(max(c.values()) for c in by_case.values()) / n,
        completeness=sum(max(c.values()) for c in by_identity.values()) / n,
    )
