"""Online linkage of an unknown embedding to the nearest open case (pure numpy, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
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
    """The case with the smallest linkage distance (ties: the older, smaller id)."""
    best = Link(None, float("inf"))
    for case_id in sorted(cases):
        kept = cases[case_id]
        if kept.shape[0] == 0:
            continue
        distance = linkage_distance(vector, kept, linkage)
        if distance < best.distance:
            best = Link(case_id, distance)
    return best


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

    def add(self, vector: NDArray[np.float32]) -> int:
        """The case the vector joins (a new one when no case is within the threshold)."""
        kept = {cid: np.stack(vs[: self.max_kept]) for cid, vs in self._members.items()}
        link = nearest_case(vector, kept, self.linkage)
        if link.case_id is not None and link.distance <= self.threshold:
            self._members[link.case_id].append(vector)
            return link.case_id
        case_id = len(self._members) + 1
        self._members[case_id] = [vector]
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
