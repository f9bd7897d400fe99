"""The cases service: online grouping, lifecycle, outcomes (补录 ...), suppression and alerts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from cunan.audit.log import AuditAction, AuditLog, DetailValue
from cunan.cases.grouping import KeptMatrix, nearest_distance
from cunan.cases.settings import CaseSettings
from cunan.cases.views import CaseMember, CaseView, EnrolResult, SightingOutcome
from cunan.errors import Conflict, NotFound
from cunan.notify.dispatcher import NotificationDispatcher
from cunan.notify.message import Notification
from cunan.pipeline.store import crop_context, embedding_context
from cunan.registry.records import (
    ConsentInput,
    NewPerson,
    PhotoInput,
    TemplateInput,
    TemplateQuality,
)
from cunan.registry.service import NewTenancy, RegistryService
from cunan.security.cipher import FieldCipher
from cunan.storage.case_tables import Case
from cunan.storage.cases_repository import EMPTY_DIGEST, CaseRepository, MemberDigest
from cunan.storage.database import Database
from cunan.storage.enums import TemplateSource
from cunan.storage.pipeline_tables import Sighting

logger = logging.getLogger(__name__)

Vector = NDArray[np.float32]

ACTIVE = ("open", "assigned")
#: Outcomes that make a case's face a registered person (补录, "is registered person X").
KNOWN_OUTCOMES = ("enrol", "person")
#: How often grouping one sighting starts over because the case it was about to join changed
#: under it (merged, escalated, reopened, split, its members changed); each round needs
#: another staff action or, on PostgreSQL, another grouping attaching to the same case.
MAX_REGROUPS = 5


class CaseNotFoundError(LookupError, NotFound):
    """No case with that id."""


class CaseStateError(ValueError, Conflict):
    """The transition is not allowed from the case's current status."""


class SightingNotFoundError(LookupError, NotFound):
    """An event names a sighting that no longer exists (deleted or purged before grouping)."""


class _CaseChangedError(Exception):
    """The case a sighting was about to join changed while grouping waited for its lock:
    roll back and group the sighting afresh."""


def quiet_face_context(quiet_id: int, case_id: int, model_id: str) -> bytes:
    """Associated data binding a quiet face's ciphertext to its row."""
    return f"case-quiet-face:{quiet_id}:{case_id}:{model_id}".encode()


