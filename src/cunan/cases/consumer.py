"""Reads ``sighting.decided`` events from the outbox and groups their sightings into cases."""

from __future__ import annotations

import logging
import threading

from cunan.cases.service import CaseService
from cunan.cases.views import SightingOutcome
from cunan.pipeline.events import SightingDecided
from cunan.pipeline.store import EventOutbox

logger = logging.getLogger(__name__)

#: The outbox consumer name: acknowledgements are kept per consumer.
CONSUMER = "cases"


class CaseConsumer:
    """At-least-once: an event is acknowledged only after its sighting is grouped, and
    grouping a sighting twice is a no-op, so a crash in between loses and doubles nothing."""

    def __init__(self, service: CaseService, outbox: EventOutbox) -> None:
        self.service = service
        self.outbox = outbox
        self._wake = threading.Event()

    def poll(self, *, limit: int = 100) -> list[SightingOutcome]:
        """Handle every pending event (in batches of ``limit``); returns what they did."""
        outcomes: list[SightingOutcome] = []
        while True:
            events = self.outbox.pending(CONSUMER, kinds=[SightingDecided.kind], limit=limit)
            if not events:
                return outcomes
            for event in events:
                outcome = self.service.handle_sighting(int(event.payload["sighting_id"]))
                if outcome is not None:
                    outcomes.append(outcome)
                self.outbox.ack(CONSUMER, [event.id])

    def on_event(self, event: SightingDecided) -> None:
        """EventBus subscriber: wake the consumer loop (the outbox stays the source)."""
        self._wake.set()

    def run(self, stop: threading.Event, *, interval_s: float = 2.0) -> None:
        """Poll until ``stop`` is set; woken early by :meth:`on_event`."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception:
                logger.exception("case grouping failed; retrying in %.1f s", interval_s)
            self._wake.wait(interval_s)
            self._wake.clear()
