"""Pipeline events: a tiny typed in-process bus, plus the persisted outbox consumers read."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

logger = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class SightingDecided:
    """A track was decided and stored as a sighting (``event_id`` is its outbox row)."""

    kind: ClassVar[str] = "sighting.decided"

    event_id: int
    sighting_id: int
    camera_id: int | None
    camera_name: str
    started_at: datetime
    ended_at: datetime
    decision: str
    person_id: int | None
    distance: float | None
    faces_used: int

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("event_id")
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat()
        return data

    @classmethod
    def from_payload(cls, event_id: int, payload: dict[str, Any]) -> SightingDecided:
        return cls(
            event_id=event_id,
            sighting_id=int(payload["sighting_id"]),
            camera_id=payload["camera_id"],
            camera_name=str(payload["camera_name"]),
            started_at=datetime.fromisoformat(payload["started_at"]),
            ended_at=datetime.fromisoformat(payload["ended_at"]),
            decision=str(payload["decision"]),
            person_id=payload["person_id"],
            distance=payload["distance"],
            faces_used=int(payload["faces_used"]),
        )


def encode_payload(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True)


class EventBus:
    """Synchronous in-process publish/subscribe, keyed by event type.

    A failing subscriber is logged and does not stop the others or the pipeline; events
    that must not be lost are read from the outbox instead (:class:`OutboxReader`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """Call ``handler`` with every published ``event_type``; returns the unsubscriber."""
        with self._lock:
            self._handlers.setdefault(event_type, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._handlers.get(event_type, [])
                if handler in handlers:
                    handlers.remove(handler)

        return unsubscribe

    def publish(self, event: object) -> None:
        with self._lock:
            handlers = list(self._handlers.get(type(event), []))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                logger.warning(
                    "subscriber %r failed on %s", handler, type(event).__name__, exc_info=True
                )
