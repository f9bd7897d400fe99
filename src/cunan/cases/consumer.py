"""Reads ``sighting.decided`` events from the outbox and groups their sightings into cases."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from cunan.cases.parked import CONSUMER, ParkedEvents, describe_error
from cunan.cases.service import CaseService, SightingNotFoundError
from cunan.cases.views import SightingOutcome
from cunan.pipeline.events import SightingDecided
from cunan.pipeline.store import EventOutbox, StoredEvent

logger = logging.getLogger(__name__)

__all__ = ["CONSUMER", "MAX_ATTEMPTS", "CaseConsumer"]

#: Attempts at one event before it is set aside.
MAX_ATTEMPTS = 5


class CaseConsumer:
    """At-least-once: an event is acknowledged only after its sighting is grouped, and
    grouping a sighting twice is a no-op, so a crash in between loses and doubles nothing.

    An event that fails ``max_attempts`` times in a row (a corrupt row, a missing key, a bug),
    or at once when its sighting no longer exists (retrying cannot bring a row back), is set
    aside: recorded with its error in :class:`~cunan.cases.parked.ParkedEvents` and
    acknowledged for ``cases`` in one transaction, so it does not block the grouping of every
    later sighting; staff list and replay it (``cunan cases parked``, ``replay-parked``).

    ``on_known(person_id, seen_at)`` is called for each ``known`` sighting (``cunan serve``
    closes the person's "please confirm" tasks with it, ``NotSeenReconciler.on_sighting``).
    """

    def __init__(
        self,
        service: CaseService,
        outbox: EventOutbox,
        *,
        on_known: Callable[[int, datetime], object] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        parking: ParkedEvents | None = None,
    ) -> None:
        self.service = service
        self.outbox = outbox
        self.on_known = on_known
        self.max_attempts = max(1, max_attempts)
        self.parking = parking or ParkedEvents(
            service.database, audit=service.audit, clock=service.clock
        )
        #: Ids of the events this consumer set aside since it started.
        self.parked: list[int] = []
        self._failures: dict[int, int] = {}
        self._wake = threading.Event()

    def _handle(self, event: StoredEvent) -> SightingOutcome | None:
        payload = event.payload
        if self.on_known is not None and payload.get("decision") == "known":
            person_id = payload.get("person_id")
            if person_id is not None:
                self.on_known(int(person_id), datetime.fromisoformat(payload["ended_at"]))
        return self.service.handle_sighting(int(payload["sighting_id"]))

    def poll(self, *, limit: int = 100) -> list[SightingOutcome]:
        """Handle every pending event (in batches of ``limit``); returns what they did.

        A failing event is retried on the next poll; after ``max_attempts`` failures (one
        for a sighting that is gone) it is parked and the consumer moves on.
        """
        outcomes: list[SightingOutcome] = []
        while True:
            events = self.outbox.pending(CONSUMER, kinds=[SightingDecided.kind], limit=limit)
            if not events:
                return outcomes
            for event in events:
                try:
                    outcome = self._handle(event)
                except Exception as exc:
                    attempts = self._failures.get(event.id, 0) + 1
                    self._failures[event.id] = attempts
                    hopeless = isinstance(exc, SightingNotFoundError)
                    if attempts < self.max_attempts and not hopeless:
                        raise
                    self._park(event, exc, attempts)
                    continue
                self._failures.pop(event.id, None)
                if outcome is not None:
                    outcomes.append(outcome)
                self.outbox.ack(CONSUMER, [event.id])

    def _park(self, event: StoredEvent, exc: Exception, attempts: int) -> None:
        error = describe_error(exc)
        # If recording fails (the database is down), poll raises and the event stays
        # pending: it is retried and parked later, never skipped unrecorded.
        self.parking.park(event.id, attempts=attempts, error=error)
        logger.error(
            "case grouping: event %d (sighting %s) failed %d time(s), set aside "
            "(cunan cases parked; replay-parked after fixing the cause): %s",
            event.id,
            event.payload.get("sighting_id"),
            attempts,
            error,
        )
        self._failures.pop(event.id, None)
        self.parked.append(event.id)

    def on_event(self, event: SightingDecided) -> None:
        """EventBus subscriber: wake the consumer loop (the outbox stays the source)."""
        self._wake.set()

    def wake(self) -> None:
        """Wake the loop now (e.g. to stop it)."""
        self._wake.set()

    def run(self, stop: threading.Event, *, interval_s: float = 2.0) -> None:
        """Poll until ``stop`` is set; woken early by :meth:`on_event` / :meth:`wake`."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception:
                logger.exception("case grouping failed; retrying in %.1f s", interval_s)
            self._wake.wait(interval_s)
            self._wake.clear()
