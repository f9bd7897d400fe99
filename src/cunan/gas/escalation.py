"""Escalation of unacknowledged gas alarms: rounds of notifications to the business's contacts."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from cunan.duties.clock import Clock, system_clock
from cunan.gas.alarm_settings import GasAlarmSettings, SmsGatewaySettings
from cunan.gas.alarms import ALARM_LABELS, GasAlarmService
from cunan.gas.domain import ContactRole
from cunan.notify.dispatcher import NotificationDispatcher
from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, Notifier
from cunan.notify.retry import RetryingNotifier
from cunan.notify.webhook import WebhookNotifier
from cunan.storage.database import Database
from cunan.storage.gas_alarm_repository import GasAlarmRepository

logger = logging.getLogger(__name__)

#: Who the first round reaches; every later round adds maintainer B.
FIRST_ROUND = (ContactRole.OWNER, ContactRole.SAFETY_OFFICER, ContactRole.MAINTAINER_A)
LATER_ROUNDS = (*FIRST_ROUND, ContactRole.MAINTAINER_B)

ROLE_LABELS = {
    ContactRole.OWNER.value: "负责人",
    ContactRole.SAFETY_OFFICER.value: "安全员",
    ContactRole.MAINTAINER_A.value: "维保人员A",
    ContactRole.MAINTAINER_B.value: "维保人员B",
}

NOTIFICATION_KIND = "gas.alarm"


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, fields: Mapping[str, object]) -> str:
    """The template with ``{field}`` filled; unknown fields become empty, never an error."""
    return template.format_map(_Blank({k: "" if v is None else str(v) for k, v in fields.items()}))


class SmsGatewayNotifier(WebhookNotifier):
    """A generic SMS gateway: one signed POST (the webhook's HMAC headers) with the phones
    to text and the message, ``{"id", "kind", "phones", "text", "created_at"}``.

    A notification without phones (a business with no contact numbers) sends nothing.
    """

    def __init__(self, url: str, secret: str, template: str, **kwargs: Any) -> None:
        kwargs.setdefault("channel", "sms")
        super().__init__(url, secret, **kwargs)
        self.template = template

    def body(self, notification: Notification) -> bytes:
        data = notification.data
        payload = {
            "id": notification.id,
            "kind": notification.kind,
            "phones": list(data.get("phones") or []),
            "text": render(self.template, data.get("sms") or {}),
            "created_at": notification.created_at.astimezone(UTC).isoformat(),
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, notification: Notification) -> None:
        if not notification.data.get("phones"):
            return
        super().send(notification)


def build_sms(settings: SmsGatewaySettings) -> Notifier:
    inner = SmsGatewayNotifier(
        settings.url,
        settings.secret.get_secret_value(),
        settings.template,
        channel=settings.name,
        timeout_s=settings.timeout_s,
        headers=settings.headers,
        use_env_proxy=settings.use_env_proxy,
    )
    return RetryingNotifier(inner, settings.retry.policy(), channel=settings.name)


@dataclass(frozen=True, slots=True)
class Round:
    """One notification round sent for one alarm."""

    alarm_id: int
    level: int
    roles: tuple[str, ...]
    phones: tuple[str, ...]
    notification_id: str


class GasEscalation:
    """Sends each round that is due: the first at once when the alarm is raised, the next
    ``ack_timeout_s`` later (maintainer B added), then every ``repeat_every_s`` until the
    alarm is acknowledged or cleared.

    When the next round is due is stored with the alarm (``next_escalation_at``), so a
    restart neither forgets nor repeats a round; a round is claimed in the database before
    it is sent (one process sends it). The notification id is the alarm's and the round's,
    so a receiver drops a round delivered twice (a retry).
    """

    def __init__(
        self,
        database: Database,
        settings: GasAlarmSettings | None = None,
        *,
        dispatcher: NotificationDispatcher | None = None,
        sms: Notifier | None = None,
        clock: Clock = system_clock,
        zone: tzinfo = UTC,
    ) -> None:
        self.database = database
        self.settings = settings or GasAlarmSettings()
        self.dispatcher = dispatcher
        self.sms = sms
        self.clock = clock
        self.zone = zone

    def run_due(self, now: datetime | None = None) -> list[Round]:
        """Send every round due now; returns what was sent."""
        moment = now or self.clock()
        with self.database.read() as session:
            due = GasAlarmRepository(session).due_escalations(moment)
        rounds: list[Round] = []
        for alarm_id, level in due:
            claimed = self._claim(alarm_id, level, moment)
            if claimed is None:
                continue
            notification, sent = claimed
            self._send(notification)
            rounds.append(sent)
        return rounds

    def next_due(self) -> datetime | None:
        with self.database.read() as session:
            return GasAlarmRepository(session).next_escalation()

    def _claim(self, alarm_id: int, level: int, now: datetime) -> tuple[Notification, Round] | None:
        wait = self.settings.ack_timeout_s if level == 0 else self.settings.repeat_every_s
        with self.database.transaction() as session:
            repo = GasAlarmRepository(session)
            if not repo.claim_escalation(alarm_id, level, now + timedelta(seconds=wait)):
                return None
            alarm = repo.alarm(alarm_id)
            assert alarm is not None  # just claimed
            serial, location, business, address = repo.labels(alarm)
            roles = FIRST_ROUND if level == 0 else LATER_ROUNDS
            wanted = {r.value for r in roles}
            contacts = [c for c in repo.contacts(alarm.business_id) if c.role in wanted]
            phones = tuple(dict.fromkeys(c.phone for c in contacts if c.phone))
            round_no = level + 1
            label = ALARM_LABELS.get(alarm.alarm_type, alarm.alarm_type)
            value = "" if alarm.last_lel is None else f" {alarm.last_lel:g}%LEL"
            local = alarm.raised_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
            who = "、".join(f"{ROLE_LABELS[c.role]} {c.name}" for c in contacts) or "（无联系人）"
            title = f"燃气报警：{business} {label}" + (f"（第{round_no}次通知）" if level else "")
            body = (
                f"{business}（{address or '地址未登记'}）设备 {serial}"
                f"{'（' + location + '）' if location else ''} {label}{value}，"
                f"{local} 报警。通知：{who}。请立即到场处置并在平台确认。"
            )
            repo.add_events(
                [
                    {
                        "alarm_id": alarm_id,
                        "at": now,
                        "action": "notified",
                        "actor": "system:gas-escalation",
                        "lel": None,
                        "detail": f"round {round_no}: {','.join(r.value for r in roles)}",
                    }
                ]
            )
            notification = Notification(
                kind=NOTIFICATION_KIND,
                title=title,
                body=body,
                data={
                    "alarm_id": alarm_id,
                    "business_id": alarm.business_id,
                    "device_id": alarm.device_id,
                    "case_id": alarm.case_id,
                    "alarm_type": alarm.alarm_type,
                    "severity": alarm.severity,
                    "round": round_no,
                    "roles": [r.value for r in roles],
                    "contacts": [
                        {"role": c.role, "name": c.name, "phone": c.phone} for c in contacts
                    ],
                    "phones": list(phones),
                    "sms": {
                        "business": business,
                        "address": address or "",
                        "device": serial,
                        "location": location or "",
                        "alarm": label,
                        "value": value.strip(),
                        "time": local,
                        "round": round_no,
                    },
                },
                created_at=now,
                id=f"gas-alarm-{alarm_id}-round-{round_no}",
            )
        sent = Round(
            alarm_id=alarm_id,
            level=round_no,
            roles=tuple(r.value for r in roles),
            phones=phones,
            notification_id=notification.id,
        )
        logger.info("gas alarm %d: notification round %d", alarm_id, round_no)
        return notification, sent

    def _send(self, notification: Notification) -> None:
        if self.dispatcher is not None:
            try:
                self.dispatcher.dispatch(notification)
            except Exception:
                logger.exception("gas notification %s not dispatched", notification.id)
        if self.sms is not None:
            try:
                self.sms.send(notification)
            except NotificationError as exc:
                logger.warning("gas notification %s: SMS gateway failed: %s", notification.id, exc)
            except Exception:
                logger.exception("gas notification %s: SMS gateway crashed", notification.id)


class GasAlarmWorker:
    """The background work of gas alarms: due escalation rounds and the offline sweep,
    every ``poll_s`` and at once when :meth:`wake` is called (a new alarm to notify)."""

    def __init__(
        self,
        alarms: GasAlarmService,
        escalation: GasEscalation,
        *,
        poll_s: float = 15.0,
        sweep_every_s: float = 60.0,
    ) -> None:
        self.alarms = alarms
        self.escalation = escalation
        self.poll_s = poll_s
        self.sweep_every_s = sweep_every_s
        self._wake = threading.Event()
        self._last_sweep = 0.0

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> Sequence[Round]:
        rounds: Sequence[Round] = ()
        try:
            rounds = self.escalation.run_due()
        except Exception:
            logger.exception("gas escalation round failed; retrying at the next poll")
        if time.monotonic() - self._last_sweep >= self.sweep_every_s:
            self._last_sweep = time.monotonic()
            try:
                self.alarms.sweep_offline()
            except Exception:
                logger.exception("gas offline sweep failed; retrying at the next poll")
        return rounds

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            self._wake.wait(self.poll_s)
            self._wake.clear()
