"""The live gallery: a vector index that follows the registry, answering open-set questions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from cunan.audit.log import AuditRecord, DetailValue, system_actor
from cunan.domain import FaceQuality
from cunan.matching.adaptive import Calibration, calibrate, prior_for_model
from cunan.matching.index import (
    DEFAULT_ANN_THRESHOLD,
    GalleryIndex,
    IndexKind,
    IndexSpec,
    build_index,
)
from cunan.matching.openset import (
    MAX_COHORT,
    MIN_COHORT_STD,
    OpenSetConfig,
    OpenSetDecision,
    centred_identity_distance,
    explain,
    pairwise_distances,
    quality_failures,
    score_candidates,
)

logger = logging.getLogger(__name__)

#: Called with (new, previous) each time the adaptive calibration changes.
CalibrationListener = Callable[["Calibration", "Calibration | None"], None]

#: Templates fetched from the index per probe before exact re-scoring; enough to hold the
#: best identity and a full cohort even when people have several templates each.
DEFAULT_CANDIDATES = 256


class TemplateSource(Protocol):
    """What the live gallery needs from the registry (``RegistryService`` provides it)."""

    def iter_templates(
        self, *, model_id: str | None = None, batch_size: int = 1000
    ) -> Iterable[Sequence[_StoredTemplate]]: ...

    def templates_of(
        self, person_id: int, *, skip_unreadable: bool = False
    ) -> Sequence[_StoredTemplate]: ...

    def last_change_seq(self) -> int: ...

    def count_templates(self, *, model_id: str | None = None) -> int: ...

    def changes_since(self, seq: int, *, limit: int = 10_000) -> Sequence[_Change]: ...


class _StoredTemplate(Protocol):
    @property
    def template_id(self) -> int: ...
    @property
    def person_id(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def vector(self) -> NDArray[np.float32]: ...


class _Change(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> object: ...
    @property
    def template_id(self) -> int: ...
    @property
    def person_id(self) -> int: ...
    @property
    def model_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """One enrolled person near the probe: the aggregated distance over their templates."""

    person_id: int
    distance: float


@dataclass(frozen=True, slots=True)
class Identification:
    """The answer for one probe face: the nearest people and the open-set decision."""

    candidates: tuple[Candidate, ...]
    decision: OpenSetDecision

    @property
    def person_id(self) -> int | None:
        """The recognised person, or ``None`` for a stranger."""
        if not self.decision.known or self.decision.identity is None:
            return None
        return int(self.decision.identity)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :meth:`LiveGallery.verify` found and repaired."""

    database_templates: int
    index_templates: int
    missing_added: int
    stale_removed: int

    @property
    def consistent(self) -> bool:
        return self.missing_added == 0 and self.stale_removed == 0


