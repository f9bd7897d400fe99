"""Case events the consumer set aside: recorded with their error, listed, and replayed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cunan.audit.log import AuditLog
from cunan.cases.views import ParkedEvent
from cunan.storage.cases_repository import ParkedEventRepository, ParkedEventRow
from cunan.storage.database import Database

logger = logging.getLogger(__name__)

#: The outbox consumer name of case grouping: acknowledgements are kept per consumer.
CONSUMER = "cases"
#: Audit action of a replay (details: the event ids).
ACTION_REPLAY = "case.parked_replay"
#: Longest error message kept: the reason, not a traceback.
MAX_ERROR_CHARS = 500


class ParkedEventError(LookupError):
    """A replay named an event that is not parked."""


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
    fails. Replays are audited.
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

    def events(self) -> list[ParkedEvent]:
        """Every parked event, oldest first."""
        with self.database.transaction() as session:
            repo = ParkedEventRepository(session)
            rows = repo.parked()
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
            )
            for row, payload, sighting_id in zip(rows, payloads, sighting_ids, strict=True)
        ]

    def replay(self, event_ids: Sequence[int] | None, *, actor: str) -> list[int]:
        """Hand parked events back to the consumer (``None``: every parked event); returns
        their ids. Refused (ParkedEventError, nothing changed) if any id is not parked."""
        wanted = None if event_ids is None else sorted(set(event_ids))
        if wanted == []:
            raise ValueError("name the parked events to replay, or replay them all")
        with self.database.transaction() as session:
            repo = ParkedEventRepository(session)
            ids = repo.lock_parked(wanted)
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
