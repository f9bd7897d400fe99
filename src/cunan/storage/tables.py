"""The registry's tables (SQLAlchemy 2 typed declarative); the schema migrations must match."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cunan.storage.enums import (
    ConsentMethod,
    PersonCategory,
    PersonStatus,
    TemplateChangeKind,
    TemplateSource,
    UserRole,
)

#: Stable constraint names, so migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both engines (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        return (
            value.astimezone(UTC)
            if dialect.name != "sqlite"
            else value.astimezone(UTC).replace(tzinfo=None)
        )

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK on both engines: adding a value later is a plain migration.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Village(Base):
    __tablename__ = "villages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str | None] = mapped_column(String(32))  # administrative division code
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GridArea(Base):
    __tablename__ = "grid_areas"
    __table_args__ = (UniqueConstraint("village_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))


class Landlord(Base):
    """Owner of rental houses; may have a user account to report tenants (role landlord)."""

    __tablename__ = "landlords"

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )


class House(Base):
    """A standard address (门牌) in a village."""

    __tablename__ = "houses"
    __table_args__ = (UniqueConstraint("village_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="CASCADE"))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("grid_areas.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(300))
    landlord_id: Mapped[int | None] = mapped_column(
        ForeignKey("landlords.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Room(Base):
    __tablename__ = "rooms"
    __table_args__ = (
        UniqueConstraint("house_id", "label"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    house_id: Mapped[int] = mapped_column(ForeignKey("houses.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int] = mapped_column(Integer, default=1)


class Household(Base):
    """The family registered at a house (户)."""

    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("house_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    house_id: Mapped[int] = mapped_column(ForeignKey("houses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    registration_number: Mapped[str | None] = mapped_column(String(64))  # 户号


class Person(Base):
    __tablename__ = "people"
    # NULL ID numbers never collide on either engine, so people without one are fine. Ids
    # are never reused (SQLite reuses the highest without AUTOINCREMENT): audit entries and
    # sightings keep naming removed people.
    __table_args__ = (
        UniqueConstraint("village_id", "id_number"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="RESTRICT"))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    id_number: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[PersonCategory] = mapped_column(_enum(PersonCategory, "person_category"))
    status: Mapped[PersonStatus] = mapped_column(
        _enum(PersonStatus, "person_status"), default=PersonStatus.ACTIVE
    )
    is_minor: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Identified without a face (refused or withdrew consent): how staff check them instead.
    non_face_alternative: Mapped[bool] = mapped_column(Boolean, default=False)
    non_face_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    consents: Mapped[list[Consent]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )


class Consent(Base):
    __tablename__ = "consents"
    # Ids are never reused (SQLite reuses the highest without AUTOINCREMENT).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    collected_by: Mapped[str] = mapped_column(String(200))
    collected_at: Mapped[datetime]
    method: Mapped[ConsentMethod] = mapped_column(_enum(ConsentMethod, "consent_method"))
    scope: Mapped[str] = mapped_column(String(200))
    guardian_name: Mapped[str | None] = mapped_column(String(200))
    guardian_relation: Mapped[str | None] = mapped_column(String(50))
    withdrawn_at: Mapped[datetime | None]
    withdrawal_recorded_by: Mapped[str | None] = mapped_column(String(200))

    person: Mapped[Person] = relationship(back_populates="consents")


class ConsentForm(Base):
    """A photo of a consent's signed paper form, AES-GCM encrypted: the proof of who agreed,
    kept with the consent (deleted with the person, never with a withdrawal: it proves the
    consent the withdrawal ended)."""

    __tablename__ = "consent_forms"
    # Ids are never reused (SQLite reuses the highest without AUTOINCREMENT).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    consent_id: Mapped[int] = mapped_column(
        ForeignKey("consents.id", ondelete="CASCADE"), unique=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    media_type: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tenancy(Base):
    """A person living in a room; ``move_out`` NULL means still living there."""

    __tablename__ = "tenancies"
    __table_args__ = (
        CheckConstraint("move_out IS NULL OR move_out >= move_in", name="move_out_after_in"),
        Index("ix_tenancies_room_dates", "room_id", "move_in", "move_out"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    landlord_id: Mapped[int | None] = mapped_column(ForeignKey("landlords.id", ondelete="SET NULL"))
    move_in: Mapped[date] = mapped_column(Date)
    expected_end: Mapped[date | None] = mapped_column(Date)
    move_out: Mapped[date | None] = mapped_column(Date)
    reported_by: Mapped[str] = mapped_column(String(200))
    reported_at: Mapped[datetime]
    move_out_reported_by: Mapped[str | None] = mapped_column(String(200))
    move_out_reported_at: Mapped[datetime | None]


class EnrolmentPhoto(Base):
    """An enrolment photo, AES-GCM encrypted, kept to re-embed when the face model changes."""

    __tablename__ = "enrolment_photos"
    # Ids are never reused (SQLite reuses the highest without AUTOINCREMENT).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    media_type: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaceTemplate(Base):
    """One embedding of one person, AES-GCM encrypted, tagged with the model that made it."""

    __tablename__ = "face_templates"
    # Never reuse a deleted template's id (SQLite would without AUTOINCREMENT): an index
    # that missed a removal must not mistake a new template for the old one.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    #: The consent this template was stored under (withdrawal deletes the template).
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id", ondelete="CASCADE"))
    photo_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolment_photos.id", ondelete="SET NULL")
    )
    model_id: Mapped[str] = mapped_column(String(100), index=True)
    dim: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[TemplateSource] = mapped_column(_enum(TemplateSource, "template_source"))
    quality_face_width_px: Mapped[float | None] = mapped_column(Float)
    quality_sharpness: Mapped[float | None] = mapped_column(Float)
    quality_frontalness: Mapped[float | None] = mapped_column(Float)
    quality_brightness: Mapped[float | None] = mapped_column(Float)
    detector_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TemplateChange(Base):
    """Append-only feed of template additions and removals; ``seq`` only ever grows.

    A gallery index remembers the last ``seq`` it applied and replays the rest on start, so a
    crash between a commit and an index update cannot leave the two disagreeing.
    """

    __tablename__ = "template_changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[TemplateChangeKind] = mapped_column(_enum(TemplateChangeKind, "template_change"))
    template_id: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    # Ids are never reused (SQLite reuses the highest without AUTOINCREMENT).
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "user_role"))
    password_hash: Mapped[str] = mapped_column(String(255))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class KeyCheck(Base):
    """A key this database was encrypted with: its id and a check value (an HMAC of a fixed
    label under the key), so a key file from another data dir is refused before any write."""

    __tablename__ = "key_checks"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    check_value: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