class LiveGallery:
    """Open-set identification over the registry's templates of one model, kept live.

    The index returns candidate templates; the few nearest people are then re-scored
    exactly from their templates held here, so decisions equal those of
    :func:`cunan.matching.openset.decide_many` over the whole gallery while search stays
    sub-linear. It implements the registry's ``TemplateListener`` (changes apply at
    once) and catches up from the registry's change feed (:meth:`catch_up`), so a crash
    between a database commit and an index update is repaired on the next start.

    With ``config.adaptive`` set, the gallery calibrates itself on its own people
    (:mod:`cunan.matching.adaptive`): ``min_score`` and ``fallback_max_distance`` come
    from the calibration. It re-calibrates as people are enrolled or removed (every
    change below ``always_below`` people, then on a relative change of
    ``recalibrate_change``), without a restart; each new calibration is passed to
    ``on_calibrated`` (the audit log, see :func:`audit_calibration`).
    """

    def __init__(
        self,
        *,
        model_id: str,
        dim: int,
        config: OpenSetConfig | None = None,
        index: GalleryIndex | None = None,
        candidates: int = DEFAULT_CANDIDATES,
        on_calibrated: CalibrationListener | None = None,
    ) -> None:
        self.model_id = model_id
        self.dim = dim
        self._config = config or OpenSetConfig()
        # Not `index or ...`: an empty index has len() 0 and would be thrown away.
        self._index = (
            index if index is not None else build_index("auto", dim=dim, model_id=model_id)
        )
        self._candidates = candidates
        self._lock = threading.RLock()
        self._person_of: dict[int, int] = {}
        self._vectors: dict[int, dict[int, NDArray[np.float32]]] = {}
        # Identity cohorts depend on every other person, so any change clears them; they
        # are recomputed for the people actually matched, one index search each.
        self._cohorts: dict[int, tuple[float, float]] = {}
        self.applied_seq = 0
        self._calibration: Calibration | None = None
        self._on_calibrated = on_calibrated
        # Set while a bulk load adds batches: one calibration at the end, not one per batch.
        self._deferred = False
        self._calibrating = threading.Lock()

    # -- building and following the registry ------------------------------------------------

    @classmethod
    def load(
        cls,
        source: TemplateSource,
        *,
        model_id: str,
        dim: int,
        config: OpenSetConfig | None = None,
        index: GalleryIndex | None = None,
        index_kind: IndexKind = "auto",
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        candidates: int = DEFAULT_CANDIDATES,
        on_calibrated: CalibrationListener | None = None,
        spec: IndexSpec | None = None,
    ) -> LiveGallery:
        """Build from the registry: every template of ``model_id``, then any changes since.

        Without an ``index``, one of ``index_kind`` is built; ``auto`` chooses exact search
        or the ANN index from the number of templates about to be loaded. Without
        ``on_calibrated``, an adaptive gallery records its calibrations in the source's
        audit log (its ``audit`` attribute, as ``RegistryService`` has), if any.
        """
        if on_calibrated is None and config is not None and config.adaptive is not None:
            audit = getattr(source, "audit", None)
            if audit is not None:
                on_calibrated = audit_calibration(audit, model_id)
        if index is None:
            # ``spec`` (the site's matching.* settings, external indexes included) wins
            # over the bare kind and threshold.
            chosen = spec or IndexSpec(kind=index_kind, ann_threshold=ann_threshold)
            index = chosen.build(
                dim=dim, model_id=model_id, expected_size=source.count_templates(model_id=model_id)
            )
        gallery = cls(
            model_id=model_id,
            dim=dim,
            config=config,
            index=index,
            candidates=candidates,
            on_calibrated=on_calibrated,
        )
        # Read the feed position first: a change committed while loading is then applied
        # again by catch_up, which is harmless because adding and removing are idempotent.
        start = source.last_change_seq()
        gallery._deferred = True
        try:
            for batch in source.iter_templates(model_id=model_id):
                gallery._add_many(
                    [(t.template_id, t.person_id, np.asarray(t.vector, np.float32)) for t in batch]
                )
        finally:
            gallery._deferred = False
        gallery.recalibrate(force=True)
        gallery.applied_seq = start
        gallery.catch_up(source)
        return gallery

    def on_added(
        self, template_id: int, person_id: int, vector: NDArray[np.float32], model_id: str
    ) -> None:
        """Registry listener: a template was committed."""
        if model_id != self.model_id:
            return
        self._add_many([(template_id, person_id, np.asarray(vector, dtype=np.float32))])

    def on_removed(self, template_ids: list[int]) -> None:
        """Registry listener: templates were deleted or purged."""
        self._remove_many(template_ids)

    def catch_up(self, source: TemplateSource) -> int:
        """Apply the registry's change feed since the last applied change; returns how many."""
        applied = 0
        while True:
            changes = source.changes_since(self.applied_seq)
            if not changes:
                return applied
            for change in changes:
                kind = getattr(change.kind, "value", change.kind)
                if change.model_id == self.model_id:
                    if kind == "added":
                        self._add_from_registry(source, change.person_id, change.template_id)
                    else:
                        self._remove_many([change.template_id])
                self.applied_seq = max(self.applied_seq, change.seq)
                applied += 1

    def verify(self, source: TemplateSource) -> VerifyReport:
        """Compare the index with the database (ids) and repair any difference."""
        database: dict[int, tuple[int, NDArray[np.float32]]] = {}
        for batch in source.iter_templates(model_id=self.model_id):
            for t in batch:
                database[t.template_id] = (t.person_id, np.asarray(t.vector, np.float32))
        with self._lock:
            held = {int(i) for i in self._index.ids()}
        missing = sorted(set(database) - held)
        stale = sorted(held - set(database))
        if missing:
            self._add_many([(i, database[i][0], database[i][1]) for i in missing])
        if stale:
            self._remove_many(stale)
        if missing or stale:
            logger.warning(
                "gallery %s disagreed with the database: %d added, %d removed",
                self.model_id,
                len(missing),
                len(stale),
            )
        return VerifyReport(
            database_templates=len(database),
            index_templates=len(held),
            missing_added=len(missing),
            stale_removed=len(stale),
        )

    def _add_from_registry(self, source: TemplateSource, person_id: int, template_id: int) -> None:
        # A template that does not decrypt is left out (and reported once by the source):
        # one damaged row must not stop the gallery from following the registry.
        for t in source.templates_of(person_id, skip_unreadable=True):
            if t.template_id == template_id and t.model_id == self.model_id:
                self._add_many([(t.template_id, t.person_id, np.asarray(t.vector, np.float32))])
                return
        # Added then deleted before we caught up: the later "removed" change settles it.

    def _add_many(self, rows: Sequence[tuple[int, int, NDArray[np.float32]]]) -> None:
        if not rows:
            return
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        vectors = np.vstack([r[2].reshape(1, -1) for r in rows]).astype(np.float32)
        with self._lock:
            self._index.add(ids, vectors)
            for template_id, person_id, vector in rows:
                old = self._person_of.get(template_id)
                if old is not None and old != person_id:
                    self._drop_template(template_id)
                self._person_of[template_id] = person_id
                self._vectors.setdefault(person_id, {})[template_id] = vector.reshape(-1)
            self._cohorts.clear()
            due = self._calibration_due()
        if due:
            # Outside the gallery lock: a large gallery's calibration takes seconds, and
            # identification goes on with the previous thresholds meanwhile.
            self.recalibrate(force=True)

    def _remove_many(self, template_ids: Iterable[int]) -> None:
        ids = [int(i) for i in template_ids]
        if not ids:
            return
        with self._lock:
            self._index.remove(np.asarray(ids, dtype=np.int64))
            for template_id in ids:
                self._drop_template(template_id)
            self._cohorts.clear()
            due = self._calibration_due()
        if due:
            # Outside the gallery lock: a large gallery's calibration takes seconds, and
            # identification goes on with the previous thresholds meanwhile.
            self.recalibrate(force=True)

    def _drop_template(self, template_id: int) -> None:
        person = self._person_of.pop(template_id, None)
        if person is None:
            return
        held = self._vectors.get(person)
        if held is not None:
            held.pop(template_id, None)
            if not held:
                del self._vectors[person]

    # -- adaptive calibration -----------------------------------------------------------------

    @property
    def config(self) -> OpenSetConfig:
        """The decision rules (before calibration); settable while running."""
        return self._config

    @config.setter
    def config(self, value: OpenSetConfig) -> None:
        # New rules (a settings page change): the calibration was made for the old ones,
        # so the next identification calibrates again (and that is audited).
        with self._lock:
            self._config = value
            self._cohorts.clear()
            self._calibration = None

    @property
    def calibration(self) -> Calibration | None:
        """The calibration in force (None: the gallery is not adaptive)."""
        with self._lock:
            return self._calibration

    def _calibration_due(self) -> bool:
        adaptive = self.config.adaptive
        if adaptive is None or self._deferred:
            return False
        current = self._calibration
        people = len(self._vectors)
        if current is not None and people == current.people:
            return False
        return (
            current is None
            or people < adaptive.always_below
            or abs(people - current.people) >= adaptive.recalibrate_change * current.people
        )

    def recalibrate(self, *, force: bool = False) -> Calibration | None:
        """Calibrate on the people enrolled now (adaptive only).

        Without ``force``, only when the number of people changed since the last one.
        """
        adaptive = self.config.adaptive
        if adaptive is None:
            return None
        # One calibration at a time, each on a snapshot taken after the previous one: the
        # last change's calibration is the one left in force.
        with self._calibrating:
            with self._lock:
                previous = self._calibration
                if not force and previous is not None and previous.people == len(self._vectors):
                    return previous
                people = sorted(self._vectors)
                held = [list(self._vectors[p].values()) for p in people]
            vectors = (
                np.vstack([v for templates in held for v in templates]).astype(np.float32)
                if held
                else np.zeros((0, self.dim), dtype=np.float32)
            )
            counts = np.asarray([len(t) for t in held], dtype=np.int64)
            starts = (np.cumsum(counts) - counts).astype(np.int64)
            prior = prior_for_model(adaptive.prior, self.model_id, self.dim)
            new = calibrate(vectors, starts, self.config, adaptive, prior=prior)
            with self._lock:
                self._calibration = new
        logger.info(
            "gallery %s calibrated: %d people, min_score %.3f, fallback distance %.3f",
            self.model_id,
            new.people,
            new.min_score,
            new.fallback_max_distance,
        )
        if self._on_calibrated is not None:
            self._on_calibrated(new, previous)
        return new

    # -- questions ----------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._person_of)

    @property
    def people(self) -> int:
        with self._lock:
            return len(self._vectors)

    def nearest_template(self, vectors: NDArray[np.float32]) -> tuple[int, float] | None:
        """The person owning the template nearest to any of ``vectors`` and that exact
        distance (no aggregation, no decision): the enrolment same-face rule asks this of
        the live gallery instead of decrypting every template. None when empty."""
        probes = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            if not self._person_of or len(probes) == 0:
                return None
            # A few neighbours each: the index may be approximate; the exact distance is
            # recomputed from the templates held here.
            result = self._index.search(probes, min(len(self._person_of), 8))
            best: tuple[int, float] | None = None
            for probe, row_ids in zip(probes, result.ids, strict=True):
                for template_id in row_ids.tolist():
                    person = self._person_of.get(int(template_id))
                    if person is None:
                        continue
                    held = self._vectors[person][int(template_id)]
                    distance = float(np.linalg.norm(probe - held))
                    if best is None or distance < best[1]:
                        best = (person, distance)
            return best

    def nearest_people(self, vectors: NDArray[np.float32], top: int) -> list[tuple[int, float]]:
        """The ``top`` registered people nearest to any of ``vectors`` (several faces of one
        unknown person), each with the exact distance of their nearest template pair,
        nearest first. No decision: this is what staff compare a case's faces with."""
        probes = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            if not self._person_of or len(probes) == 0 or top <= 0:
                return []
            found: dict[int, float] = {}
            for person in self._candidate_people(probes, None):
                matrix = np.vstack(list(self._vectors[person].values()))
                found[person] = float(pairwise_distances(probes, matrix).min())
        return sorted(found.items(), key=lambda item: (item[1], item[0]))[:top]

    def identify(
        self,
        probes: NDArray[np.float32],
        *,
        qualities: Sequence[FaceQuality | None] | None = None,
        top: int = 5,
    ) -> list[Identification]:
        """Nearest people and the open-set decision for each probe row."""
        probes = np.asarray(probes, dtype=np.float32)
        if probes.ndim == 1:
            probes = probes.reshape(1, -1)
        if probes.ndim != 2 or probes.shape[1] != self.dim:
            raise ValueError(
                f"probes must be (n, {self.dim}) embeddings of {self.model_id}, "
                f"got shape {probes.shape}"
            )
        if qualities is not None and len(qualities) != len(probes):
            raise ValueError("need one quality (or None) per probe")
        config = self.config
        gate = config.quality
        failures: list[tuple[str, ...]] = [()] * len(probes)
        if gate is not None and qualities is not None:
            failures = [() if q is None else quality_failures(q, gate) for q in qualities]
        if config.adaptive is not None and self.calibration is None:
            # Not under the gallery lock: recalibrate takes it after its own (lock order).
            self.recalibrate(force=True)
        with self._lock:
            if config.adaptive is not None:
                assert self._calibration is not None
                config = self._calibration.config(config)
            return [
                self._identify_one(probe, config, failures[i], top)
                for i, probe in enumerate(probes)
            ]

    def _person_distances(self, probe: NDArray[np.float32], people: Sequence[int]) -> list[float]:
        out = []
        for person in people:
            matrix = np.vstack(list(self._vectors[person].values()))
            d = pairwise_distances(probe.reshape(1, -1), matrix)[0]
            out.append(float(d.min() if self.config.aggregation == "min" else d.mean()))
        return out

    def _candidate_people(self, queries: NDArray[np.float32], exclude: int | None) -> list[int]:
        # Room for the most-photographed person's templates on top of the candidates, so
        # one person with many templates cannot crowd everybody else out of the top k.
        most = max((len(t) for t in self._vectors.values()), default=0)
        k = min(len(self._person_of), self._candidates + most)
        if k == 0:
            return []
        result = self._index.search(queries, k)
        order: dict[int, float] = {}
        for row_ids, row_d in zip(result.ids, result.distances, strict=True):
            for template_id, dist in zip(row_ids, row_d, strict=True):
                person = self._person_of.get(int(template_id))
                if person is None or person == exclude:
                    continue
                if dist < order.get(person, np.inf):
                    order[person] = float(dist)
        return sorted(order, key=order.__getitem__)

    def _identity_cohort(self, person: int) -> tuple[float, float]:
        """Mean and std of the person's nearest other people (nearest template pair)."""
        cached = self._cohorts.get(person)
        if cached is not None:
            return cached
        kk = min(self.config.cohort_k, MAX_COHORT, max(len(self._vectors) - 1, 0))
        if kk == 0:
            stats = (float("nan"), float("nan"))
        else:
            held = self._vectors[person]
            own = np.vstack(list(held.values()))
            most = max(len(t) for t in self._vectors.values())
            # One index search per own template, deep enough to be exact on an exact
            # index: if Q is among the kk nearest people, fewer than kk people (each with
            # at most ``most`` templates) and the person's own templates are nearer to the
            # template t of Q's nearest pair than Q's template is, so it is in t's top k.
            k = min(len(self._person_of), len(held) + kk * most)
            result = self._index.search(own, k)
            per_person: dict[int, float] = {}
            for row_ids, row_d in zip(result.ids, result.distances, strict=True):
                for template_id, dist in zip(row_ids.tolist(), row_d.tolist(), strict=True):
                    other = self._person_of.get(template_id)
                    if other is None or other == person:
                        continue
                    if dist < per_person.get(other, np.inf):
                        per_person[other] = dist
            near = np.sort(np.fromiter(per_person.values(), dtype=np.float32))[:kk]
            if near.size == 0:
                stats = (float("nan"), float("nan"))
            else:
                stats = (float(near.mean()), float(max(near.std(), MIN_COHORT_STD)))
        self._cohorts[person] = stats
        return stats

    def _identify_one(
        self,
        probe: NDArray[np.float32],
        config: OpenSetConfig,
        quality_failed: tuple[str, ...],
        top: int,
    ) -> Identification:
        kk = max(min(config.cohort_k, len(self._vectors) - 1), 0)
        # A few extra people beyond the cohort: the index orders by nearest template, the
        # decision by the configured aggregation, and the two orders can differ slightly.
        people = self._candidate_people(probe.reshape(1, -1), exclude=None)[: kk + 1 + 8]
        distances = self._person_distances(probe, people)
        ranked = sorted(zip(people, distances, strict=True), key=lambda pd: pd[1])
        names = tuple(str(p) for p, _ in ranked)
        nan = np.full(1, np.nan, dtype=np.float32)
        if ranked:
            d1 = np.asarray([ranked[0][1]], dtype=np.float32)
            id_mean, id_std = self._identity_cohort(ranked[0][0])
            identity_cohort = (
                np.asarray([id_mean], dtype=np.float32),
                np.asarray([id_std], dtype=np.float32),
            )
        else:
            d1 = np.full(1, np.inf, dtype=np.float32)
            identity_cohort = (nan, nan)
        d2 = np.asarray([ranked[1][1] if len(ranked) > 1 else np.inf], dtype=np.float32)
        cohort = np.asarray([d for _, d in ranked[1 : kk + 1]], dtype=np.float32)
        probe_cohort = (
            (
                np.asarray([cohort.mean()], dtype=np.float32),
                np.asarray([max(cohort.std(), MIN_COHORT_STD)], dtype=np.float32),
            )
            if len(cohort)
            else (nan, nan)
        )
        population = None
        if ranked and config.population_centre is not None:
            templates = np.vstack(list(self._vectors[ranked[0][0]].values()))
            population = centred_identity_distance(
                probe.reshape(1, -1), templates, config.population_centre, config.aggregation
            )
        arrays = score_candidates(
            best=np.asarray([0 if ranked else -1], dtype=np.int64),
            distance=d1,
            runner_up=np.asarray([1 if len(ranked) > 1 else -1], dtype=np.int64),
            runner_up_distance=d2,
            identity_cohort=identity_cohort,
            probe_cohort=probe_cohort,
            config=config,
            quality_ok=np.asarray([not quality_failed], dtype=bool),
            population_distance=population,
        )
        decision = explain(names, arrays, 0, config, quality_failed)
        return Identification(
            candidates=tuple(Candidate(p, d) for p, d in ranked[:top]),
            decision=decision,
        )


