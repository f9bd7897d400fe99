"""The audit log service: append entries to the hash chain, inside the caller's transaction."""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeAlias

from sqlalchemy.orm import Session

from cunan.storage.audit_repository import AuditRepository
from cunan.storage.audit_tables import GENESIS_HASH, AuditEntry
from cunan.storage.database import Database

logger = logging.getLogger(__name__)

#: What a details value may be: ids, counts, flags, short codes, and lists or maps of those.
DetailValue: TypeAlias = (
    "str | int | float | bool | Sequence[DetailValue] | Mapping[str, DetailValue] | None"
)

#: Longest string accepted in details: enough for ids and codes, too short for free text.
MAX_DETAIL_STRING = 120

# Keys that name personal data. Details carry ids and counts only (DOMAIN.md privacy rules);
# this list catches the usual mistakes, it does not replace reviewing what callers pass.
_PERSONAL_KEYS = frozenset(
    {
        "name",
        "full_name",
        "username_attempted",
        "id_number",
        "idcard",
        "id_card",
        "phone",
        "mobile",
        "address",
        "email",
        "password",
        "embedding",
        "embeddings",
        "vector",
        "photo",
        "image",
        "crop",
        "crops",
        "face",
        "template_data",
    }
)
_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class AuditAction(StrEnum):
    """Every action CunAn records, and only those (docs/audit.md lists the same codes)."""

    # accounts and sessions
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login.locked"
    LOGOUT = "logout"
    USER_CREATE = "user.create"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_PASSWORD_CHANGE = "user.password_change"
    USER_PASSWORD_RESET = "user.password_reset"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    # registry
    PERSON_CREATE = "person.create"
    PERSON_REMOVE = "person.remove"
    PERSON_STATUS = "person.status"
    PERSON_UPDATE = "person.update"
    PERSON_ARCHIVE = "person.archive"
    CONSENT_RECORD = "consent.record"
    CONSENT_WITHDRAW = "consent.withdraw"
    TEMPLATE_ADD = "template.add"
    TEMPLATE_DELETE = "template.delete"
    TEMPLATE_PURGE = "template.purge"
    # a run of `cunan faces reembed` (another recognition model; details: counts)
    TEMPLATE_REEMBED = "template.reembed"
    TENANCY_ADD = "tenancy.add"
    TENANCY_MOVE_OUT = "tenancy.move_out"
    PLACE_CREATE = "place.create"
    PLACE_UPDATE = "place.update"
    # a place deleted (nothing referred to it any more)
    PLACE_REMOVE = "place.remove"
    REGISTRY_EXPORT = "registry.export"
    # the statistics workbook downloaded (/statistics.xlsx)
    STATISTICS_EXPORT = "statistics.export"
    # a 1:N face search ("who is this?": cunan identify, the identify API)
    SEARCH = "search"
    # a 1:1 face comparison of two uploaded images (the compare API)
    FACE_COMPARE = "face.compare"
    # a kept enrolment photo shown on a person's page
    PHOTO_VIEW = "photo.view"
    # keys
    KEY_ROTATE = "key.rotate"
    KEY_RESET = "key.reset"
    # cameras (the public-notice flag is in the details)
    CAMERA_ADD = "camera.add"
    CAMERA_ENABLE = "camera.enable"
    CAMERA_DISABLE = "camera.disable"
    CAMERA_UPDATE = "camera.update"
    CAMERA_REMOVE = "camera.remove"
    # settings changed from the API (thresholds, retention, deadlines)
    SETTINGS_CHANGE = "settings.change"
    # notification channels added from the web (names and kinds only), and test messages
    NOTIFY_CHANNEL_ADD = "notify.channel_add"
    NOTIFY_CHANNEL_CHANGE = "notify.channel_change"
    NOTIFY_CHANNEL_REMOVE = "notify.channel_remove"
    NOTIFY_TEST = "notify.test"
    # the live gallery re-calibrated its open-set thresholds on the site's own people
    MATCHING_CALIBRATE = "matching.calibrate"
    # the synthetic village a benchmark writes (cunan bench api), never a real one
    BENCH_SEED = "bench.seed"
    # cases and duties
    CASE_TRANSITION = "case.transition"
    CASE_PARKED_REPLAY = "case.parked_replay"
    CASE_PARKED_DISCARD = "case.parked_discard"
    PURGE = "purge"
    DEPARTURE_REPORT = "departure.report"
    DEPARTURE_MARK = "departure.mark"
    DUTIES_RECONCILE = "duties.reconcile"
    TASK_CONFIRM = "task.confirm"
    TASK_CLOSE = "task.close"
    # gas alarms and their cases (cunan.gas.alarms, cunan.gas.cases)
    GAS_ALARM_ACKNOWLEDGE = "gas.alarm_acknowledge"
    GAS_CASE_STAGE = "gas.case_stage"
    GAS_CASE_PHOTO_ADD = "gas.case_photo_add"
    # gas registry: businesses, contacts, device models, devices, device credentials, imports
    GAS_BUSINESS_CREATE = "gas.business_create"
    GAS_BUSINESS_UPDATE = "gas.business_update"
    GAS_CONTACT_SET = "gas.contact_set"
    GAS_CONTACT_REMOVE = "gas.contact_remove"
    GAS_MODEL_CREATE = "gas.model_create"
    GAS_MODEL_UPDATE = "gas.model_update"
    GAS_DEVICE_CREATE = "gas.device_create"
    GAS_DEVICE_UPDATE = "gas.device_update"
    GAS_DEVICE_REMOVE = "gas.device_remove"
    GAS_DEVICE_CREDENTIAL = "gas.device_credential"
    GAS_IMPORT = "gas.import"
    # gas ingestion: past readings imported from CSV
    GAS_HISTORY_IMPORT = "gas.history_import"


