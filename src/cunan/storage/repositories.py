"""Queries over the registry tables; services call these inside their own transactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import TypeVar

from sqlalchemy import ColumnElement, delete, distinct, func, or_, select, text, update
from sqlalchemy.orm import Session

from cunan.storage.case_tables import CaseQuietFace
from cunan.storage.database import rowcount
from cunan.storage.enums import PersonStatus, TemplateChangeKind
from cunan.storage.gas_tables import GasCasePhoto
from cunan.storage.notify_tables import NotifyChannel
from cunan.storage.pipeline_tables import Camera, Sighting
from cunan.storage.tables import (
    Consent,
    ConsentForm,
    EnrolmentPhoto,
    FaceTemplate,
    GridArea,
    House,
    Household,
    Landlord,
    Person,
    Room,
    TemplateChange,
    Tenancy,
    User,
    Village,
)

_Row = TypeVar("_Row")

#: Key of the PostgreSQL advisory lock that orders the template change feed (see
#: :meth:`RegistryRepository.record_change`); distinct from the audit log's append lock.
TEMPLATE_CHANGE_LOCK_KEY = 0x43554E414E0B


class RegistryRepository:
    """All reads and writes the registry services need, on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- generic -----------------------------------------------------------------------------

    def add(self, row: _Row) -> _Row:
        self.session.add(row)
        self.session.flush()  # assigns the id now; constraint errors surface here
        return row

    def village(self, village_id: int) -> Village | None:
        return self.session.get(Village, village_id)

    def village_by_name(self, name: str) -> Village | None:
        return self.session.scalar(select(Village).where(Village.name == name))

    def villages(self) -> Sequence[Village]:
        return self.session.scalars(select(Village).order_by(Village.id)).all()

    def grid_area(self, area_id: int) -> GridArea | None:
        return self.session.get(GridArea, area_id)

    def house(self, house_id: int) -> House | None:
        return self.session.get(House, house_id)

    def house_by_address(self, village_id: int, address: str) -> House | None:
        return self.session.scalar(
            select(House).where(House.village_id == village_id, House.address == address)
        )

    def household(self, household_id: int) -> Household | None:
        return self.session.get(Household, household_id)

    def landlord(self, landlord_id: int) -> Landlord | None:
        return self.session.get(Landlord, landlord_id)

    def room(self, room_id: int, *, for_update: bool = False) -> Room | None:
        stmt = select(Room).where(Room.id == room_id)
        if for_update:
            # PostgreSQL: concurrent tenancy checks on one room run one after the other.
            # SQLite ignores it; its BEGIN IMMEDIATE already serialises writers.
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt)

    # -- people ------------------------------------------------------------------------------

    def person(self, person_id: int, *, for_update: bool = False) -> Person | None:
        stmt = select(Person).where(Person.id == person_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt)

    def person_by_id_number(self, village_id: int, id_number: str) -> Person | None:
        return self.session.scalar(
            select(Person).where(Person.village_id == village_id, Person.id_number == id_number)
        )

    def people(
        self,
        *,
        village_id: int | None = None,
        status: PersonStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Sequence[Person]:
        stmt = select(Person).order_by(Person.id).offset(offset)
        if village_id is not None:
            stmt = stmt.where(Person.village_id == village_id)
        if status is not None:
            stmt = stmt.where(Person.status == status)
        if limit is not None:
            stmt = stmt.limit(limit)
        return self.session.scalars(stmt).all()

    def delete_person(self, person: Person) -> None:
        self.session.delete(person)
        self.session.flush()

    # -- consent -----------------------------------------------------------------------------

    def valid_consent(self, person_id: int) -> Consent | None:
        """The newest consent of a person that has not been withdrawn."""
        return self.session.scalar(
            select(Consent)
            .where(Consent.person_id == person_id, Consent.withdrawn_at.is_(None))
            .order_by(Consent.collected_at.desc(), Consent.id.desc())
            .limit(1)
        )

    def consents(self, person_id: int) -> Sequence[Consent]:
        return self.session.scalars(
            select(Consent).where(Consent.person_id == person_id).order_by(Consent.id)
        ).all()

    # -- face data ---------------------------------------------------------------------------

    def template(self, template_id: int) -> FaceTemplate | None:
        return self.session.get(FaceTemplate, template_id)

    def templates_of(self, person_id: int) -> Sequence[FaceTemplate]:
        return self.session.scalars(
            select(FaceTemplate)
            .where(FaceTemplate.person_id == person_id)
            .order_by(FaceTemplate.id)
        ).all()

    def templates_by_ids(self, template_ids: Iterable[int]) -> Sequence[FaceTemplate]:
        ids = sorted(set(template_ids))
        if not ids:
            return []
        return self.session.scalars(
            select(FaceTemplate).where(FaceTemplate.id.in_(ids)).order_by(FaceTemplate.id)
        ).all()

    def template_batch(
        self, *, after_id: int, limit: int, model_id: str | None = None
    ) -> Sequence[FaceTemplate]:
        """Templates with ids above ``after_id``, in id order (keyset pagination)."""
        stmt = (
            select(FaceTemplate)
            .where(FaceTemplate.id > after_id)
            .order_by(FaceTemplate.id)
            .limit(limit)
        )
        if model_id is not None:
            stmt = stmt.where(FaceTemplate.model_id == model_id)
        return self.session.scalars(stmt).all()

    def photo_batch(self, *, after_id: int, limit: int) -> Sequence[EnrolmentPhoto]:
        return self.session.scalars(
            select(EnrolmentPhoto)
            .where(EnrolmentPhoto.id > after_id)
            .order_by(EnrolmentPhoto.id)
            .limit(limit)
        ).all()

    def photo(self, photo_id: int) -> EnrolmentPhoto | None:
        return self.session.get(EnrolmentPhoto, photo_id)

    def consent_form_of(self, consent_id: int) -> ConsentForm | None:
        """The photo of a consent's signed form, if one was taken."""
        return self.session.scalar(select(ConsentForm).where(ConsentForm.consent_id == consent_id))

    def consent_form_batch(self, *, after_id: int, limit: int) -> Sequence[ConsentForm]:
        return self.session.scalars(
            select(ConsentForm)
            .where(ConsentForm.id > after_id)
            .order_by(ConsentForm.id)
            .limit(limit)
        ).all()

    def set_consent_form_ciphertext(self, form_id: int, ciphertext: bytes, key_id: str) -> None:
        self.session.execute(
            update(ConsentForm)
            .where(ConsentForm.id == form_id)
            .values(ciphertext=ciphertext, key_id=key_id)
        )

    def template_refs(self) -> list[tuple[int, int, int | None, str]]:
        """(template id, person id, photo id, model id) of every template, by id; nothing
        decrypted (the plan of a re-embedding)."""
        rows = self.session.execute(
            select(
                FaceTemplate.id,
                FaceTemplate.person_id,
                FaceTemplate.photo_id,
                FaceTemplate.model_id,
            ).order_by(FaceTemplate.id)
        ).all()
        return [(int(r[0]), int(r[1]), r[2], str(r[3])) for r in rows]

    def template_of_photo(self, photo_id: int, model_id: str) -> int | None:
        """The id of a template of ``model_id`` made from this photo, if any."""
        return self.session.scalar(
            select(FaceTemplate.id)
            .where(FaceTemplate.photo_id == photo_id, FaceTemplate.model_id == model_id)
            .limit(1)
        )

    def photos_of(self, person_id: int) -> Sequence[EnrolmentPhoto]:
        return self.session.scalars(
            select(EnrolmentPhoto)
            .where(EnrolmentPhoto.person_id == person_id)
            .order_by(EnrolmentPhoto.id)
        ).all()

    def delete_templates(self, templates: Sequence[FaceTemplate]) -> None:
        ids = [t.id for t in templates]
        if ids:
            self.session.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(ids)))

    def delete_photos_of(self, person_id: int) -> int:
        result = self.session.execute(
            delete(EnrolmentPhoto).where(EnrolmentPhoto.person_id == person_id)
        )
        return rowcount(result)

    def set_template_ciphertext(self, template_id: int, ciphertext: bytes, key_id: str) -> None:
        self.session.execute(
            update(FaceTemplate)
            .where(FaceTemplate.id == template_id)
            .values(ciphertext=ciphertext, key_id=key_id)
        )

    def set_photo_ciphertext(self, photo_id: int, ciphertext: bytes, key_id: str) -> None:
        self.session.execute(
            update(EnrolmentPhoto)
            .where(EnrolmentPhoto.id == photo_id)
            .values(ciphertext=ciphertext, key_id=key_id)
        )

    def count_templates(self, *, person_id: int | None = None, model_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(FaceTemplate)
        if person_id is not None:
            stmt = stmt.where(FaceTemplate.person_id == person_id)
        if model_id is not None:
            stmt = stmt.where(FaceTemplate.model_id == model_id)
        return int(self.session.scalar(stmt) or 0)

    def count_photos(self, *, person_id: int | None = None) -> int:
        stmt = select(func.count()).select_from(EnrolmentPhoto)
        if person_id is not None:
            stmt = stmt.where(EnrolmentPhoto.person_id == person_id)
        return int(self.session.scalar(stmt) or 0)

    def template_counts(self, person_ids: Sequence[int]) -> dict[int, int]:
        if not person_ids:
            return {}
        rows = self.session.execute(
            select(FaceTemplate.person_id, func.count())
            .where(FaceTemplate.person_id.in_(person_ids))
            .group_by(FaceTemplate.person_id)
        ).all()
        return {int(pid): int(n) for pid, n in rows}

    def count_people_with_face_data(self) -> int:
        return int(self.session.scalar(select(func.count(distinct(FaceTemplate.person_id)))) or 0)

    def sighting_batch(self, *, after_id: int, limit: int) -> Sequence[Sighting]:
        """Sightings holding an encrypted crop or embedding, ids above ``after_id``, in order."""
        return self.session.scalars(
            select(Sighting)
            .where(
                Sighting.id > after_id,
                or_(
                    Sighting.crop_ciphertext.is_not(None),
                    Sighting.embedding_ciphertext.is_not(None),
                ),
            )
            .order_by(Sighting.id)
            .limit(limit)
        ).all()

    def set_sighting_ciphertexts(
        self,
        sighting_id: int,
        *,
        crop: bytes | None,
        embedding: bytes | None,
        key_id: str,
    ) -> None:
        self.session.execute(
            update(Sighting)
            .where(Sighting.id == sighting_id)
            .values(crop_ciphertext=crop, embedding_ciphertext=embedding, key_id=key_id)
        )

    def quiet_face_batch(self, *, after_id: int, limit: int) -> Sequence[CaseQuietFace]:
        return self.session.scalars(
            select(CaseQuietFace)
            .where(CaseQuietFace.id > after_id)
            .order_by(CaseQuietFace.id)
            .limit(limit)
        ).all()

    def set_quiet_face_ciphertext(self, quiet_id: int, ciphertext: bytes, key_id: str) -> None:
        self.session.execute(
            update(CaseQuietFace)
            .where(CaseQuietFace.id == quiet_id)
            .values(ciphertext=ciphertext, key_id=key_id)
        )

    def key_ids_in_use(self) -> set[str]:
        """Ids of every key some stored ciphertext was made with, across all encrypted tables:
        templates, enrolment photos, signed consent forms, sighting crops/embeddings, quiet
        faces, camera URLs and the notification channels added from the web."""
        used = set(self.session.scalars(select(FaceTemplate.key_id).distinct()).all())
        used |= set(self.session.scalars(select(EnrolmentPhoto.key_id).distinct()).all())
        used |= set(self.session.scalars(select(ConsentForm.key_id).distinct()).all())
        used |= set(self.session.scalars(select(CaseQuietFace.key_id).distinct()).all())
        # A sighting records the active key id even when it stored no crop or embedding;
        # only rows that hold a ciphertext need the key.
        used |= {
            key_id
            for key_id in self.session.scalars(
                select(Sighting.key_id)
                .where(
                    or_(
                        Sighting.crop_ciphertext.is_not(None),
                        Sighting.embedding_ciphertext.is_not(None),
                    )
                )
                .distinct()
            ).all()
            if key_id is not None
        }
        used |= {
            key_id
            for key_id in self.session.scalars(
                select(Camera.key_id).where(Camera.stream_url_ciphertext.is_not(None)).distinct()
            ).all()
            if key_id is not None
        }
        used |= set(self.session.scalars(select(NotifyChannel.key_id).distinct()).all())
        # Gas cases' site photos (cunan.gas.cases).
        used |= set(self.session.scalars(select(GasCasePhoto.key_id).distinct()).all())
        return used

    # -- change feed -------------------------------------------------------------------------

    def record_change(
        self, kind: TemplateChangeKind, *, template_id: int, person_id: int, model_id: str
    ) -> None:
        """Append to the change feed (the row's ``seq`` is assigned at the next flush).

        A follower remembers the highest ``seq`` it applied and later reads only ``seq`` above
        it, so seqs must become visible in order. On PostgreSQL a sequence hands out numbers
        at insert time, but transactions commit in any order: B could commit seq 11 while A
        still holds seq 10 uncommitted, a follower reading then would remember 11 and never
        see A's change (a missed removal keeps a deleted face matching). A transaction-scoped
        advisory lock taken before the insert and held until commit or rollback makes
        writers of the feed take and commit their seqs one after the other. SQLite needs
        nothing: CunAn's ``BEGIN IMMEDIATE`` already admits one writer at a time.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": TEMPLATE_CHANGE_LOCK_KEY}
            )
        self.session.add(
            TemplateChange(
                kind=kind, template_id=template_id, person_id=person_id, model_id=model_id
            )
        )

    def last_change_seq(self) -> int:
        return int(self.session.scalar(select(func.max(TemplateChange.seq))) or 0)

    def changes_since(self, seq: int, *, limit: int) -> Sequence[TemplateChange]:
        return self.session.scalars(
            select(TemplateChange)
            .where(TemplateChange.seq > seq)
            .order_by(TemplateChange.seq)
            .limit(limit)
        ).all()

    # -- tenancies ---------------------------------------------------------------------------

    def tenancy(self, tenancy_id: int) -> Tenancy | None:
        return self.session.get(Tenancy, tenancy_id)

    def tenancies_of(self, person_id: int) -> Sequence[Tenancy]:
        return self.session.scalars(
            select(Tenancy).where(Tenancy.person_id == person_id).order_by(Tenancy.move_in)
        ).all()

    def tenancies_overlapping(
        self, room_id: int, start: date, end: date | None, *, exclude_id: int | None = None
    ) -> Sequence[Tenancy]:
        """Tenancies of a room sharing at least one day with [start, end) (end None: open)."""
        conditions: list[ColumnElement[bool]] = [
            Tenancy.room_id == room_id,
            or_(Tenancy.move_out.is_(None), Tenancy.move_out > start),
        ]
        if end is not None:
            conditions.append(Tenancy.move_in < end)
        if exclude_id is not None:
            conditions.append(Tenancy.id != exclude_id)
        return self.session.scalars(select(Tenancy).where(*conditions)).all()

    def room_stays(self, room_ids: Sequence[int]) -> dict[int, list[tuple[date, date | None]]]:
        """Every tenancy's (move-in, move-out) per room, for checking capacity in bulk."""
        stays: dict[int, list[tuple[date, date | None]]] = {r: [] for r in room_ids}
        if room_ids:
            rows = self.session.execute(
                select(Tenancy.room_id, Tenancy.move_in, Tenancy.move_out).where(
                    Tenancy.room_id.in_(room_ids)
                )
            )
            for room_id, move_in, move_out in rows:
                stays[room_id].append((move_in, move_out))
        return stays

    def people_named(self, village_id: int, name: str) -> Sequence[Person]:
        return self.session.scalars(
            select(Person)
            .where(Person.village_id == village_id, Person.name == name)
            .order_by(Person.id)
        ).all()

    def lock_row(self, table: type[House | Household | Room | Village], row_id: int) -> None:
        """Hold a row lock to the end of the transaction (PostgreSQL; SQLite's BEGIN
        IMMEDIATE already serialises writers), so that check-then-insert is atomic."""
        self.session.execute(select(table.id).where(table.id == row_id).with_for_update())

    def current_tenancies(self, person_ids: Sequence[int]) -> dict[int, Tenancy]:
        """Each person's latest tenancy (open ones first)."""
        if not person_ids:
            return {}
        rows = self.session.scalars(
            select(Tenancy).where(Tenancy.person_id.in_(person_ids)).order_by(Tenancy.move_in)
        ).all()
        latest: dict[int, Tenancy] = {}
        for row in rows:
            prev = latest.get(row.person_id)
            if prev is None or prev.move_out is not None or row.move_out is None:
                latest[row.person_id] = row
        return latest

    # -- users -------------------------------------------------------------------------------

    def user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def user_by_name(self, username: str) -> User | None:
        return self.session.scalar(select(User).where(User.username == username))

    def count_users(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(User)) or 0)

    def landlord_of_user(self, user_id: int) -> Landlord | None:
        return self.session.scalar(select(Landlord).where(Landlord.user_id == user_id))

    def houses_of_landlord(self, landlord_id: int) -> Sequence[House]:
        return self.session.scalars(
            select(House).where(House.landlord_id == landlord_id).order_by(House.id)
        ).all()