@dataclass(frozen=True, slots=True)
class _Alert:
    kind: str
    case_id: int
    sighting_id: int
    camera_name: str
    sightings: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CaseService:
    """Cases of unknown sightings. Every transition is one transaction with its audit entry.

    Grouping keeps, per active case, the embeddings of its ``max_kept_per_case`` sightings
    with the most good faces; they are held in memory in one matrix per model
    (:class:`~cunan.cases.grouping.KeptMatrix`), refreshed per case ``version``, so a new
    sighting costs one small query plus one matrix product, however many cases are open.
    """

    def __init__(
        self,
        database: Database,
        cipher: FieldCipher,
        registry: RegistryService,
        settings: CaseSettings | None = None,
        *,
        audit: AuditLog | None = None,
        dispatcher: NotificationDispatcher | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.database = database
        self.cipher = cipher
        self.registry = registry
        self.settings = settings or CaseSettings()
        self.audit = audit or AuditLog(database, clock=clock)
        self.dispatcher = dispatcher
        self._clock = clock
        # Candidates' kept embeddings per model id; the lock serialises groupings of this
        # service that run at the same time (refresh and product are one step).
        self._kept: dict[str, KeptMatrix] = {}
        self._kept_lock = threading.Lock()
        self._quiet: dict[int, Vector] = {}

    @property
    def clock(self) -> Callable[[], datetime]:
        """The service's clock (what the consumer's parking records times with)."""
        return self._clock

    # -- grouping ----------------------------------------------------------------------------

    def handle_sighting(self, sighting_id: int) -> SightingOutcome | None:
        """Group one stored sighting; None when it raises nothing (known, undecided, no
        embedding) or was handled before (events are delivered at least once).

        A sighting that is gone raises :class:`SightingNotFoundError`: its event cannot be
        grouped, and saying so lets the consumer set it aside where staff see it.

        The case a sighting joins is locked and re-read before the sighting is attached, so
        a case closed at the same moment is never joined as if it were open; see
        :meth:`_join_locked`."""
        for _ in range(MAX_REGROUPS):
            try:
                return self._group(sighting_id)
            except _CaseChangedError as changed:
                logger.info("sighting %d: %s; grouping it again", sighting_id, changed)
        raise RuntimeError(
            f"sighting {sighting_id}: the cases it matched kept changing during "
            f"{MAX_REGROUPS} attempts to group it"
        )

    def _group(self, sighting_id: int) -> SightingOutcome | None:
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            if repo.membership(sighting_id) is not None:
                return None
            row = repo.sighting(sighting_id)
            if row is None:
                raise SightingNotFoundError(
                    f"sighting {sighting_id} no longer exists (deleted or purged before it "
                    "was grouped)"
                )
            if row.decision != "unknown" or row.embedding_ciphertext is None:
                # A known person never raises a case; undecided tracks have too few faces.
                return None
            vector = self._sighting_vector(row)
            seen = row.started_at
            quiet = self._quiet_match(repo, vector, row.model_id, seen)
            if quiet is not None:
                case_id, kind, distance = quiet
                # The quiet face is only as good as its outcome: a reopen deletes it.
                if self._join_locked(repo, case_id, seen) != kind:
                    raise _CaseChangedError(f"case {case_id} is no longer quiet ({kind})")
                self._attach(repo, case_id, row, distance, alerted=False, suppressed_by=kind)
                outcome = SightingOutcome(sighting_id, case_id, False, False, kind, distance)
                alert = None
            else:
                outcome, alert = self._link_or_open(repo, row, vector)
            if alert is not None:
                # Announced to open pages (server-sent events) in the same transaction as
                # the case change: a page never hears of a case that was rolled back.
                repo.announce(
                    f"live.{alert.kind}",
                    {
                        "case_id": alert.case_id,
                        "sighting_id": alert.sighting_id,
                        "camera": alert.camera_name,
                        "sightings": alert.sightings,
                    },
                )
        if alert is not None:
            self._send(alert)
        logger.debug("sighting %d -> %s", sighting_id, outcome)
        return outcome

    def _sighting_vector(self, row: Sighting) -> Vector:
        assert row.embedding_ciphertext is not None
        return self._embedding(row.id, row.model_id, row.embedding_ciphertext)

    def _embedding(self, sighting_id: int, model_id: str, ciphertext: bytes) -> Vector:
        data = self.cipher.decrypt(
            ciphertext,
            embedding_context(sighting_id, model_id),
            what=f"sighting {sighting_id} embedding",
        )
        return np.frombuffer(data, dtype="<f4").astype(np.float32)

    def _quiet_match(
        self, repo: CaseRepository, vector: Vector, model_id: str, seen: datetime
    ) -> tuple[int, str, float] | None:
        best: tuple[int, str, float] | None = None
        for face in repo.quiet_faces(model_id):
            if face.kind == "visitor" and face.expires_at is not None and face.expires_at <= seen:
                continue  # expired (not yet purged): no longer quiet
            threshold = (
                self.settings.negative_threshold
                if face.kind == "negative"
                else self.settings.visitor_threshold
            )
            distance = nearest_distance(vector, self._quiet_vector(repo, face.id)[None, :])
            if distance <= threshold and (best is None or distance < best[2]):
                best = (face.case_id, face.kind, distance)
        return best

    def _quiet_vector(self, repo: CaseRepository, quiet_id: int) -> Vector:
        cached = self._quiet.get(quiet_id)
        if cached is not None:
            return cached
        row = repo.quiet_face(quiet_id)
        assert row is not None
        data = self.cipher.decrypt(
            row.ciphertext,
            quiet_face_context(row.id, row.case_id, row.model_id),
            what=f"case quiet face {row.id}",
        )
        vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
        self._quiet[quiet_id] = vector  # immutable rows: safe to cache by id
        return vector

    def _kept_vectors(self, repo: CaseRepository, case_ids: Sequence[int]) -> dict[int, Vector]:
        """The kept embeddings of these cases, read now in one query (rows of the sightings
        grouping links against; none for a case without any)."""
        found = repo.kept_embeddings(case_ids, limit=self.settings.max_kept_per_case)
        empty = np.zeros((0, 0), dtype=np.float32)
        return {
            case_id: (
                np.stack([self._embedding(k.sighting_id, k.model_id, k.ciphertext) for k in rows])
                if (rows := found.get(case_id))
                else empty
            )
            for case_id in case_ids
        }

    def _nearest_candidate(
        self, repo: CaseRepository, row: Sighting, vector: Vector
    ) -> tuple[int | None, int, float]:
        """(case id, its version, linkage distance) of the nearest candidate case (id None:
        no candidate has embeddings); ties go to the first candidate in the listing's order.

        The matrix of the model's candidates is brought up to date first: a case whose
        version changed (a sighting joined, split, merge, reopen) is read again, and cases
        that are no longer candidates are forgotten once they are a quarter of it."""
        candidates = self._candidates(repo, row)
        if not candidates:
            return None, 0, float("inf")
        versions = dict(candidates)
        order = list(versions)
        with self._kept_lock:
            matrix = self._kept.get(row.model_id)
            if matrix is None or matrix.dim != vector.shape[0]:
                matrix = KeptMatrix(vector.shape[0], self.settings.max_kept_per_case)
                self._kept[row.model_id] = matrix
            stale = [c for c, v in versions.items() if matrix.version(c) != v]
            if stale:
                # After a start, every case at once (one query); later the one or two a
                # sighting, split or merge changed.
                for case_id, kept in self._kept_vectors(repo, stale).items():
                    matrix.put(case_id, versions[case_id], kept)
            if len(matrix) - len(order) > max(64, len(order) // 4):
                matrix.retain(order)
            link = matrix.nearest(vector, order, self.settings.linkage)
        if link.case_id is None:
            return None, 0, float("inf")
        return link.case_id, versions[link.case_id], link.distance

    def _candidates(self, repo: CaseRepository, row: Sighting) -> list[tuple[int, int]]:
        """(id, version) of the cases a sighting may join: the active ones, and those a
        补录 / "is person X" closed no earlier than ``known_lag_minutes`` before the
        sighting started.

        The camera decided the sighting when its track ended, against the gallery it had
        then; a person enrolled from a case reaches the galleries at commit (in-process) or
        at the next change-feed poll. So a sighting that started before the close plus that
        lag may have been decided "unknown" only because the gallery did not know the person
        yet, however late the consumer reads it (a backlog, a restart): matching such a
        case, it is the person, and :meth:`_join_locked` keeps it quiet as ``known``. Later
        sightings were decided against a gallery that had the person; if the matcher still
        said unknown, staff should see them, so those cases are not candidates then."""
        active = repo.case_versions(model_id=row.model_id, statuses=ACTIVE)
        lag = timedelta(minutes=self.settings.known_lag_minutes)
        known = repo.closed_case_versions(
            model_id=row.model_id, outcomes=KNOWN_OUTCOMES, closed_after=row.started_at - lag
        )
        return active + known

    def _link_or_open(
        self, repo: CaseRepository, row: Sighting, vector: Vector
    ) -> tuple[SightingOutcome, _Alert | None]:
        best_id, best_version, best_distance = self._nearest_candidate(repo, row, vector)
        if best_id is not None and best_distance <= self.settings.link_threshold:
            quiet = self._join_locked(repo, best_id, row.started_at, matched_version=best_version)
            if quiet is not None:
                # Closed while this sighting waited for it, or a 补录 / person X the camera
                # did not know of yet when it decided: it follows the outcome's rule.
                self._attach(repo, best_id, row, best_distance, alerted=False, suppressed_by=quiet)
                return SightingOutcome(row.id, best_id, False, False, quiet, best_distance), None
            cooldown = timedelta(minutes=self.settings.cooldown_minutes)
            last_alert = repo.last_alert_at(best_id, row.camera_name)
            cooling = last_alert is not None and abs(row.started_at - last_alert) < cooldown
            case = self._attach(
                repo,
                best_id,
                row,
                best_distance,
                alerted=not cooling,
                suppressed_by="cooldown" if cooling else None,
            )
            outcome = SightingOutcome(
                row.id,
                best_id,
                False,
                not cooling,
                "cooldown" if cooling else None,
                best_distance,
            )
            alert = (
                None
                if cooling
                else _Alert("case.sighted", best_id, row.id, row.camera_name, case.sightings_count)
            )
            return outcome, alert
        case = repo.open_case(
            model_id=row.model_id,
            village_id=None,
            opened_at=self._clock(),
            first_seen_at=row.started_at,
            last_seen_at=row.started_at,
        )
        self._attach(repo, case.id, row, None, alerted=True, suppressed_by=None)
        self.audit.record(
            AuditAction.CASE_TRANSITION,
            actor="system",
            target_type="case",
            target_id=case.id,
            details={"event": "open", "to_status": "open", "sighting_id": row.id},
            session=repo.session,
        )
        return (
            SightingOutcome(row.id, case.id, True, True, None, None),
            _Alert("case.opened", case.id, row.id, row.camera_name, 1),
        )

    def _join_locked(
        self,
        repo: CaseRepository,
        case_id: int,
        seen: datetime,
        *,
        matched_version: int | None = None,
    ) -> str | None:
        """Lock the case a sighting is about to join, re-read it, and say how it joins.

        The candidates (:meth:`_candidates`) were read without locks, and a staff member may
        have closed, merged or reopened the case since (on PostgreSQL the lock waits for
        that transaction to end). None: open or assigned (still, or reopened), join it as
        usual. Otherwise (closed meanwhile, or already closed by a 补录 / "is person X" the
        camera did not know of when it decided) the sighting is
        handled as if it had arrived after the change: quiet if the outcome keeps the face
        quiet (``visitor`` until the visitor's date, ``negative`` after a false alarm,
        ``known`` after 补录 or "is person X": the face is a registered person now, the
        matcher only learned it after deciding this track); regrouped afresh
        (:class:`_CaseChangedError`) if it does not (escalated, visitor expired, merged: its
        sightings live on in the target).

        ``matched_version``: the case's ``version`` the linkage distance was computed
        against. A different version under the lock means its members changed meanwhile
        (split, merged into, another sighting attached, or reopened), so that distance, and
        the choice of this case over the others, is stale: regrouped afresh as well.
        """
        case = self._case(repo, case_id, lock=True)
        if matched_version is not None and case.version != matched_version:
            # Not re-decided here: the nearest case may now be another one, possibly of a
            # lower id, and locking it while holding this one would break the lowest-id-first
            # order merge takes its two locks in. Rolling back releases this lock first.
            raise _CaseChangedError(
                f"case {case_id} changed members (version {matched_version} -> "
                f"{case.version}) after the sighting was matched to it"
            )
        if case.status in ACTIVE:
            return None
        kind = self._quiet_kind(case, seen)
        if kind is None:
            outcome = f", {case.outcome}" if case.outcome else ""
            raise _CaseChangedError(f"case {case_id} became {case.status}{outcome}")
        return kind

    @staticmethod
    def _quiet_kind(case: Case, seen: datetime) -> str | None:
        """Why a sighting of a closed case's face stays quiet (None: it does not)."""
        if case.status != "closed":
            return None
        if case.outcome == "false_alarm":
            return "negative"
        if case.outcome == "visitor":
            until = case.visitor_until
            return "visitor" if until is not None and seen < until else None
        if case.outcome in KNOWN_OUTCOMES:
            return "known"
        return None

    def _attach(
        self,
        repo: CaseRepository,
        case_id: int,
        row: Sighting,
        distance: float | None,
        *,
        alerted: bool,
        suppressed_by: str | None,
    ) -> Case:
        repo.add_member(
            case_id,
            row,
            distance=distance,
            alerted=alerted,
            suppressed_by=suppressed_by,
            added_at=self._clock(),
        )
        return self._refresh_counts(repo, case_id)

    def _refresh_counts(self, repo: CaseRepository, case_id: int) -> Case:
        case = self._case(repo, case_id)
        span = repo.member_span(case_id)
        case.sightings_count = span.count
        if span.first_seen_at is not None and span.last_seen_at is not None:
            case.first_seen_at, case.last_seen_at = span.first_seen_at, span.last_seen_at
        case.version += 1
        case.updated_at = self._clock()
        repo.flush()
        return case

    def _send(self, alert: _Alert) -> None:
        if self.dispatcher is None:
            return
        what = "new unknown-person case" if alert.kind == "case.opened" else "case seen again"
        notification = Notification(
            kind=alert.kind,
            title=f"Case {alert.case_id}: {what}",
            body=f"Case {alert.case_id}: unknown person at camera {alert.camera_name} "
            f"({alert.sightings} sighting(s)). Please verify.",
            # Ids and counts only: no crop, no embedding (DOMAIN.md privacy rules).
            data={
                "case_id": alert.case_id,
                "sighting_id": alert.sighting_id,
                "camera": alert.camera_name,
                "sightings": alert.sightings,
            },
            created_at=self._clock(),
        )
        try:
            self.dispatcher.dispatch(notification)
        except Exception:
            logger.exception("alert for case %d not dispatched", alert.case_id)

    # -- reading -----------------------------------------------------------------------------

    @staticmethod
    def _case(repo: CaseRepository, case_id: int, *, lock: bool = False) -> Case:
        """The case; ``lock`` for a transition: on PostgreSQL the row stays locked until the
        transaction ends, so two staff members recording outcomes for one case run one
        after the other and the second sees the first's status (no lost update). SQLite's
        BEGIN IMMEDIATE already serialises writers. Take it before the audit append lock
        (which every transition takes last), so lock order is always case -> audit."""
        case = repo.case(case_id, for_update=lock)
        if case is None:
            raise CaseNotFoundError(f"no case {case_id}")
        return case

    @staticmethod
    def _members(repo: CaseRepository, case_id: int) -> list[CaseMember]:
        return [
            CaseMember(
                sighting_id=r.sighting_id,
                camera_id=r.camera_id,
                camera_name=r.camera_name,
                seen_at=r.seen_at,
                faces_used=r.faces_used,
                distance=r.distance,
                alerted=r.alerted,
                suppressed_by=r.suppressed_by,
            )
            for r in repo.members(case_id)
        ]

    @staticmethod
    def _best_first(members: Sequence[CaseMember]) -> list[CaseMember]:
        """Sightings with the most good faces first, then the most recent."""
        return sorted(members, key=lambda m: (-m.faces_used, -m.seen_at.timestamp()))

    def _views(self, repo: CaseRepository, cases: Sequence[Case], now: datetime) -> list[CaseView]:
        """Views of ``cases``, their sightings summarised in SQL for all of them at once."""
        digests = repo.member_digests(
            [c.id for c in cases],
            utc_offset_s=round(self.settings.local_utc_offset_hours * 3600),
            best=self.settings.best_crops,
        )
        return [self._view_of(c, digests.get(c.id, EMPTY_DIGEST), now) for c in cases]

    def _view(self, repo: CaseRepository, case: Case, now: datetime) -> CaseView:
        return self._views(repo, [case], now)[0]

    @staticmethod
    def _view_of(case: Case, digest: MemberDigest, now: datetime) -> CaseView:
        return CaseView(
            id=case.id,
            status=case.status,
            model_id=case.model_id,
            sightings=digest.count,
            distinct_days=digest.distinct_days,
            cameras=digest.cameras,
            first_seen_at=case.first_seen_at,
            last_seen_at=case.last_seen_at,
            opened_at=case.opened_at,
            assigned_to=case.assigned_to,
            assigned_at=case.assigned_at,
            deadline_at=case.deadline_at,
            overdue=case.status == "assigned"
            and case.deadline_at is not None
            and case.deadline_at < now,
            outcome=case.outcome,
            outcome_by=case.outcome_by,
            outcome_at=case.outcome_at,
            person_id=case.person_id,
            visitor_until=case.visitor_until,
            escalation_reason=case.escalation_reason,
            closed_at=case.closed_at,
            merged_into_id=case.merged_into_id,
            best_sighting_ids=digest.best_sighting_ids,
        )

    # Reads below use read-only transactions: on SQLite they never wait for the writer
    # lock that camera writers and case grouping hold (a page view must not queue).

    def get(self, case_id: int) -> CaseView:
        with self.database.read() as session:
            repo = CaseRepository(session)
            return self._view(repo, self._case(repo, case_id), self._clock())

    def kept_vectors(self, case_id: int) -> tuple[str, Vector]:
        """The model id and the kept embeddings of a case (the faces grouping links
        against; an empty matrix for a case without any), read in a read-only transaction."""
        with self.database.read() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id)
            return case.model_id, self._kept_vectors(repo, [case_id])[case_id]

    def get_many(self, case_ids: Sequence[int]) -> list[CaseView]:
        """Views of the cases with these ids that exist, in the order given (one page of a
        listing: a fixed number of queries however many cases and sightings)."""
        with self.database.read() as session:
            repo = CaseRepository(session)
            return self._views(repo, repo.cases_by_ids(case_ids), self._clock())

    def members(self, case_id: int) -> list[CaseMember]:
        with self.database.read() as session:
            repo = CaseRepository(session)
            self._case(repo, case_id)
            return self._members(repo, case_id)

    def list_cases(self, *, statuses: Sequence[str] = ACTIVE, limit: int = 200) -> list[CaseView]:
        """Cases of the given statuses, frequent strangers first (distinct days, sightings)."""
        now = self._clock()
        with self.database.read() as session:
            repo = CaseRepository(session)
            views = self._views(repo, repo.cases(statuses), now)
        return sorted(views, key=lambda v: v.rank_key)[:limit]

    def best_crops(self, case_id: int, *, limit: int | None = None) -> list[tuple[int, bytes]]:
        """The case's best crops (JPEG), decrypted on demand: (sighting id, bytes)."""
        view = self.get(case_id)
        ids = view.best_sighting_ids[: limit or self.settings.best_crops]
        crops: list[tuple[int, bytes]] = []
        with self.database.read() as session:
            repo = CaseRepository(session)
            for sighting_id in ids:
                row = repo.sighting(sighting_id)
                if row is None or row.crop_ciphertext is None:
                    continue
                crops.append(
                    (
                        sighting_id,
                        self.cipher.decrypt(
                            row.crop_ciphertext,
                            crop_context(row.id, row.camera_name),
                            what=f"sighting {row.id} crop",
                        ),
                    )
                )
        return crops

    def _best_templates(
        self, repo: CaseRepository, case_id: int, chosen: Sequence[int] | None = None
    ) -> list[TemplateInput]:
        """Templates from the case's best sightings: their stored embeddings (the normalised
        mean of each track's good best-shot faces, the vectors the matcher compared), with
        the crop kept as the template's photo when the village keeps photos. Read in the
        caller's transaction, so they are the sightings of the case as it is closed.

        ``chosen``: the sightings staff picked (e.g. the crops that show the person well);
        each must be a sighting of the case with a stored embedding, at most
        ``max_templates_from_case`` of them."""
        best = self._best_first(self._members(repo, case_id))
        if chosen is None:
            picked = best[: min(self.settings.best_crops, self.settings.max_templates_from_case)]
        else:
            wanted = set(chosen)
            if not wanted:
                raise ValueError(
                    f"请至少勾选一张人脸图片 (case {case_id}: choose at least one face picture)"
                )
            members = {m.sighting_id for m in best}
            foreign = sorted(wanted - members)
            if foreign:
                raise ValueError(
                    f"所选的人脸图片不属于此案件 (sightings {foreign} are not in case {case_id})"
                )
            if len(wanted) > self.settings.max_templates_from_case:
                most = self.settings.max_templates_from_case
                raise ValueError(
                    f"最多只能勾选 {most} 张人脸图片 (case {case_id}: at most {most} face "
                    f"pictures can become templates, {len(wanted)} chosen)"
                )
            picked = [m for m in best if m.sighting_id in wanted]
        templates: list[TemplateInput] = []
        for member in picked:
            row = repo.sighting(member.sighting_id)
            if row is None or row.embedding_ciphertext is None:
                if chosen is not None:
                    raise ValueError(
                        f"这张人脸图片没有可用的人脸数据 (sighting {member.sighting_id} of case "
                        f"{case_id} has no stored face to enrol from)"
                    )
                continue
            crop = (
                self.cipher.decrypt(
                    row.crop_ciphertext, crop_context(row.id, row.camera_name), what="crop"
                )
                if row.crop_ciphertext is not None
                else None
            )
            templates.append(
                TemplateInput(
                    vector=self._sighting_vector(row),
                    model_id=row.model_id,
                    source=TemplateSource.CAPTURED_CROP,
                    quality=TemplateQuality(),
                    photo=PhotoInput(crop, "image/jpeg") if crop is not None else None,
                )
            )
        return templates

    # -- lifecycle ---------------------------------------------------------------------------

    def _transition(
        self,
        repo: CaseRepository,
        case: Case,
        event: str,
        to_status: str,
        actor: str,
        **details: int | str | float | bool | list[int] | None,
    ) -> None:
        from_status = case.status
        entry: dict[str, DetailValue] = {
            "event": event,
            "from_status": from_status,
            "to_status": to_status,
        }
        entry.update(details)
        case.status = to_status
        case.updated_at = self._clock()
        self.audit.record(
            AuditAction.CASE_TRANSITION,
            actor=actor,
            target_type="case",
            target_id=case.id,
            details=entry,
            session=repo.session,
        )
        logger.info("case %d: %s (%s -> %s) by %s", case.id, event, from_status, to_status, actor)

    @staticmethod
    def _require(case: Case, allowed: Sequence[str], what: str) -> None:
        if case.status not in allowed:
            raise CaseStateError(
                f"case {case.id} is {case.status}: cannot {what} (needs {' or '.join(allowed)})"
            )

    def assign(
        self, case_id: int, user_id: int, *, actor: str, deadline: datetime | None = None
    ) -> CaseView:
        """Assign (or re-assign) to a staff member, with a deadline (default: settings)."""
        now = self._clock()
        due = deadline or now + timedelta(days=self.settings.deadline_days)
        if due.tzinfo is None:
            raise ValueError("the deadline must carry a timezone")
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "assign")
            case.assigned_to, case.assigned_by = user_id, actor
            case.assigned_at, case.deadline_at = now, due
            self._transition(
                repo,
                case,
                "assign",
                "assigned",
                actor,
                assigned_to_user=user_id,
                deadline=due.astimezone(UTC).isoformat(),
            )
            return self._view(repo, case, now)

    def _close(
        self,
        repo: CaseRepository,
        case: Case,
        outcome: str,
        actor: str,
        **details: int | str | float | bool | list[int] | None,
    ) -> None:
        now = self._clock()
        case.outcome, case.outcome_by, case.outcome_at, case.closed_at = outcome, actor, now, now
        self._transition(repo, case, "outcome", "closed", actor, outcome=outcome, **details)

    def enrol(
        self,
        case_id: int,
        *,
        actor: str,
        person: NewPerson,
        consent: ConsentInput,
        tenancy: NewTenancy,
        fresh_photo: TemplateInput | None = None,
        sighting_ids: Sequence[int] | None = None,
    ) -> EnrolResult:
        """补录: person + consent + tenancy (room, landlord) + templates from the case's best
        sightings (or the ``sighting_ids`` staff chose; and a fresh photo), and the case
        closed, all in one transaction with their audit entries. Nothing is written if any
        part fails (a registry rule, the case already closed, the database); the gallery
        listeners are told at commit, so the matcher knows the person when this returns."""
        with self.registry.unit_of_work() as unit:
            repo = CaseRepository(unit.session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "enrol")
            templates = self._best_templates(repo, case_id, sighting_ids)
            if fresh_photo is not None:
                templates.append(fresh_photo)
            if not templates:
                raise CaseStateError(f"case {case_id} has no stored embeddings to enrol from")
            # Every registry rule (consent, guardian, ID number, room capacity) and the
            # registry's own audit entries run here, in this transaction.
            person_id = self.registry.add_person(
                person, consent=consent, templates=templates, tenancy=tenancy
            )
            template_ids = tuple(t.template_id for t in self.registry.templates_of(person_id))
            case.person_id = person_id
            self._close(
                repo,
                case,
                "enrol",
                actor,
                person_id=person_id,
                templates_added=len(templates),
                room_id=tenancy.room_id,
                landlord_id=tenancy.landlord_id,
                fresh_photo=fresh_photo is not None,
                # The crops staff ticked (None: the case's best ones).
                chosen_sightings=sorted(set(sighting_ids)) if sighting_ids is not None else None,
            )
        return EnrolResult(case_id=case_id, person_id=person_id, template_ids=template_ids)

    def registered_person(self, case_id: int, person_id: int, *, actor: str) -> list[int]:
        """Outcome "is registered person X": the case's best embeddings become templates of X
        (fixes a miss) and the case closes, in one transaction. Refused
        (ConsentRequiredError) unless X has a valid consent; nothing is written then."""
        with self.registry.unit_of_work() as unit:
            repo = CaseRepository(unit.session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "record the person")
            templates = self._best_templates(repo, case_id)
            if not templates:
                raise CaseStateError(f"case {case_id} has no stored embeddings to add")
            template_ids = self.registry.add_templates(person_id, templates)
            case.person_id = person_id
            self._close(repo, case, "person", actor, person_id=person_id, template_ids=template_ids)
        return template_ids

    def _store_quiet(
        self, repo: CaseRepository, case: Case, kind: str, expires_at: datetime | None
    ) -> int:
        rows = repo.kept_sightings(case.id, limit=self.settings.max_kept_per_case)
        for row in rows:
            quiet = repo.add_quiet_face(
                case_id=case.id,
                kind=kind,
                model_id=row.model_id,
                expires_at=expires_at,
                created_at=self._clock(),
            )
            # Encrypted after the insert: the row's id is part of the associated data.
            vector = self._sighting_vector(row)
            quiet.ciphertext = self.cipher.encrypt(
                np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                quiet_face_context(quiet.id, case.id, row.model_id),
            )
            quiet.key_id = self.cipher.active_key_id
        return len(rows)

    def visitor(self, case_id: int, until: datetime, *, actor: str) -> CaseView:
        """Visitor until ``until``: the case's faces are kept as temporary templates that keep
        matching sightings quiet; :meth:`purge_expired_visitors` deletes them afterwards."""
        if until.tzinfo is None:
            raise ValueError("'until' must carry a timezone")
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "record a visitor")
            kept = self._store_quiet(repo, case, "visitor", until)
            case.visitor_until = until
            self._close(
                repo,
                case,
                "visitor",
                actor,
                visitor_until=until.astimezone(UTC).isoformat(),
                quiet_faces=kept,
            )
            return self._view(repo, case, self._clock())

    def false_alarm(self, case_id: int, *, actor: str) -> CaseView:
        """False alarm (poster, reflection, not a face): its faces become negative examples."""
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "record a false alarm")
            kept = self._store_quiet(repo, case, "negative", None)
            self._close(repo, case, "false_alarm", actor, quiet_faces=kept)
            return self._view(repo, case, self._clock())

    def escalate(self, case_id: int, reason: str, *, actor: str) -> CaseView:
        """Hand over to the police station / higher office; the reason stays on the case."""
        if not reason.strip():
            raise ValueError("an escalation needs a reason")
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "escalate")
            case.escalation_reason = reason.strip()
            # The reason is free text: only its length goes into the audit log.
            self._close(repo, case, "escalate", actor, reason_chars=len(reason.strip()))
            return self._view(repo, case, self._clock())

    def reopen(self, case_id: int, *, actor: str) -> CaseView:
        """Closed -> open: the outcome is cleared and its quiet faces deleted. Templates a
        补录 or "is person X" added stay with the person (remove them in the registry)."""
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ("closed",), "reopen")
            previous = case.outcome
            removed = repo.delete_quiet_faces(case.id)
            case.outcome = case.outcome_by = None
            case.outcome_at = case.closed_at = case.visitor_until = None
            case.escalation_reason = None
            case.assigned_to = case.assigned_by = None
            case.assigned_at = case.deadline_at = None
            case.version += 1
            self._transition(
                repo,
                case,
                "reopen",
                "open",
                actor,
                previous_outcome=previous,
                quiet_faces_removed=removed,
            )
            return self._view(repo, case, self._clock())

    def merge(self, target_id: int, source_id: int, *, actor: str) -> CaseView:
        """Staff say two cases are one face: ``source``'s sightings move into ``target``."""
        if target_id == source_id:
            raise ValueError("cannot merge a case into itself")
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            # Both rows locked up front, lower id first, so two merges of the same pair
            # cannot wait for each other.
            first, second = sorted((target_id, source_id))
            locked = {i: self._case(repo, i, lock=True) for i in (first, second)}
            target, source = locked[target_id], locked[source_id]
            self._require(target, ACTIVE, "merge into it")
            self._require(source, ACTIVE, "merge it")
            count = repo.move_members(source_id, target_id)
            source.merged_into_id = target_id
            source.version += 1
            self._transition(
                repo, source, "merge", "merged", actor, merged_into=target_id, moved=count
            )
            self._refresh_counts(repo, target_id)
            self.audit.record(
                AuditAction.CASE_TRANSITION,
                actor=actor,
                target_type="case",
                target_id=target_id,
                details={"event": "merge_in", "merged_from": source_id, "moved": count},
                session=session,
            )
            return self._view(repo, target, self._clock())

    def split(self, case_id: int, sighting_ids: Sequence[int], *, actor: str) -> CaseView:
        """Staff say some sightings are someone else: they move to a new open case."""
        chosen = sorted(set(sighting_ids))
        if not chosen:
            raise ValueError("name the sightings to split off")
        with self.database.transaction() as session:
            repo = CaseRepository(session)
            case = self._case(repo, case_id, lock=True)
            self._require(case, ACTIVE, "split")
            members = {m.sighting_id for m in self._members(repo, case_id)}
            foreign = sorted(set(chosen) - members)
            if foreign:
                raise ValueError(f"sightings {foreign} are not in case {case_id}")
            if set(chosen) == members:
                raise ValueError("splitting off every sighting would leave the case empty")
            now = self._clock()
            new = repo.open_case(
                model_id=case.model_id,
                village_id=case.village_id,
                opened_at=now,
                first_seen_at=case.first_seen_at,
                last_seen_at=case.last_seen_at,
            )
            repo.move_sightings(chosen, new.id)
            self._refresh_counts(repo, case_id)
            self._refresh_counts(repo, new.id)
            self.audit.record(
                AuditAction.CASE_TRANSITION,
                actor=actor,
                target_type="case",
                target_id=case_id,
                details={"event": "split", "new_case": new.id, "sighting_ids": chosen},
                session=session,
            )
            self._transition(
                repo, new, "split_open", "open", actor, split_from=case_id, moved=len(chosen)
            )
            return self._view(repo, new, now)

    # -- retention ---------------------------------------------------------------------------

    def purge_expired_visitors(self, *, now: datetime | None = None) -> int:
        """Delete visitors' temporary templates whose date has passed; logged with counts."""
        moment = now or self._clock()
        with self.database.transaction() as session:
            count = CaseRepository(session).delete_expired_visitor_faces(moment)
            if count:
                self.audit.record(
                    AuditAction.PURGE,
                    actor="system",
                    target_type="case_quiet_faces",
                    details={"kind": "visitor", "deleted": count},
                    session=session,
                )
        self._quiet.clear()
        logger.info("purged %d expired visitor template(s)", count)
        return count
