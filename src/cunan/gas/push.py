"""HTTP push from IoT platforms: authenticate, queue the raw body durably, process it after."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cunan.errors import InvalidInput, Unauthenticated
from cunan.gas.domain import DeviceMessage
from cunan.gas.ingest import GasIngestService
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.payload import PayloadError, parse_ctwing
from cunan.storage.gas_ingest_repository import GasIngestRepository

logger = logging.getLogger(__name__)

TOKEN_HEADER = "x-cunan-push-token"
SIGNATURE_HEADER = "x-cunan-signature"
#: The platform's own id for a delivery, when it sends one (else the body's SHA-256: a
#: platform retrying sends the same body).
DELIVERY_HEADER = "x-delivery-id"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PushTooLargeError(InvalidInput):
    """A push body over ``push_max_bytes``."""


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body`` (what a platform or the simulator sends)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class ProcessReport:
    rows: int = 0
    messages: int = 0
    stored: int = 0
    #: Rows that could not be used (bad JSON, a field out of range ...): kept, with the reason.
    failed_rows: int = 0
    #: Rows left for a later try because storing failed (the database was unavailable).
    retried_rows: int = 0


class GasPushService:
    """``receive`` answers as soon as the body is committed to ``gas_push_inbox``;
    ``process_pending`` parses and stores queued bodies (one store batch per call) and marks
    each row processed, with its error if it had one: no row is ever lost or dropped."""

    def __init__(
        self,
        ingest: GasIngestService,
        settings: GasIngestSettings | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.ingest = ingest
        self.database = ingest.database
        self.settings = settings or ingest.settings
        self._clock = clock

    def authenticate(self, source: str, body: bytes, headers: Mapping[str, str]) -> str:
        """Refuse (Unauthenticated) unless ``source`` is configured and the request carries
        its token or a valid HMAC signature of the body (constant-time comparisons); how it
        was authenticated: ``token`` or ``signature``."""
        config = self.settings.push_sources.get(source)
        refused = Unauthenticated(
            f"gas push source {source[:32]!r}: not configured, or no valid token or signature"
        )
        if config is None:
            raise refused
        token = headers.get(TOKEN_HEADER)
        if (
            config.token is not None
            and token is not None
            and hmac.compare_digest(token.encode(), config.token.encode())
        ):
            return "token"
        signature = headers.get(SIGNATURE_HEADER)
        if (
            config.hmac_secret is not None
            and signature is not None
            and hmac.compare_digest(signature.encode(), sign(config.hmac_secret, body).encode())
        ):
            return "signature"
        raise refused

    def receive(self, source: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """Authenticate and queue one push; False when this delivery was queued before."""
        if len(body) > self.settings.push_max_bytes:
            raise PushTooLargeError(
                f"gas push from {source[:32]}: body of {len(body)} bytes over the limit of "
                f"{self.settings.push_max_bytes}"
            )
        how = self.authenticate(source, body, headers)
        delivery = headers.get(DELIVERY_HEADER)
        if delivery is not None:
            delivery = delivery.strip()[:120] or None
        if how == "signature":
            # The signature covers the body, not the delivery header: a captured body
            # replayed with a fresh header must not queue again, so the body names it.
            delivery = None
        delivery_id = delivery or "sha256:" + hashlib.sha256(body).hexdigest()
        with self.database.transaction() as session:
            new = GasIngestRepository(session).inbox_add(source, delivery_id, body, self._clock())
        self.ingest.counters.add("push_received" if new else "push_duplicates")
        return new

    def backlog(self) -> int:
        with self.database.read() as session:
            return GasIngestRepository(session).inbox_backlog()

    def process_pending(self, limit: int = 200) -> ProcessReport:
        report = ProcessReport()
        with self.database.read() as session:
            rows = GasIngestRepository(session).inbox_pending(
                limit, self.settings.push_max_attempts
            )
        report.rows = len(rows)
        if not rows:
            return report
        parsed: dict[int, list[DeviceMessage]] = {}
        errors: dict[int, str] = {}
        for row in rows:
            try:
                result = parse_ctwing(row.body, row.received_at, source=row.source)
            except PayloadError as exc:
                errors[row.id] = str(exc)
                continue
            except Exception as exc:
                # A body the parser did not foresee: kept with the reason, never allowed to
                # stop the rows behind it (the row would head every batch for ever).
                logger.exception("gas push: inbox row %d could not be read", row.id)
                errors[row.id] = f"unreadable: {type(exc).__name__}"
                continue
            parsed[row.id] = result.messages
        messages = [m for ms in parsed.values() for m in ms]
        report.messages = len(messages)
        try:
            stored = self.ingest.store(messages) if messages else None
        except Exception as exc:
            logger.exception("gas push: storing %d queued messages failed", len(messages))
            with self.database.transaction() as session:
                GasIngestRepository(session).inbox_retry(
                    sorted(parsed), f"storing failed: {type(exc).__name__}"
                )
            report.retried_rows = len(parsed)
            parsed = {}
            stored = None
        if stored is not None:
            report.stored = stored.stored
            for row_id, ms in parsed.items():
                refused = sorted(
                    {
                        f"{stored.rejected_serials[m.serial]} {m.serial}"
                        for m in ms
                        if m.serial in stored.rejected_serials
                    }
                )
                if refused:
                    errors[row_id] = "not stored: " + ", ".join(refused)[:500]
        now = self._clock()
        with self.database.transaction() as session:
            repo = GasIngestRepository(session)
            for row in rows:
                if row.id in parsed or row.id in errors:
                    repo.inbox_done(row.id, now, errors.get(row.id))
        report.failed_rows = len(errors)
        if errors:
            self.ingest.counters.add("push_failed_rows", len(errors))
            logger.info("gas push: %d queued bodies could not be (fully) used", len(errors))
        return report


class PushProcessor:
    """Drains the inbox in the background every ``push_poll_s`` (sooner when woken)."""

    def __init__(self, service: GasPushService) -> None:
        self.service = service
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                while not stop.is_set():
                    done = self.service.process_pending()
                    if not done.rows or done.retried_rows:
                        break
            except Exception:
                logger.exception("gas push: processing the inbox failed; trying again")
            self._wake.wait(self.service.settings.push_poll_s)
            self._wake.clear()
