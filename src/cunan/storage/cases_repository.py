"""Queries over the cases tables; the cases service calls these inside its own transactions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, distinct, func, select, update
from sqlalchemy.orm import Session

from cunan.storage.case_tables import Case, CaseParkedEvent, CaseQuietFace, CaseSighting
from cunan.storage.database import rowcount
from cunan.storage.pipeline_tables import EventAck, OutboxEvent, Sighting

#: ``cases.kind`` of the face workflow's cases; this repository sees only those (gas cases
#: live in the same table: cunan.storage.gas_alarm_repository).
FACE_KIND = "face"


@dataclass(frozen=True, slots=True)
class QuietFaceRef:
    """A quiet face without its ciphertext: enough to decide whether to decrypt it."""

    id: int
    case_id: int
    kind: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeptEmbedding:
    """A kept sighting's encrypted embedding and what its associated data names."""

    sighting_id: int
    model_id: str
    ciphertext: bytes


#: The order of a case's kept sightings: most good faces, the most recent, the latest id.
_KEPT_ORDER = (
    CaseSighting.faces_used.desc(),
    CaseSighting.seen_at.desc(),
    CaseSighting.sighting_id.desc(),
)
#: Case ids per ``IN (...)`` list (well under SQLite's bound-parameter limit).
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class MemberSpan:
    """How many sightings a case has, and the first and last time one was seen."""

    count: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberDigest:
    """What a case's view shows of its sightings, computed in SQL (never every row loaded):
    how many, on how many local days, from which cameras, and the best ones' ids."""

    count: int
    distinct_days: int
    cameras: tuple[str, ...]
    best_sighting_ids: tuple[int, ...]


#: The digest of a case without sightings.
EMPTY_DIGEST = MemberDigest(0, 0, (), ())


@dataclass(frozen=True, slots=True)
class ParkedEventRow:
    """A parked event with its outbox row: the payload says which sighting it was about."""

    event_id: int
    kind: str
    payload_json: str
    attempts: int | None
    error: str
    parked_at: datetime
    discarded_at: datetime | None
    discarded_by: str | None
    discard_reason: str | None


