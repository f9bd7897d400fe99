"""Settings of gas alarms (``[gas.alarms]``): set points, severities, escalation, cases, SMS."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from cunan.gas.domain import DEFAULT_SEVERITY, AlarmType, SetPoints, Severity
from cunan.notify.settings import RetrySettings

#: What the SMS gateway is asked to send; ``{placeholders}`` are filled per alarm.
DEFAULT_SMS_TEMPLATE = (
    "【燃气报警】{business}（{address}）{device}：{alarm}{value}，{time}。"
    "请立即到场处置并在平台确认。"
)


class SmsGatewaySettings(BaseModel):
    """A generic SMS gateway reached by a signed webhook: it gets the phones and the text."""

    name: str = "sms"
    url: str
    #: Shared secret for the same HMAC-SHA256 signature as the webhook channel.
    secret: SecretStr
    template: str = DEFAULT_SMS_TEMPLATE
    timeout_s: float = Field(default=10.0, gt=0.0)
    retry: RetrySettings = RetrySettings(attempts=3)
    headers: dict[str, str] = {}
    use_env_proxy: bool = False


class GasAlarmSettings(BaseModel):
    """How gas alarms are raised, escalated and turned into cases."""

    #: Site-wide set points (a device's own, else its model's, replace low/high).
    low_lel: float = Field(default=25.0, gt=0.0, le=100.0)
    high_lel: float = Field(default=50.0, gt=0.0, le=100.0)
    hysteresis_lel: float = Field(default=5.0, ge=0.0, le=50.0)
    #: A concentration alarm needs the condition for this long (device time) ...
    hold_s: float = Field(default=10.0, ge=0.0)
    #: ... or for this many readings in a row, whichever comes first.
    repeat_n: int = Field(default=3, ge=1, le=100)
    #: Severity per alarm type (types not named keep their default).
    severity: dict[AlarmType, Severity] = Field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    #: New alarms of these severities notify the business's contacts and escalate.
    escalate_severities: list[Severity] = [Severity.CRITICAL]
    #: Unacknowledged this long after the first round: notify again, maintainer B added.
    ack_timeout_s: float = Field(default=300.0, gt=0.0)
    #: Then again every so often until acknowledged or cleared.
    repeat_every_s: float = Field(default=600.0, gt=0.0)
    #: New alarms of these types open a gas case (on-site verification).
    case_types: list[AlarmType] = [AlarmType.HIGH]
    #: Alarms raised from readings older than this (a history import, a long backlog) are
    #: stored but neither notified nor turned into cases: nobody can act on them now.
    max_age_s: float = Field(default=3600.0, gt=0.0)
    #: How often the background work looks for due escalations and silent devices.
    poll_s: float = Field(default=15.0, gt=0.0)
    sms: SmsGatewaySettings | None = None

    def set_points(self, low: float | None = None, high: float | None = None) -> SetPoints:
        return SetPoints(
            low_lel=self.low_lel if low is None else low,
            high_lel=self.high_lel if high is None else high,
            hysteresis_lel=self.hysteresis_lel,
            hold_s=self.hold_s,
            repeat_n=self.repeat_n,
        )

    def severity_of(self, kind: AlarmType) -> Severity:
        return self.severity.get(kind, DEFAULT_SEVERITY[kind])
