"""Per-track decisions (known / unknown / undecided) from the open-set decisions of its faces."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cunan.matching.openset import OpenSetDecision

TrackVerdict = Literal["known", "unknown", "undecided"]


@dataclass(frozen=True, slots=True)
class TrackDecisionConfig:
    """Consensus rules over a track's best shots (see docs/pipeline.md).

    - ``min_faces``: good faces (passing the sighting quality thresholds) needed to decide
      at all; fewer gives ``undecided``.
    - ``min_agreeing``: good faces that must be decided ``known`` as the SAME person for a
      ``known`` track; they must also be at least ``min_agreeing_fraction`` of the good faces.
    - A good face decided ``known`` as ANOTHER person strongly contradicts: the track is
      ``undecided`` (the tracker may have joined two people, or two enrolled people look
      alike), never silently one of them.
    - ``unknown`` needs more than ``unknown_fraction`` of the good faces decided unknown and
      no person with ``min_agreeing`` agreeing faces (that would be conflicting evidence).
    - ``use_failed_quality``: also count faces failing the quality thresholds as good
      (for cameras whose faces are always small); off by default.
    """

    min_faces: int = 2
    min_agreeing: int = 2
    min_agreeing_fraction: float = 0.5
    unknown_fraction: float = 0.5
    use_failed_quality: bool = False

    def __post_init__(self) -> None:
        if self.min_faces < 1 or self.min_agreeing < 1:
            raise ValueError("min_faces and min_agreeing must be >= 1")
        if not 0.0 <= self.min_agreeing_fraction <= 1.0:
            raise ValueError("min_agreeing_fraction must be within [0, 1]")
        if not 0.0 <= self.unknown_fraction < 1.0:
            raise ValueError("unknown_fraction must be within [0, 1)")


@dataclass(frozen=True, slots=True)
class FaceVote:
    """One best shot's open-set decision and whether it was good enough to count."""

    decision: OpenSetDecision
    good: bool
    shot_score: float = 0.0
    quality_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrackDecision:
    """The decision for one track, with every number and reason that led to it.

    ``distance`` / ``score``: for ``known``, the mean over the agreeing faces; otherwise the
    nearest any good face came to an enrolled person (None with an empty gallery).
    """

    verdict: TrackVerdict
    identity: str | None
    distance: float | None
    score: float | None
    faces_total: int
    faces_good: int
    faces_agreeing: int
    votes: dict[str, int]
    reasons: tuple[str, ...]
    faces: tuple[FaceVote, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no embeddings, no names: identities are person ids)."""
        return {
            "verdict": self.verdict,
            "identity": self.identity,
            "distance": _finite(self.distance),
            "score": _finite(self.score),
            "faces_total": self.faces_total,
            "faces_good": self.faces_good,
            "faces_agreeing": self.faces_agreeing,
            "votes": dict(self.votes),
            "reasons": list(self.reasons),
            "faces": [
                {
                    "decision": f.decision.decision,
                    "identity": f.decision.identity,
                    "distance": _finite(f.decision.distance),
                    "runner_up_identity": f.decision.runner_up_identity,
                    "runner_up_distance": _finite(f.decision.runner_up_distance),
                    "margin": _finite(f.decision.margin),
                    "score": _finite(f.decision.score),
                    "good": f.good,
                    "shot_score": round(f.shot_score, 4),
                    "reasons": list(f.decision.reasons),
                    "quality_reasons": list(f.quality_reasons),
                }
                for f in self.faces
            ],
        }


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def decide_track(
    faces: Sequence[FaceVote], config: TrackDecisionConfig | None = None
) -> TrackDecision:
    """Apply the consensus rules of :class:`TrackDecisionConfig` to one track's faces."""
    config = config or TrackDecisionConfig()
    good = [f for f in faces if f.good or config.use_failed_quality]
    n_good = len(good)
    votes: dict[str, int] = {}
    for face in good:
        if face.decision.known and face.decision.identity is not None:
            votes[face.decision.identity] = votes.get(face.decision.identity, 0) + 1
    n_unknown = sum(1 for f in good if not f.decision.known)
    nearest = min((f.decision.distance for f in good), default=math.inf)
    nearest_face = next((f for f in good if f.decision.distance == nearest), None)
    reasons = [
        f"{len(faces)} best shots, {n_good} good enough to count (min_faces {config.min_faces})",
        f"votes: {votes or 'none'}; {n_unknown} unknown",
    ]

    def result(
        verdict: TrackVerdict,
        identity: str | None,
        agreeing: int,
        distance: float | None,
        score: float | None,
        why: str,
    ) -> TrackDecision:
        return TrackDecision(
            verdict=verdict,
            identity=identity,
            distance=distance,
            score=score,
            faces_total=len(faces),
            faces_good=n_good,
            faces_agreeing=agreeing,
            votes=votes,
            reasons=(*reasons, why),
            faces=tuple(faces),
        )

    near_score = (
        nearest_face.decision.score
        if nearest_face is not None and math.isfinite(nearest_face.decision.score)
        else None
    )
    near_distance = nearest if math.isfinite(nearest) else None
    if n_good < config.min_faces:
        # Faces too poor to judge (small, blurred, dark, flat) never decide: the track
        # waits for better ones, and without them it stays undecided (no credit, no case).
        poor = [f for f in faces if not f.good]
        why = f"undecided: {n_good} good faces < min_faces {config.min_faces}"
        if poor and not config.use_failed_quality:
            first = poor[0].quality_reasons
            why += f"; {len(poor)} faces too poor to judge" + (
                f" ({'; '.join(first)})" if first else ""
            )
        return result("undecided", None, 0, near_distance, near_score, why)
    if votes:
        # Most votes first; a tie goes to the closer mean distance.
        def rank(identity: str) -> tuple[int, float]:
            mean = _mean([f.decision.distance for f in good if f.decision.identity == identity])
            return (-votes[identity], mean if mean is not None else math.inf)

        best = min(votes, key=rank)
        agreeing = [f for f in good if f.decision.known and f.decision.identity == best]
        others = sorted(i for i in votes if i != best)
        mean_d = _mean([f.decision.distance for f in agreeing])
        mean_s = _mean([f.decision.score for f in agreeing])
        if others:
            return result(
                "undecided",
                None,
                len(agreeing),
                mean_d,
                mean_s,
                f"undecided: faces decided known as different people ({best} and "
                f"{', '.join(others)})",
            )
        enough = len(agreeing) >= config.min_agreeing
        share = len(agreeing) / n_good
        if enough and share >= config.min_agreeing_fraction:
            return result(
                "known",
                best,
                len(agreeing),
                mean_d,
                mean_s,
                f"known: {len(agreeing)} of {n_good} good faces agree "
                f"(min_agreeing {config.min_agreeing}, fraction {share:.2f} >= "
                f"{config.min_agreeing_fraction:.2f})",
            )
        if enough:
            return result(
                "undecided",
                None,
                len(agreeing),
                mean_d,
                mean_s,
                f"undecided: {len(agreeing)} faces agree on one person but only "
                f"{share:.2f} of the good faces (< {config.min_agreeing_fraction:.2f})",
            )
    unknown_share = n_unknown / n_good
    if unknown_share > config.unknown_fraction:
        return result(
            "unknown",
            None,
            n_unknown,
            near_distance,
            near_score,
            f"unknown: {n_unknown} of {n_good} good faces unknown "
            f"({unknown_share:.2f} > {config.unknown_fraction:.2f})",
        )
    return result(
        "undecided",
        None,
        0,
        near_distance,
        near_score,
        f"undecided: neither {config.min_agreeing} agreeing faces nor an unknown majority",
    )