def _aware(moment: datetime | None) -> datetime | None:
    # Aggregates may come back naive from SQLite; the stored values are UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CaseRepository:
    """All reads and writes the cases service needs, on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def announce(self, kind: str, payload: dict[str, object]) -> int:
        """Append a live-view event to the outbox in this transaction."""
        from cunan.storage.pipeline_repository import OutboxRepository

        return OutboxRepository(self.session).append(
            kind, json.dumps(payload, ensure_ascii=False, sort_keys=True)
        )

    def flush(self) -> None:
        """Send pending changes of loaded rows now (constraint errors surface here)."""
        self.session.flush()

    # -- sightings ---------------------------------------------------------------------------

    def sighting(self, sighting_id: int) -> Sighting | None:
        return self.session.get(Sighting, sighting_id)

    def membership(self, sighting_id: int) -> CaseSighting | None:
        """The sighting's case membership (None: not grouped yet)."""
        return self.session.get(CaseSighting, sighting_id)

    # -- cases -------------------------------------------------------------------------------

    def case(self, case_id: int, *, for_update: bool = False) -> Case | None:
        """The face case; ``for_update`` locks its row until the transaction ends (PostgreSQL)
        and reloads it, so a caller that waited for the lock sees the committed state, not a
        copy an earlier read left in the session. SQLite ignores the lock: its BEGIN
        IMMEDIATE already admits one writer at a time. A gas case (``kind='gas'``, see
        cunan.gas.cases) is no face case: None, like a missing one."""
        case = self.session.get(
            Case, case_id, with_for_update=for_update, populate_existing=for_update
        )
        return case if case is not None and case.kind == FACE_KIND else None

    def cases(self, statuses: Sequence[str]) -> Sequence[Case]:
        return self.session.scalars(
            select(Case).where(Case.status.in_(list(statuses)), Case.kind == FACE_KIND)
        ).all()

    def case_versions(self, *, model_id: str, statuses: Sequence[str]) -> list[tuple[int, int]]:
        """(id, version) of the cases of ``model_id`` in ``statuses``, read without locking.

        Grouping reads this (thousands of rows) for every sighting: plain table columns, so
        the rows skip the ORM's loading machinery."""
        cases = Case.__table__.c
        rows = self.session.execute(
            select(cases.id, cases.version).where(
                cases.status.in_(list(statuses)),
                cases.model_id == model_id,
                cases.kind == FACE_KIND,
            )
        ).all()
        return [(int(case_id), int(version)) for case_id, version in rows]

    def closed_case_versions(
        self, *, model_id: str, outcomes: Sequence[str], closed_after: datetime
    ) -> list[tuple[int, int]]:
        """(id, version) of the closed cases of ``model_id`` with one of ``outcomes``, closed
        after ``closed_after``, read without locking."""
        rows = self.session.execute(
            select(Case.id, Case.version).where(
                Case.status == "closed",
                Case.kind == FACE_KIND,
                Case.model_id == model_id,
                Case.outcome.in_(list(outcomes)),
                Case.closed_at > closed_after,
            )
        ).all()
        return [(int(case_id), int(version)) for case_id, version in rows]

    def open_case(
        self,
        *,
        model_id: str,
        village_id: int | None,
        opened_at: datetime,
        first_seen_at: datetime,
        last_seen_at: datetime,
    ) -> Case:
        """A new open case with no sightings yet (its id assigned)."""
        case = Case(
            status="open",
            model_id=model_id,
            village_id=village_id,
            opened_at=opened_at,
            first_seen_at=first_seen_at,
            last_seen_at=last_seen_at,
            sightings_count=0,
            version=0,
            updated_at=opened_at,
        )
        self.session.add(case)
        self.session.flush()
        return case

    # -- members -----------------------------------------------------------------------------

    def add_member(
        self,
        case_id: int,
        sighting: Sighting,
        *,
        distance: float | None,
        alerted: bool,
        suppressed_by: str | None,
        added_at: datetime,
    ) -> None:
        self.session.add(
            CaseSighting(
                sighting_id=sighting.id,
                case_id=case_id,
                camera_id=sighting.camera_id,
                camera_name=sighting.camera_name,
                seen_at=sighting.started_at,
                faces_used=sighting.faces_used,
                distance=distance,
                alerted=alerted,
                suppressed_by=suppressed_by,
                added_at=added_at,
            )
        )
        self.session.flush()  # constraint errors (a sighting grouped twice) surface here

    def members(self, case_id: int) -> Sequence[CaseSighting]:
        """The case's sightings, oldest first."""
        return self.session.scalars(
            select(CaseSighting)
            .where(CaseSighting.case_id == case_id)
            .order_by(CaseSighting.seen_at, CaseSighting.sighting_id)
        ).all()

    def member_digests(
        self, case_ids: Sequence[int], *, utc_offset_s: int, best: int
    ) -> dict[int, MemberDigest]:
        """Per case: sightings, distinct local days (UTC plus ``utc_offset_s``), sorted
        camera names, and the ``best`` sightings with the most good faces, then the most
        recent (then the lowest id). Two grouped queries, and one short index range per
        case for the best sightings."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        member = CaseSighting
        mine = member.case_id.in_(ids)
        if self.session.get_bind().dialect.name == "sqlite":
            # Stored as UTC text; SQLite's date() applies the offset as a modifier.
            day = func.date(member.seen_at, f"{utc_offset_s:+d} seconds")
        else:
            day = func.date(
                func.timezone("UTC", member.seen_at)
                + func.make_interval(0, 0, 0, 0, 0, 0, utc_offset_s)
            )
        counts = {
            int(case_id): (int(n), int(days))
            for case_id, n, days in self.session.execute(
                select(member.case_id, func.count(), func.count(distinct(day)))
                .where(mine)
                .group_by(member.case_id)
            )
        }
        cameras: dict[int, list[str]] = {}
        for case_id, name in self.session.execute(
            select(member.case_id, member.camera_name)
            .where(mine)
            .distinct()
            .order_by(member.case_id, member.camera_name)
        ):
            cameras.setdefault(int(case_id), []).append(name)
        # One short index range per case (ix_case_sightings_best): never a sort of all of
        # a frequent stranger's sightings. Built once, run with each case's id.
        best_of = (
            select(member.sighting_id)
            .where(member.case_id == bindparam("case_id"))
            .order_by(member.faces_used.desc(), member.seen_at.desc(), member.sighting_id)
            .limit(best)
        )
        chosen = {
            case_id: [int(i) for i in self.session.scalars(best_of, {"case_id": case_id})]
            for case_id in counts
        }
        return {
            case_id: MemberDigest(
                n, days, tuple(cameras.get(case_id, ())), tuple(chosen.get(case_id, ()))
            )
            for case_id, (n, days) in counts.items()
        }

    def cases_by_ids(self, case_ids: Sequence[int]) -> list[Case]:
        """The cases with these ids that exist, in the order given."""
        rows = {
            c.id: c
            for c in self.session.scalars(
                select(Case).where(Case.id.in_(case_ids), Case.kind == FACE_KIND)
            )
        }
        return [rows[i] for i in case_ids if i in rows]

    def member_span(self, case_id: int) -> MemberSpan:
        count, first, last = self.session.execute(
            select(
                func.count(CaseSighting.sighting_id),
                func.min(CaseSighting.seen_at),
                func.max(CaseSighting.seen_at),
            ).where(CaseSighting.case_id == case_id)
        ).one()
        return MemberSpan(int(count), _aware(first), _aware(last))

    def kept_sightings(self, case_id: int, *, limit: int) -> Sequence[Sighting]:
        """The case's sightings with a stored embedding, most good faces first, then the most
        recent (then the latest id, so equal ones always come in one order): the ones
        grouping links against and quiet faces are made from."""
        return self.session.scalars(
            select(Sighting)
            .join(CaseSighting, CaseSighting.sighting_id == Sighting.id)
            .where(CaseSighting.case_id == case_id, Sighting.embedding_ciphertext.is_not(None))
            .order_by(*_KEPT_ORDER)
            .limit(limit)
        ).all()

    def kept_embeddings(
        self, case_ids: Sequence[int], *, limit: int
    ) -> dict[int, list[KeptEmbedding]]:
        """:meth:`kept_sightings` of many cases at once, in the same order, embeddings only
        (no crops, no ORM rows): what grouping loads when it starts with thousands of open
        cases. Cases without one are absent."""
        out: dict[int, list[KeptEmbedding]] = {}
        ids = sorted(set(case_ids))
        for start in range(0, len(ids), _IN_CHUNK):
            rank = (
                func.row_number()
                .over(partition_by=CaseSighting.case_id, order_by=list(_KEPT_ORDER))
                .label("rank")
            )
            ranked = (
                select(
                    CaseSighting.case_id,
                    Sighting.id,
                    Sighting.model_id,
                    Sighting.embedding_ciphertext,
                    rank,
                )
                .join(Sighting, Sighting.id == CaseSighting.sighting_id)
                .where(
                    CaseSighting.case_id.in_(ids[start : start + _IN_CHUNK]),
                    Sighting.embedding_ciphertext.is_not(None),
                )
                .subquery()
            )
            rows = self.session.execute(
                select(
                    ranked.c.case_id,
                    ranked.c.id,
                    ranked.c.model_id,
                    ranked.c.embedding_ciphertext,
                )
                .where(ranked.c.rank <= limit)
                .order_by(ranked.c.case_id, ranked.c.rank)
            )
            for case_id, sighting_id, model_id, ciphertext in rows:
                out.setdefault(int(case_id), []).append(
                    KeptEmbedding(int(sighting_id), str(model_id), bytes(ciphertext))
                )
        return out

    def last_alert_at(self, case_id: int, camera_name: str) -> datetime | None:
        """When the case last alerted from this camera (by sighting time)."""
        return _aware(
            self.session.scalar(
                select(func.max(CaseSighting.seen_at)).where(
                    CaseSighting.case_id == case_id,
                    CaseSighting.camera_name == camera_name,
                    CaseSighting.alerted.is_(True),
                )
            )
        )

    def move_members(self, from_case_id: int, to_case_id: int) -> int:
        """Every sighting of one case into another; returns how many moved."""
        return rowcount(
            self.session.execute(
                update(CaseSighting)
                .where(CaseSighting.case_id == from_case_id)
                .values(case_id=to_case_id)
            )
        )

    def move_sightings(self, sighting_ids: Sequence[int], to_case_id: int) -> int:
        return rowcount(
            self.session.execute(
                update(CaseSighting)
                .where(CaseSighting.sighting_id.in_(list(sighting_ids)))
                .values(case_id=to_case_id)
            )
        )

    # -- quiet faces -------------------------------------------------------------------------

    def quiet_faces(self, model_id: str) -> list[QuietFaceRef]:
        rows = self.session.execute(
            select(
                CaseQuietFace.id,
                CaseQuietFace.case_id,
                CaseQuietFace.kind,
                CaseQuietFace.expires_at,
            ).where(CaseQuietFace.model_id == model_id)
        ).all()
        return [QuietFaceRef(int(i), int(c), str(k), e) for i, c, k, e in rows]

    def quiet_face(self, quiet_id: int) -> CaseQuietFace | None:
        return self.session.get(CaseQuietFace, quiet_id)

    def add_quiet_face(
        self,
        *,
        case_id: int,
        kind: str,
        model_id: str,
        expires_at: datetime | None,
        created_at: datetime,
    ) -> CaseQuietFace:
        """A quiet face row with its id assigned and no ciphertext yet: the id is part of the
        ciphertext's associated data, so the caller encrypts afterwards and sets it."""
        quiet = CaseQuietFace(
            case_id=case_id,
            kind=kind,
            model_id=model_id,
            ciphertext=b"",
            key_id="",
            expires_at=expires_at,
            created_at=created_at,
        )
        self.session.add(quiet)
        self.session.flush()
        return quiet

    def delete_quiet_faces(self, case_id: int) -> int:
        return rowcount(
            self.session.execute(delete(CaseQuietFace).where(CaseQuietFace.case_id == case_id))
        )

    def delete_expired_visitor_faces(self, moment: datetime) -> int:
        """Visitors' quiet faces whose date is at or before ``moment``; returns the count."""
        return rowcount(
            self.session.execute(
                delete(CaseQuietFace).where(
                    CaseQuietFace.kind == "visitor", CaseQuietFace.expires_at <= moment
                )
            )
        )


