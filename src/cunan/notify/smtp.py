"""E-mail channel: one plain-text UTF-8 message per notification over SMTP."""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Literal

from cunan.notify.errors import NotificationError
from cunan.notify.message import Notification, to_payload

logger = logging.getLogger(__name__)

Security = Literal["none", "starttls", "ssl"]


class EmailNotifier:
    """Sends through an SMTP server: plain, STARTTLS or implicit TLS; login optional."""

    def __init__(
        self,
        host: str,
        *,
        sender: str,
        recipients: Sequence[str],
        port: int = 25,
        channel: str = "email",
        security: Security = "none",
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        timeout_s: float = 20.0,
        include_face_data: bool = False,
        subject_prefix: str = "[村安] ",
    ) -> None:
        if not recipients:
            raise ValueError("an e-mail channel needs at least one recipient")
        if security not in ("none", "starttls", "ssl"):
            raise ValueError("security must be none, starttls or ssl")
        self.host = host
        self.port = port
        self.channel = channel
        self._sender = sender
        self._recipients = list(recipients)
        self._security = security
        self._username = username
        self._password = password
        self._ca_file = ca_file
        self._timeout_s = timeout_s
        self._include_face_data = include_face_data
        self._subject_prefix = subject_prefix

    def message(self, notification: Notification) -> EmailMessage:
        payload = to_payload(notification, include_face_data=self._include_face_data)
        message = EmailMessage()
        message["Subject"] = f"{self._subject_prefix}{notification.title}"
        message["From"] = self._sender
        message["To"] = ", ".join(self._recipients)
        message["Date"] = format_datetime(notification.created_at)
        message["Message-ID"] = make_msgid(idstring=notification.id, domain="cunan.local")
        message["X-CunAn-Event"] = notification.kind
        message["X-CunAn-Delivery"] = notification.id
        details = json.dumps(payload["data"], ensure_ascii=False, indent=2, sort_keys=True)
        message.set_content(f"{notification.body}\n\n{details}\n", charset="utf-8")
        return message

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)

    def send(self, notification: Notification) -> None:
        message = self.message(notification)
        where = f"{self.host}:{self.port}"
        try:
            smtp: smtplib.SMTP
            if self._security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self._timeout_s, context=self._tls_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout_s)
            with smtp:
                if self._security == "starttls":
                    smtp.starttls(context=self._tls_context())
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotificationError(
                self.channel, f"{where} refused the login ({exc.smtp_code})", retryable=False
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotificationError(
                self.channel, f"{where} refused all recipients", retryable=False
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise NotificationError(
                self.channel,
                f"{where} answered {exc.smtp_code}",
                retryable=400 <= exc.smtp_code < 500,
            ) from exc
        except UnicodeEncodeError as exc:
            # smtplib sends AUTH as ASCII only: a Chinese password can never log in this way.
            raise NotificationError(
                self.channel,
                f"{where}: the user name or password has non-ASCII characters, which SMTP "
                "login cannot send",
                retryable=False,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationError(self.channel, f"{where} unreachable ({exc})") from exc
        if refused:
            # Counts only: recipient addresses are personal data.
            logger.warning(
                "notification %s: %s refused %d of %d recipients",
                notification.id,
                where,
                len(refused),
                len(self._recipients),
            )
        logger.debug("notification %s mailed via %s", notification.id, where)