#: The audit action of a new adaptive calibration.
CALIBRATE_ACTION = "matching.calibrate"


class _AuditSink(Protocol):
    def record(
        self,
        action: str,
        *,
        actor: str,
        target_type: str | None = None,
        target_id: str | int | None = None,
        details: Mapping[str, DetailValue] | None = None,
        session: Session | None = None,
    ) -> object: ...

    def recent(
        self, *, limit: int = 50, action: str | None = None, actor: str | None = None
    ) -> Sequence[AuditRecord]: ...


def audit_calibration(audit: _AuditSink, model_id: str) -> CalibrationListener:
    """A listener recording each calibration that differs from the last one recorded.

    Every process that loads the gallery calibrates it; the same gallery gives the same
    numbers, so only real changes (people enrolled or removed, new settings) are entered.
    """

    def record(new: Calibration, previous: Calibration | None) -> None:
        details: dict[str, DetailValue] = dict(new.as_details())
        try:
            for entry in audit.recent(limit=50, action=CALIBRATE_ACTION):
                if entry.target_id == model_id:
                    if {key: entry.details.get(key) for key in details} == details:
                        return
                    break
            details["previous_min_score"] = (
                None if previous is None else round(previous.min_score, 4)
            )
            audit.record(
                CALIBRATE_ACTION,
                actor=system_actor(),
                target_type="model",
                target_id=model_id,
                details=details,
            )
        except Exception:
            # The calibration is in force either way; a failing audit write is reported.
            logger.warning("could not record the gallery calibration", exc_info=True)

    return record