class AuditDetailsError(ValueError):
    """Details that look like personal data or are not plain JSON values."""


def user_actor(user_id: int) -> str:
    return f"user:{user_id}"


def system_actor() -> str:
    """Scheduled work (purges, deadlines) and the pipeline."""
    return "system"


def cli_actor() -> str:
    """Whoever runs a ``cunan`` command: the operating-system account name."""
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry as stored."""

    seq: int
    recorded_at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    details: Mapping[str, DetailValue]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: AuditEntry) -> AuditRecord:
        return cls(
            seq=row.seq,
            recorded_at=row.recorded_at,
            actor=row.actor,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            details=json.loads(row.details),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def canonical_timestamp(moment: datetime) -> str:
    """UTC, microseconds, ``Z``: the one spelling hashed (both engines keep microseconds)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware (UTC) datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: object) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same bytes for the same content, always."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(
    *,
    seq: int,
    recorded_at: datetime,
    actor: str,
    action: str,
    target_type: str | None,
    target_id: str | None,
    details: Mapping[str, object],
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of every field of an entry, ``prev_hash`` included."""
    document = {
        "seq": seq,
        "recorded_at": canonical_timestamp(recorded_at),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def row_hash(row: AuditEntry, details: Mapping[str, object]) -> str:
    """:func:`entry_hash` of an entry row's columns, with ``details`` parsed from its JSON: the
    same computation when appending and when verifying what is stored."""
    return entry_hash(
        seq=row.seq,
        recorded_at=row.recorded_at,
        actor=row.actor,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=details,
        prev_hash=row.prev_hash,
    )


def check_details(details: Mapping[str, DetailValue]) -> None:
    """Refuse details that are not small JSON values or whose keys name personal data."""
    _check_value(details, "details")


def _check_value(value: object, where: str) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise AuditDetailsError(f"{where}: NaN and infinity are not JSON")
        return
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_STRING:
            raise AuditDetailsError(
                f"{where}: strings longer than {MAX_DETAIL_STRING} characters are refused "
                "(details hold ids and counts, not free text)"
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not _KEY_PATTERN.match(key):
                raise AuditDetailsError(f"{where}: key {key!r} is not a lower_snake_case name")
            # A count under such a key ("crops": 12 purged) is fine; anything else is not.
            if key in _PERSONAL_KEYS and not (item is None or isinstance(item, int)):
                raise AuditDetailsError(
                    f"{where}: key {key!r} names personal data; record ids and counts only"
                )
            _check_value(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    raise AuditDetailsError(f"{where}: {type(value).__name__} is not a JSON value")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Appends entries to the audit chain.

    Pass the caller's ``session`` so the audited change and its entry commit (or roll back)
    together; without one the entry gets its own transaction. Appends are serialised per
    database (see :meth:`cunan.storage.audit_repository.AuditRepository.lock_for_append`):
    on PostgreSQL an audited transaction holds the append lock until it ends, so record near
    its end.
    """

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._database = database
        self._clock = clock

    def record(
        self,
        action: str,
        *,
        actor: str,
        target_type: str | None = None,
        target_id: str | int | None = None,
        details: Mapping[str, DetailValue] | None = None,
        session: Session | None = None,
    ) -> AuditRecord:
        """Append one entry and return it as stored."""
        if not _ACTION_PATTERN.match(action) or len(action) > 64:
            raise ValueError(f"action {action!r} must be a dotted lower-case name")
        if not actor or len(actor) > 100:
            raise ValueError("actor must be 1-100 characters (e.g. 'user:12', 'system')")
        if target_type is not None and not _ACTION_PATTERN.match(target_type):
            raise ValueError(f"target_type {target_type!r} must be a lower-case name")
        clean = dict(details or {})
        check_details(clean)
        # Round-trip once so the hash covers exactly what a reader will parse back.
        stored_details = canonical_json(clean)
        target = None if target_id is None else str(target_id)[:64]
        if session is not None:
            return self._append(session, action, actor, target_type, target, stored_details)
        with self._database.transaction() as own:
            return self._append(own, action, actor, target_type, target, stored_details)

    def _append(
        self,
        session: Session,
        action: str,
        actor: str,
        target_type: str | None,
        target_id: str | None,
        stored_details: str,
    ) -> AuditRecord:
        repo = AuditRepository(session)
        repo.lock_for_append()
        last = repo.tail()
        seq = 1 if last is None else last.seq + 1
        prev_hash = GENESIS_HASH if last is None else last.hash
        # Microseconds are what both engines store; anything finer would break the hash.
        recorded_at = self._clock().astimezone(UTC)
        entry = AuditEntry(
            seq=seq,
            recorded_at=recorded_at,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=stored_details,
            prev_hash=prev_hash,
        )
        entry.hash = row_hash(entry, json.loads(stored_details))
        row = repo.append(entry)
        logger.debug("audit %d: %s by %s", seq, action, actor)
        return AuditRecord.from_row(row)

    def recent(
        self, *, limit: int = 50, action: str | None = None, actor: str | None = None
    ) -> list[AuditRecord]:
        """The newest entries first, optionally of one action or actor."""
        with self._database.read() as session:
            rows = AuditRepository(session).recent(limit=limit, action=action, actor=actor)
            return [AuditRecord.from_row(row) for row in rows]
