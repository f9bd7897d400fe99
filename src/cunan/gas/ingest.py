"""Storing device messages in batches (idempotent), minute aggregates, device state, retention."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cunan.audit.log import AuditAction, AuditLog
from cunan.gas.domain import DeviceMessage, MessageKind
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.gas.payload import SERIAL_PATTERN, PayloadError, parse_time
from cunan.registry.roster import RowProblem, csv_encoding
from cunan.storage.database import Database
from cunan.storage.gas_ingest_repository import DeviceAdvance, GasIngestRepository

logger = logging.getLogger(__name__)

#: Called with the messages a batch newly stored (never duplicates), after the commit.
OnStored = Callable[[Sequence[DeviceMessage]], None]

#: Why a message was not stored (the counters' keys).
UNKNOWN_DEVICE = "unknown_device"
REMOVED_DEVICE = "removed_device"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class StoreReport:
    """What one batch did."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    #: Reason -> messages not stored (unknown or removed device).
    rejected: dict[str, int] = field(default_factory=dict)
    #: Serial -> reason, for the rejected messages' devices.
    rejected_serials: dict[str, str] = field(default_factory=dict)
    #: Devices that were offline (or never heard from) and are now online.
    came_online: int = 0


class IngestCounters:
    """Totals since start, per outcome (thread-safe): what the status page and bench read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, key: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[key] += n

    def get(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class GasIngestService:
    """Stores batches of device messages in one transaction each, then hands the new ones on.

    - (serial, message id) is stored once: duplicates within a batch or of earlier batches are
      counted and dropped;
    - messages of unknown or removed devices are counted per reason, never stored;
    - readings are added to the per-minute aggregates (``gas_reading_minutes``);
    - a device's ``last_device_time`` / ``last_lel`` follow device time (an older message
      arriving late is stored, but moves nothing back), ``last_message_at`` the newest
      receipt; a device that was offline (or never heard from) is marked online with a row
      in its online history;
    - ``on_stored`` gets the newly stored messages after the commit (the alarm rules).
    """

    def __init__(
        self,
        database: Database,
        *,
        on_stored: OnStored | None = None,
        settings: GasIngestSettings | None = None,
        counters: IngestCounters | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = _utcnow,
        record_online: bool = True,
    ) -> None:
        self.database = database
        #: Whether storing marks devices online and writes their ``online`` history rows
        #: (False when the alarm rules behind ``on_stored`` record the transitions).
        self.record_online = record_online
        self.on_stored = on_stored
        self.settings = settings or GasIngestSettings()
        self.counters = counters or IngestCounters()
        self.audit = audit or AuditLog(database)
        self._clock = clock

    def store(self, messages: Sequence[DeviceMessage]) -> StoreReport:
        report = StoreReport(received=len(messages))
        unique: dict[tuple[str, str], DeviceMessage] = {}
        for message in messages:
            unique.setdefault((message.serial, message.message_id), message)
        report.duplicates = len(messages) - len(unique)
        new: list[DeviceMessage] = []
        if unique:
            with self.database.transaction() as session:
                new = self._store(GasIngestRepository(session), list(unique.values()), report)
        report.stored = len(new)
        report.duplicates += len(unique) - len(new) - sum(report.rejected.values())
        self.counters.add("received", report.received)
        self.counters.add("stored", report.stored)
        self.counters.add("duplicates", report.duplicates)
        for reason, n in report.rejected.items():
            self.counters.add(reason, n)
        if report.rejected:
            logger.info(
                "gas ingest: %s messages rejected (%s)",
                sum(report.rejected.values()),
                ", ".join(f"{k} {v}" for k, v in sorted(report.rejected.items())),
            )
        if new and self.on_stored is not None:
            try:
                self.on_stored(new)
            except Exception:
                # Stored is stored: a failing consumer must not make the transport redeliver
                # (the redelivery would be a duplicate and reach nobody either).
                self.counters.add("callback_errors")
                logger.exception(
                    "gas ingest: the on_stored callback failed for %d messages", len(new)
                )
        return report

    def _store(
        self, repo: GasIngestRepository, messages: list[DeviceMessage], report: StoreReport
    ) -> list[DeviceMessage]:
        devices = repo.devices_by_serial(m.serial for m in messages)
        rows = []
        known: list[tuple[int, DeviceMessage]] = []
        for m in messages:
            ref = devices.get(m.serial)
            if ref is None or ref.removed:
                reason = UNKNOWN_DEVICE if ref is None else REMOVED_DEVICE
                report.rejected[reason] = report.rejected.get(reason, 0) + 1
                report.rejected_serials[m.serial] = reason
                continue
            known.append((ref.id, m))
            rows.append(
                {
                    "device_id": ref.id,
                    "message_id": m.message_id,
                    "kind": m.kind.value,
                    "device_time": m.device_time,
                    "received_at": m.received_at,
                    "lel": m.lel,
                    "code": m.code,
                    "active": m.active,
                    "battery_pct": m.battery_pct,
                    "source": m.source,
                }
            )
        inserted = repo.insert_messages(rows)
        new = [(d, m) for d, m in known if (d, m.message_id) in inserted]
        if not new:
            return []
        minutes: dict[tuple[int, datetime], list[float]] = {}
        advances: dict[int, DeviceAdvance] = {}
        first_heard: dict[int, datetime] = {}
        for device_id, m in new:
            if m.kind is MessageKind.READING and m.lel is not None:
                minutes.setdefault((device_id, _minute(m.device_time)), []).append(m.lel)
            first_heard[device_id] = min(first_heard.get(device_id, m.received_at), m.received_at)
            advances[device_id] = _advance(advances.get(device_id), device_id, m)
        repo.upsert_minutes(
            [
                {
                    "device_id": device_id,
                    "minute": minute,
                    "n": len(values),
                    "lel_min": min(values),
                    "lel_max": max(values),
                    "lel_sum": sum(values),
                }
                for (device_id, minute), values in sorted(minutes.items())
            ]
        )
        repo.advance_devices([advances[d] for d in sorted(advances)])
        # Online from the first message of the batch that proves the device alive.
        if self.record_online:
            came_back = repo.mark_online(sorted(first_heard), min(first_heard.values()))
            report.came_online = len(came_back)
        return [m for _, m in new]

    # -- retention -----------------------------------------------------------------------------

    def purge(self, *, actor: str = "system", dry_run: bool = False) -> dict[str, int]:
        """Delete raw messages older than ``raw_days`` and minutes older than ``minutes_days``
        (and processed push bodies older than ``raw_days``), a chunk per transaction."""
        now = self._clock()
        raw_cut = now - timedelta(days=self.settings.raw_days)
        minutes_cut = now - timedelta(days=self.settings.minutes_days)
        chunk = self.settings.purge_chunk
        if dry_run:
            with self.database.read() as session:
                messages, minutes = GasIngestRepository(session).count_before(raw_cut, minutes_cut)
            return {"messages": messages, "minutes": minutes, "push_bodies": 0}
        totals = {"messages": 0, "minutes": 0, "push_bodies": 0}
        deleters: list[tuple[str, Callable[[GasIngestRepository], int]]] = [
            ("messages", lambda r: r.delete_messages_before(raw_cut, chunk)),
            ("minutes", lambda r: r.delete_minutes_before(minutes_cut, chunk)),
            ("push_bodies", lambda r: r.delete_inbox_before(raw_cut, chunk)),
        ]
        for key, deleter in deleters:
            while True:
                with self.database.transaction() as session:
                    n = deleter(GasIngestRepository(session))
                totals[key] += n
                if n < chunk:
                    break
        if any(totals.values()):
            self.audit.record(
                AuditAction.PURGE,
                actor=actor,
                target_type="gas_messages",
                details={
                    **{f"gas_{k}": v for k, v in totals.items()},
                    "raw_before": raw_cut.isoformat(),
                    "minutes_before": minutes_cut.isoformat(),
                },
            )
        return totals

    # -- CSV history ---------------------------------------------------------------------------

    def import_history_csv(
        self,
        path: Path,
        *,
        actor: str,
        progress: Callable[[int, int], None] | None = None,
        batch_size: int = 2000,
    ) -> HistoryImportReport:
        """Import past readings from a CSV of ``serial,time,lel`` (or 设备编号,时间,浓度),
        UTF-8 or GB18030. The message id is the reading's time, so importing the same file
        twice stores nothing twice. Rows that do not parse, and rows of unknown devices, are
        reported by their line number; the rest are stored."""
        text = path.read_bytes().decode(csv_encoding(path))
        lines = list(csv.reader(io.StringIO(text)))
        report = HistoryImportReport(source=path.name)
        if not lines:
            report.problems.append(RowProblem(1, "", "文件为空 (the file is empty)"))
            return report
        header = [h.strip().lower() for h in lines[0]]
        columns = _history_columns(header)
        if isinstance(columns, RowProblem):
            report.problems.append(columns)
            return report
        now = self._clock()
        batch: list[tuple[int, DeviceMessage]] = []
        total = len(lines) - 1
        for n, cells in enumerate(lines[1:], start=2):
            if not any(c.strip() for c in cells):
                continue
            report.rows += 1
            parsed = _history_row(n, cells, lines[0], columns, now)
            if isinstance(parsed, RowProblem):
                report.problems.append(parsed)
            else:
                batch.append((n, parsed))
            if len(batch) >= batch_size:
                self._store_history(batch, report, lines[0][columns[0]])
                batch = []
                if progress is not None:
                    progress(n - 1, total)
        if batch:
            self._store_history(batch, report, lines[0][columns[0]])
        if progress is not None:
            progress(total, total)
        self.audit.record(
            AuditAction.GAS_HISTORY_IMPORT,
            actor=actor,
            details={
                "rows": report.rows,
                "stored": report.stored,
                "duplicates": report.duplicates,
                "problems": len(report.problems),
            },
        )
        return report

    def _store_history(
        self, batch: list[tuple[int, DeviceMessage]], report: HistoryImportReport, column: str
    ) -> None:
        result = self.store([m for _, m in batch])
        report.stored += result.stored
        report.duplicates += result.duplicates
        for line, m in batch:
            reason = result.rejected_serials.get(m.serial)
            if reason is not None:
                words = "设备未登记" if reason == UNKNOWN_DEVICE else "设备已拆除"
                report.problems.append(
                    RowProblem(line, column, f"{words} ({reason.replace('_', ' ')}: {m.serial})")
                )


@dataclass(slots=True)
class HistoryImportReport:
    source: str
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    problems: list[RowProblem] = field(default_factory=list)


_HEADERS = (("serial", "设备编号"), ("time", "时间"), ("lel", "浓度"))


def _history_columns(header: list[str]) -> tuple[int, int, int] | RowProblem:
    found: list[int] = []
    for names in _HEADERS:
        index = next((i for i, h in enumerate(header) if h in names), None)
        if index is None:
            return RowProblem(
                1, names[0], f"缺少列 {names[1]} (missing column {names[0]} / {names[1]})"
            )
        found.append(index)
    return found[0], found[1], found[2]


def _history_row(
    line: int,
    cells: list[str],
    header: list[str],
    columns: tuple[int, int, int],
    now: datetime,
) -> DeviceMessage | RowProblem:
    def cell(i: int) -> str:
        return cells[i].strip() if i < len(cells) else ""

    serial = cell(columns[0])
    if not SERIAL_PATTERN.fullmatch(serial):
        return RowProblem(line, header[columns[0]], "设备编号无效 (not a device serial)")
    raw_time = cell(columns[1])
    try:
        moment = parse_time(int(raw_time) if raw_time.isdigit() else raw_time, "csv", "time")
    except PayloadError as exc:
        return RowProblem(line, header[columns[1]], f"时间无效 ({exc.reason})")
    if moment > now + timedelta(minutes=5):
        return RowProblem(line, header[columns[1]], "时间在将来 (a time in the future)")
    try:
        lel = float(cell(columns[2]))
    except ValueError:
        return RowProblem(line, header[columns[2]], "浓度不是数字 (not a number)")
    if not 0.0 <= lel <= 100.0:
        return RowProblem(line, header[columns[2]], "浓度超出 0-100 %LEL (out of range)")
    return DeviceMessage(
        serial=serial,
        message_id=f"csv-{int(moment.timestamp() * 1000)}",
        kind=MessageKind.READING,
        device_time=moment,
        received_at=now,
        lel=lel,
        source="csv",
    )


def _advance(current: DeviceAdvance | None, device_id: int, m: DeviceMessage) -> DeviceAdvance:
    newest = current
    if newest is None or m.device_time > newest.device_time:
        newest = DeviceAdvance(
            device_id,
            m.device_time,
            max(m.received_at, current.received_at) if current else m.received_at,
            current.lel if current else None,
            current.lel_time if current else None,
        )
    elif m.received_at > newest.received_at:
        newest = DeviceAdvance(
            device_id, newest.device_time, m.received_at, newest.lel, newest.lel_time
        )
    if (
        m.kind is MessageKind.READING
        and m.lel is not None
        and (newest.lel_time is None or m.device_time > newest.lel_time)
    ):
        newest = DeviceAdvance(
            device_id, newest.device_time, newest.received_at, m.lel, m.device_time
        )
    return newest