class ParkedEventRepository:
    """Case events set aside by the consumer, and the outbox acknowledgements that go with
    them, on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def park(
        self, event_id: int, *, consumer: str, attempts: int, error: str, parked_at: datetime
    ) -> bool:
        """Record the event as parked and acknowledge it for ``consumer``, together, so it is
        never both skipped and unlisted. False when it was parked already (the missing
        acknowledgement is still added: events moved over by migration 0006 from a consumer
        that crashed between its two old acknowledgements have a parked row but no ack, and
        would otherwise stay pending forever)."""
        new = self.session.get(CaseParkedEvent, event_id) is None
        if new:
            self.session.add(
                CaseParkedEvent(
                    event_id=event_id, attempts=attempts, error=error, parked_at=parked_at
                )
            )
        if self.session.get(EventAck, (consumer, event_id)) is None:
            self.session.add(EventAck(consumer=consumer, event_id=event_id, acked_at=parked_at))
        self.session.flush()
        return new

    def parked(self, *, discarded: bool = False) -> list[ParkedEventRow]:
        """Every parked event not discarded (``discarded``: those too), oldest event first."""
        stmt = (
            select(
                CaseParkedEvent.event_id,
                OutboxEvent.kind,
                OutboxEvent.payload_json,
                CaseParkedEvent.attempts,
                CaseParkedEvent.error,
                CaseParkedEvent.parked_at,
                CaseParkedEvent.discarded_at,
                CaseParkedEvent.discarded_by,
                CaseParkedEvent.discard_reason,
            )
            .join(OutboxEvent, OutboxEvent.id == CaseParkedEvent.event_id)
            .order_by(CaseParkedEvent.event_id)
        )
        if not discarded:
            stmt = stmt.where(CaseParkedEvent.discarded_at.is_(None))
        return [
            ParkedEventRow(int(i), str(k), str(p), a, str(e), parked_at, d_at, d_by, reason)
            for i, k, p, a, e, parked_at, d_at, d_by, reason in self.session.execute(stmt).all()
        ]

    def lock_parked(self, event_ids: Sequence[int] | None, *, discarded: bool = True) -> list[int]:
        """Ids of the given (None: all) events that are parked, their rows locked until the
        transaction ends (PostgreSQL), so two replays or discards of one event cannot both
        count it. ``discarded=False`` leaves discarded events out."""
        stmt = select(CaseParkedEvent.event_id).order_by(CaseParkedEvent.event_id)
        if event_ids is not None:
            stmt = stmt.where(CaseParkedEvent.event_id.in_(list(event_ids)))
        if not discarded:
            stmt = stmt.where(CaseParkedEvent.discarded_at.is_(None))
        return [int(i) for i in self.session.scalars(stmt.with_for_update()).all()]

    def discard(self, event_ids: Sequence[int], *, by: str, reason: str, at: datetime) -> int:
        """Mark parked events as discarded (their acknowledgement stays: never grouped);
        returns how many were marked. Events discarded before keep their first record."""
        if not event_ids:
            return 0
        return rowcount(
            self.session.execute(
                update(CaseParkedEvent)
                .where(
                    CaseParkedEvent.event_id.in_(list(event_ids)),
                    CaseParkedEvent.discarded_at.is_(None),
                )
                .values(discarded_at=at, discarded_by=by, discard_reason=reason)
            )
        )

    def unpark(self, event_ids: Sequence[int], *, consumer: str) -> int:
        """Forget the events were parked and withdraw ``consumer``'s acknowledgements, so the
        consumer reads them again; returns how many parked rows were removed."""
        if not event_ids:
            return 0
        ids = list(event_ids)
        self.session.execute(
            delete(EventAck).where(EventAck.consumer == consumer, EventAck.event_id.in_(ids))
        )
        return rowcount(
            self.session.execute(delete(CaseParkedEvent).where(CaseParkedEvent.event_id.in_(ids)))
        )

    def existing_sightings(self, sighting_ids: Sequence[int]) -> set[int]:
        """Which of these sightings still exist (retention may have purged the others)."""
        if not sighting_ids:
            return set()
        return {
            int(i)
            for i in self.session.scalars(
                select(Sighting.id).where(Sighting.id.in_(list(sighting_ids)))
            ).all()
        }
