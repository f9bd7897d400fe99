"""Case events the consumer set aside: recorded with their error, listed, replayed, discarded."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cunan.audit.log import AuditAction, AuditLog
from cunan.cases.views import ParkedEvent
from cunan.errors import Conflict, NotFound
from cunan.storage.cases_repository import ParkedEventRepository, ParkedEventRow
from cunan.storage.database import Database

logger = logging.getLogger(__name__)

#: The outbox consumer name of case grouping: acknowledgements are kept per consumer.
CONSUMER = "cases"
#: Audit action of a replay (details: the event ids).
ACTION_REPLAY = AuditAction.CASE_PARKED_REPLAY
#: Audit action of a discard (details: the event ids and the reason's length; the reason
#: itself stays on the parked record, which can be corrected, unlike the append-only log).
ACTION_DISCARD = AuditAction.CASE_PARKED_DISCARD
#: Longest error message kept: the reason, not a traceback.
MAX_ERROR_CHARS = 500
#: Longest discard reason accepted: a sentence for the next reader, not a report.
MAX_REASON_CHARS = 500


class ParkedEventError(LookupError, NotFound):
    """A replay or discard named an event that is not parked."""


class ParkedEventDiscardedError(ValueError, Conflict):
    """A parked event was discarded already (a conflict with its state, not a missing one)."""


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message``, shortened: driver errors append the SQL and its
    parameters on later lines, which help nobody reading the list."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moment_or_none(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _payload(row: ParkedEventRow) -> dict[str, Any]:
    # The payload may be the very reason the event failed: read it leniently.
    try:
        data = json.loads(row.payload_json)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class ParkedEvents:
    """Events of the ``cases`` consumer that failed ``attempts`` times in a row.

    Parking records the error and acknowledges the event in one transaction, so the consumer
    moves on and the event stays listed. A replay, once the cause is fixed (a key file
    restored, a row repaired, a bug fixed), withdraws the acknowledgement: the running
    consumer reads the event again (grouping is idempotent) and parks it again if it still
    fails. When there is nothing left to fix (the sighting was purged, its key is lost for
    good), staff discard the event instead: the record stays, marked with who, when and
    why, the acknowledgement stays, and the list no longer shows it. Replays and discards
    are audited.
    """

    def __init__(
        self,
        database: Database,
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.database = database
        self.audit = audit or AuditLog(database, clock=clock)
        self._clock = clock

    def park(self, event_id: int, *, attempts: int, error: str) -> bool:
        """Set the event aside with its error; False if it was parked already."""
        with self.database.transaction() as session:
            return ParkedEventRepository(session).park(
                event_id,
                consumer=CONSUMER,
                attempts=attempts,
                error=error[:MAX_ERROR_CHARS],
                parked_at=self._clock(),
            )

    def events(self, *, discarded: bool = False) -> list[ParkedEvent]:
        """Every parked event, oldest first; discarded ones only with ``discarded``."""
        with self.database.transaction() as session:
            repo = ParkedEventRepository(session)
            rows = repo.parked(discarded=discarded)
            payloads = [_payload(row) for row in rows]
            sighting_ids = [_int_or_none(p.get("sighting_id")) for p in payloads]
            existing = repo.existing_sightings([i for i in sighting_ids if i is not None])
        return [
            ParkedEvent(
                event_id=row.event_id,
                sighting_id=sighting_id,
                camera_name=str(payload["camera_name"]) if "camera_name" in payload else None,
                seen_at=_moment_or_none(payload.get("started_at")),
                decision=str(payload["decision"]) if "decision" in payload else None,
                attempts=row.attempts,
                error=row.error,
                parked_at=row.parked_at,
                sighting_exists=sighting_id in existing,
                discarded_at=row.discarded_at,
                discarded_by=row.discarded_by,
                discard_reason=row.discard_reason,
            )
            for row, payload, sighting_id in zip(rows, payloads, sighting_ids, strict=True)
        ]

    def replay(self, event_ids: Sequence[int] | None, *, actor: str) -> list[int]:
        """Hand parked events back to the consumer (``None``: every parked event not
        discarded); returns their ids. Refused (ParkedEventError, nothing changed) if any id
        is not parked. A discarded event named by its id is replayed too: whoever restored
        its sighting after all undoes the discard (the audit log keeps both)."""
        wanted = None if event_ids is None else sorted(set(event_ids))
        if wanted == []:
            raise ValueError("name the parked events to replay, or replay them all")
        with self.database.transaction() as session:
            repo = ParkedEventRepository(session)
            ids = repo.lock_parked(wanted, discarded=wanted is not None)
            missing = sorted(set(wanted or ()) - set(ids))
            if missing:
                raise ParkedEventError(
                    f"event(s) {', '.join(map(str, missing))} not parked (see 'cunan cases parked')"
                )
            if not ids:
                return []
            repo.unpark(ids, consumer=CONSUMER)
            self.audit.record(
                ACTION_REPLAY,
                actor=actor,
                target_type="outbox_event",
                target_id=ids[0] if len(ids) == 1 else None,
                details={"event_ids": ids, "replayed": len(ids), "all": event_ids is None},
                session=session,
            )
        logger.info("%d parked case event(s) handed back to the consumer by %s", len(ids), actor)
        return ids

    def discard(self, event_ids: Sequence[int], *, reason: str, actor: str) -> list[int]:
        """Give up on parked events for good (their sighting is purged, their key lost):
        they stay acknowledged and recorded, marked discarded with ``actor``, the time and
        ``reason``, and leave the parked list and "replay all". Returns their ids.

        Refused (nothing changed) without a reason (ValueError), or if any id is not parked
        or was discarded already (ParkedEventDiscardedError). Audited with the event ids and the
        reason's length only, like an escalation: free text may name people, and the audit
        log can never be purged."""
        wanted = sorted(set(event_ids))
        if not wanted:
            raise ValueError("name the parked events to discard")
        text = reason.strip()
        if not text:
            raise ValueError("a discard needs a reason")
        if len(text) > MAX_REASON_CHARS:
            raise ValueError(f"the reason is longer than {MAX_REASON_CHARS} characters")
        with self.database.transaction() as session:
            repo = ParkedEventRepository(session)
            parked = repo.lock_parked(wanted)
            live = set(repo.lock_parked(wanted, discarded=False))
            missing = sorted(set(wanted) - set(parked))
            if missing:
                raise ParkedEventError(
                    f"event(s) {', '.join(map(str, missing))} not parked (see 'cunan cases parked')"
                )
            done = sorted(set(parked) - live)
            if done:
                raise ParkedEventDiscardedError(
                    f"event(s) {', '.join(map(str, done))} already discarded "
                    "(see 'cunan cases parked --all')"
                )
            repo.discard(wanted, by=actor, reason=text, at=self._clock())
            self.audit.record(
                ACTION_DISCARD,
                actor=actor,
                target_type="outbox_event",
                target_id=wanted[0] if len(wanted) == 1 else None,
                details={"event_ids": wanted, "discarded": len(wanted), "reason_chars": len(text)},
                session=session,
            )
        logger.info("%d parked case event(s) discarded by %s", len(wanted), actor)
        return wanted
