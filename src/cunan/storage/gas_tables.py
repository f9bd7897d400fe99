"""Tables of the gas-alarm module: businesses, contacts, devices, messages, alarms, push inbox."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cunan.storage.tables import Base, utcnow

#: 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is 64-bit already.
_BIGID = BigInteger().with_variant(Integer(), "sqlite")


class GasBusiness(Base):
    """A catering business that uses gas, on the same village and house registry as people."""

    __tablename__ = "gas_businesses"
    __table_args__ = (CheckConstraint("status IN ('active', 'closed')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(
        ForeignKey("villages.id", ondelete="RESTRICT"), index=True
    )
    #: The business's address on the house registry (None: an address outside it, in ``address``).
    house_id: Mapped[int | None] = mapped_column(ForeignKey("houses.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    #: The business licence's unified social credit code (统一社会信用代码) or licence number.
    licence_no: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str | None] = mapped_column(String(300))
    #: e.g. 中餐, 火锅, 烧烤, 快餐, 食堂 (free text: the zone's own categories).
    category: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GasContact(Base):
    """A business's owner, safety officer or maintainer: who is called when an alarm rises."""

    __tablename__ = "gas_contacts"
    __table_args__ = (
        UniqueConstraint("business_id", "role"),
        CheckConstraint(
            "role IN ('owner', 'safety_officer', 'maintainer_a', 'maintainer_b')", name="role"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(
        ForeignKey("gas_businesses.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    #: The account this contact logs in with (owner: their business; maintainer: the
    #: businesses they maintain).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class GasDeviceModel(Base):
    """A device model: how long it is silent before it counts as offline, when it is replaced."""

    __tablename__ = "gas_device_models"
    __table_args__ = (
        CheckConstraint("kind IN ('detector', 'controller', 'valve', 'fan')", name="kind"),
        CheckConstraint("power IN ('mains', 'battery')", name="power"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    maker: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    power: Mapped[str] = mapped_column(String(16), default="mains")
    #: Seconds without any message after which the device is offline.
    offline_after_s: Mapped[int] = mapped_column(Integer)
    #: Service life in months (detectors 36 in commercial kitchens, valves 120).
    service_months: Mapped[int | None] = mapped_column(Integer)
    low_lel: Mapped[float | None] = mapped_column(Float)
    high_lel: Mapped[float | None] = mapped_column(Float)


class GasDevice(Base):
    """A detector, controller, shut-off valve or fan link fitted in one business."""

    __tablename__ = "gas_devices"
    __table_args__ = (
        CheckConstraint("kind IN ('detector', 'controller', 'valve', 'fan')", name="kind"),
        CheckConstraint("gas_type IS NULL OR gas_type IN ('natural_gas', 'lpg')", name="gas_type"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(
        ForeignKey("gas_businesses.id", ondelete="RESTRICT"), index=True
    )
    #: The device's own identifier (IMEI or serial): its MQTT topic and push bodies name it.
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("gas_device_models.id", ondelete="SET NULL")
    )
    gas_type: Mapped[str | None] = mapped_column(String(16))
    #: Where in the business it is fitted (后厨灶台上方 ...).
    location: Mapped[str | None] = mapped_column(String(200))
    installed_on: Mapped[date | None] = mapped_column(Date)
    replacement_due: Mapped[date | None] = mapped_column(Date)
    #: Per-device set points (None: the model's, else the site defaults).
    low_lel: Mapped[float | None] = mapped_column(Float)
    high_lel: Mapped[float | None] = mapped_column(Float)
    #: SHA-256 of the device's own credential (MQTT password or push token); None: none issued.
    credential_hash: Mapped[str | None] = mapped_column(String(64))
    #: The same credential hashed the way Mosquitto's password file wants it (PBKDF2-SHA512,
    #: ``$7$...``): ``cunan gas mosquitto-config`` writes it out; None: no MQTT credential.
    broker_hash: Mapped[str | None] = mapped_column(String(200))
    last_message_at: Mapped[datetime | None]
    last_device_time: Mapped[datetime | None]
    last_lel: Mapped[float | None] = mapped_column(Float)
    online: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


class GasMessage(Base):
    """A device message as received (raw readings are kept briefly; minutes keep the history)."""

    __tablename__ = "gas_messages"
    __table_args__ = (
        # Idempotency: a device's message id is stored once, however often it is delivered.
        UniqueConstraint("device_id", "message_id"),
        Index("ix_gas_messages_device_time", "device_id", "device_time"),
        Index("ix_gas_messages_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("gas_devices.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    device_time: Mapped[datetime]
    received_at: Mapped[datetime]
    lel: Mapped[float | None] = mapped_column(Float)
    code: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool | None] = mapped_column(Boolean)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(8))


class GasReadingMinute(Base):
    """Per-minute aggregate of a detector's readings (kept long: the compliance history)."""

    __tablename__ = "gas_reading_minutes"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("gas_devices.id", ondelete="CASCADE"), primary_key=True
    )
    #: The minute (device time, UTC) the readings fall in.
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    lel_min: Mapped[float] = mapped_column(Float)
    lel_max: Mapped[float] = mapped_column(Float)
    lel_sum: Mapped[float] = mapped_column(Float)


class GasDeviceStatus(Base):
    """A device going online or offline: the history behind each business's online rate."""

    __tablename__ = "gas_device_status"
    __table_args__ = (
        CheckConstraint("state IN ('online', 'offline')", name="state"),
        Index("ix_gas_device_status_device_at", "device_id", "at"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("gas_devices.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime]


class GasAlarm(Base):
    """One alarm of one type on one device: updated while active, never duplicated."""

    __tablename__ = "gas_alarms"
    __table_args__ = (
        CheckConstraint("state IN ('active', 'cleared')", name="state"),
        CheckConstraint(
            "alarm_type IN ('low', 'high', 'fault', 'tamper', 'valve_closed', 'low_battery', "
            "'offline', 'replacement_overdue')",
            name="alarm_type",
        ),
        # At most one active alarm per device and type (a partial unique index on both engines).
        Index(
            "uq_gas_alarms_active",
            "device_id",
            "alarm_type",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
        Index("ix_gas_alarms_business_state", "business_id", "state"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("gas_devices.id", ondelete="CASCADE"))
    business_id: Mapped[int] = mapped_column(ForeignKey("gas_businesses.id", ondelete="CASCADE"))
    alarm_type: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(8), default="active")
    raised_at: Mapped[datetime]
    last_at: Mapped[datetime]
    updates: Mapped[int] = mapped_column(Integer, default=0)
    first_lel: Mapped[float | None] = mapped_column(Float)
    peak_lel: Mapped[float | None] = mapped_column(Float)
    last_lel: Mapped[float | None] = mapped_column(Float)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    cleared_at: Mapped[datetime | None]
    #: How many notification rounds went out (1: the first; each unanswered round adds one).
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    #: The on-site verification case (kind 'gas' in the shared cases table).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))


class GasAlarmEvent(Base):
    """What happened to an alarm and when: raised, updated, acknowledged, notified, cleared."""

    __tablename__ = "gas_alarm_events"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(
        ForeignKey("gas_alarms.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str | None] = mapped_column(String(100))
    lel: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)


class GasPushInbox(Base):
    """An HTTP push as received (answered 200 at once), processed after: the durable queue."""

    __tablename__ = "gas_push_inbox"
    __table_args__ = (
        # Idempotency of the push itself: the platform's own id for the delivery, if it has one.
        UniqueConstraint("source", "delivery_id"),
        Index("ix_gas_push_inbox_pending", "processed_at", "id"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Why the body could not be processed (type and message, no payload copied).
    error: Mapped[str | None] = mapped_column(Text)


class GasCaseStep(Base):
    """One move of a gas case along its stages: who moved it, when, and their note."""

    __tablename__ = "gas_case_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    #: None for the step that opened the case.
    from_stage: Mapped[str | None] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    #: What the person on site wrote (shown on the case, never copied into the audit log).
    note: Mapped[str | None] = mapped_column(Text)


class GasCasePhoto(Base):
    """A photo of the site attached to a gas case, AES-GCM encrypted like every photo."""

    __tablename__ = "gas_case_photos"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime]
