"""The registry service: every rule about people, consent, tenancies and face data, in one place."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import TypeVar

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cunan.audit.log import AuditAction, AuditLog, DetailValue, system_actor
from cunan.config import RegistrySettings
from cunan.registry.errors import (
    ConsentRequiredError,
    DuplicateIdNumberError,
    DuplicateRecordError,
    GuardianConsentRequiredError,
    InvalidRecordError,
    NotFoundError,
    RoomCapacityError,
)
from cunan.registry.identity import (
    IdNumberError,
    age_on,
    birth_date_from_id,
    mask_id_number,
    normalise_id_number,
    validate_id_number,
)
from cunan.registry.records import (
    ConsentInput,
    ConsentView,
    NewPerson,
    PersonChanges,
    PersonView,
    PhotoInput,
    StoredTemplate,
    TemplateChangeRecord,
    TemplateInput,
    TemplateListener,
    TenancyView,
    UnreadableTemplate,
    Vector,
)
from cunan.registry.validation import check_consent_time, check_row_lengths, peak_occupancy
from cunan.security.cipher import DecryptionError, FieldCipher, KeyUnavailableError
from cunan.security.keys import KeyFileError
from cunan.storage.database import Database
from cunan.storage.enums import PersonStatus, TemplateChangeKind
from cunan.storage.pipeline_repository import SightingRepository
from cunan.storage.repositories import RegistryRepository
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
    Tenancy,
    Village,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: The rows ``_create_place`` inserts: each has an integer primary key ``id``.
_PlaceRow = TypeVar("_PlaceRow", GridArea, Landlord, House, Room, Household)

#: Unreadable templates already logged by this process: each is reported once, loudly, not
#: at every gallery reload.
_REPORTED_UNREADABLE: set[tuple[str, int]] = set()

#: Audit actions of registry changes (``details`` hold ids and counts only).
PERSON_CREATE = AuditAction.PERSON_CREATE
PERSON_REMOVE = AuditAction.PERSON_REMOVE
PERSON_STATUS = AuditAction.PERSON_STATUS
PERSON_UPDATE = AuditAction.PERSON_UPDATE
CONSENT_RECORD = AuditAction.CONSENT_RECORD
CONSENT_WITHDRAW = AuditAction.CONSENT_WITHDRAW
TEMPLATE_ADD = AuditAction.TEMPLATE_ADD
TEMPLATE_DELETE = AuditAction.TEMPLATE_DELETE
TEMPLATE_PURGE = AuditAction.TEMPLATE_PURGE
TENANCY_ADD = AuditAction.TENANCY_ADD
TENANCY_MOVE_OUT = AuditAction.TENANCY_MOVE_OUT
PLACE_CREATE = AuditAction.PLACE_CREATE
PLACE_UPDATE = AuditAction.PLACE_UPDATE


def template_context(template_id: int, person_id: int, model_id: str) -> bytes:
    """Associated data binding a template's ciphertext to its row."""
    return f"template:{template_id}:{person_id}:{model_id}".encode()


def photo_context(photo_id: int, person_id: int) -> bytes:
    return f"photo:{photo_id}:{person_id}".encode()


def consent_form_context(form_id: int, consent_id: int, person_id: int) -> bytes:
    """Associated data binding a signed form's photo to its row, consent and person."""
    return f"consent-form:{form_id}:{consent_id}:{person_id}".encode()


def encode_vector(vector: Vector) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_vector(data: bytes, dim: int) -> Vector:
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if vector.shape != (dim,):
        raise InvalidRecordError(f"stored template has {vector.size} values, expected {dim}")
    return vector


@dataclass(frozen=True, slots=True)
class NewTenancy:
    """A tenancy to record together with a new person (see ``add_person``)."""

    room_id: int
    move_in: date
    reported_by: str
    reported_at: datetime | None = None
    expected_end: date | None = None
    move_out: date | None = None
    #: None: the house's landlord.
    landlord_id: int | None = None


@dataclass(slots=True)
class _Events:
    """Template changes of one call, told to listeners only once the call has committed."""

    added: list[tuple[int, int, Vector, str]]
    removed: list[int]


class UnitOfWorkAbortedError(RuntimeError):
    """A unit of work was left after one of its operations failed; it was rolled back."""


@dataclass(eq=False)
class UnitOfWork:
    """One transaction shared by several registry calls and the caller's own writes.

    Open it with :meth:`RegistryService.unit_of_work`. Registry calls made inside it (on
    this thread, against the same database) join its session instead of opening their
    own transaction; the caller writes its own rows through :attr:`session`. Everything
    commits together when the outermost ``with`` block ends, and only then are template
    listeners told; a rollback tells them nothing.
    """

    database: Database
    session: Session
    _deliveries: list[tuple[Callable[[_Events], None], _Events]] = field(
        default_factory=list, init=False
    )
    _failure: BaseException | None = field(default=None, init=False)

    @property
    def failed(self) -> bool:
        """An operation of this unit raised: it can only roll back now."""
        return self._failure is not None

    def _doom(self, error: BaseException) -> None:
        # A registry call that fails midway may have flushed part of its rows (PostgreSQL
        # has even aborted the transaction); committing what is left would break "all or
        # nothing", so the unit refuses to commit even if the caller catches the error.
        if self._failure is None:
            self._failure = error


#: The units open in this thread/task, innermost last. A ContextVar, not service state: the
#: service is shared between threads, and another thread's calls must not join this one's
#: transaction.
_open_units: ContextVar[tuple[UnitOfWork, ...]] = ContextVar("cunan_registry_units", default=())


def _unit_for(database: Database) -> UnitOfWork | None:
    for unit in reversed(_open_units.get()):
        if unit.database is database:
            return unit
    return None


class RegistryService:
    """Registry operations; each call is one transaction that commits whole or not at all,
    or one part of a caller's :class:`UnitOfWork` (see :meth:`unit_of_work`)."""

    def __init__(
        self,
        database: Database,
        cipher: FieldCipher,
        settings: RegistrySettings | None = None,
        *,
        listener: TemplateListener | None = None,
        clock: Callable[[], datetime] | None = None,
        audit: AuditLog | None = None,
        actor: str | None = None,
    ) -> None:
        self.database = database
        self.cipher = cipher
        self.settings = settings or RegistrySettings()
        self._listeners: list[TemplateListener] = [listener] if listener is not None else []
        self._clock = clock or (lambda: datetime.now(UTC))
        #: When set, every change is recorded in the audit log in the change's transaction.
        self.audit = audit
        #: Who the audit entries name (``user:<id>``, ``cli:<account>``, ``system``).
        self.actor = actor or system_actor()
        #: Templates skipped because they do not decrypt: id -> reason.
        self.unreadable_skipped: dict[int, str] = {}

    def add_listener(self, listener: TemplateListener) -> None:
        self._listeners.append(listener)

    def acting_as(self, actor: str) -> RegistryService:
        """The same service (database, key, listeners, audit log) recording ``actor``."""
        other = copy.copy(self)
        other.actor = actor
        return other

    def record_audit(
        self,
        action: str,
        *,
        target_type: str | None = None,
        target_id: int | str | None = None,
        details: Mapping[str, DetailValue] | None = None,
    ) -> None:
        """Record an entry in its own transaction (for reads such as exports), or in the open
        unit of work's; no-op without an audit log."""
        if self.audit is None:
            return
        unit = _unit_for(self.database)
        try:
            self.audit.record(
                action,
                actor=self.actor,
                target_type=target_type,
                target_id=target_id,
                details=details,
                session=unit.session if unit is not None else None,
            )
        except BaseException as exc:
            if unit is not None:
                unit._doom(exc)
            raise

    def _erase(
        self,
        repo: RegistryRepository,
        events: _Events,
        person_id: int,
        action: str,
        *,
        delete_person: bool,
    ) -> list[int]:
        """Delete a person's face data (and, with ``delete_person``, the person), audited
        with the counts; returns the removed template ids."""
        person = _get(repo.person(person_id, for_update=True), "person", person_id)
        removed, photos = self._delete_face_data(repo, events, person)
        if delete_person:
            repo.delete_person(person)
        self._audit(
            repo,
            action,
            target_type="person",
            target_id=person_id,
            details={"templates": len(removed), "photos": photos},
        )
        return removed

    def _create_place(
        self,
        repo: RegistryRepository,
        row: _PlaceRow,
        what: str,
        *,
        target_type: str,
        details: Mapping[str, DetailValue],
    ) -> int:
        """Insert a place (unique within its parent) and audit its creation, in one go."""
        created = _unique(repo, row, what)
        self._audit(
            repo, PLACE_CREATE, target_type=target_type, target_id=created.id, details=details
        )
        return created.id

    def _audit(
        self,
        repo: RegistryRepository,
        action: str,
        *,
        target_type: str,
        target_id: int,
        details: Mapping[str, DetailValue] | None = None,
    ) -> None:
        """Record inside the change's own transaction: both commit or neither does. Called
        last in a transaction, since on PostgreSQL the append lock is held until the end."""
        if self.audit is not None:
            self.audit.record(
                action,
                actor=self.actor,
                target_type=target_type,
                target_id=target_id,
                details=details,
                session=repo.session,
            )

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One transaction for several registry calls plus the caller's own writes.

        ::

            with registry.unit_of_work() as unit:
                person_id = registry.add_person(...)        # joins unit.session
                unit.session.add(SomethingOfTheCaller(...))  # same transaction

        Every rule and audit entry of the joined calls is kept; each call's audit entry is
        written in the unit's transaction. The unit commits when the block ends without an
        exception, and the listeners are then told every template change once, in order. An
        exception rolls everything back and tells them nothing. If a joined call fails, the
        unit can no longer commit: leaving the block raises UnitOfWorkAbortedError even if
        the caller caught the error. A unit opened inside another one (same database, same
        thread) joins it; the outermost commits.

        While a unit is open, do not open other transactions on the same database in the
        same thread (``database.transaction()``): SQLite refuses them
        (NestedTransactionError); on PostgreSQL they would wait for this one's locks.
        Registry calls are safe, they join.

        Make at most one registry *write* per unit: the first write takes the audit lock
        (PostgreSQL) and holds it to the end, so a second write would lock rows after the
        audit lock, the reverse of every standalone call's order, and could deadlock with
        one. 补录 and "is person X" each make one.
        """
        outer = _unit_for(self.database)
        if outer is not None:
            try:
                yield outer
            except BaseException as exc:
                outer._doom(exc)
                raise
            return
        with self.database.transaction() as session:
            unit = UnitOfWork(self.database, session)
            token = _open_units.set((*_open_units.get(), unit))
            try:
                yield unit
                if unit._failure is not None:
                    raise UnitOfWorkAbortedError(
                        "an operation of this unit of work failed; nothing was written"
                    ) from unit._failure
            finally:
                _open_units.reset(token)
        # Committed: now, and only now, the index may learn about the templates.
        for notify, events in unit._deliveries:
            notify(events)

    def _read(self, action: Callable[[RegistryRepository], T]) -> T:
        unit = _unit_for(self.database)
        if unit is not None:
            # Inside a unit: see its uncommitted rows (and, on SQLite, do not wait for it).
            # A failed read dooms the unit like a failed write: on PostgreSQL the error has
            # aborted the transaction, and the caller may have caught it.
            try:
                return action(RegistryRepository(unit.session))
            except BaseException as exc:
                unit._doom(exc)
                raise
        # A read-only snapshot: never waits for (or holds) SQLite's single writer.
        with self.database.read() as session:
            return action(RegistryRepository(session))

    def _write(self, action: Callable[[RegistryRepository, _Events], T]) -> T:
        events = _Events(added=[], removed=[])
        unit = _unit_for(self.database)
        if unit is not None:
            if unit.failed:
                raise UnitOfWorkAbortedError(
                    "an earlier operation of this unit of work failed; it can only roll back"
                ) from unit._failure
            try:
                result = action(RegistryRepository(unit.session), events)
            except BaseException as exc:
                unit._doom(exc)
                raise
            unit._deliveries.append((self._notify, events))
            return result
        with self.database.transaction() as session:
            result = action(RegistryRepository(session), events)
        self._notify(events)
        return result

    def _notify(self, events: _Events) -> None:
        for listener in self._listeners:
            # The change is committed; a listener failing must not turn it into an error.
            # The index catches up from the change feed (last_change_seq) on its next start.
            try:
                if events.removed:
                    listener.on_removed(list(events.removed))
                for template_id, person_id, vector, model_id in events.added:
                    listener.on_added(template_id, person_id, vector, model_id)
            except Exception:
                logger.warning("template listener %r failed", listener, exc_info=True)

    def _now(self) -> datetime:
        return self._clock()

    # -- places ------------------------------------------------------------------------------

    def add_village(self, name: str, *, code: str | None = None) -> int:
        name = _required(name, "village name")

        def act(repo: RegistryRepository, _: _Events) -> int:
            row = _unique(repo, Village(name=name, code=code), "village")
            self._audit(repo, PLACE_CREATE, target_type="village", target_id=row.id)
            return row.id

        return self._write(act)

    def village_id_by_name(self, name: str) -> int:
        village = self._read(lambda repo: repo.village_by_name(name))
        if village is None:
            raise NotFoundError("village", name)
        return village.id

    def default_village_id(self) -> int:
        """The only village of a single-village installation (the common case)."""
        villages = self._read(lambda repo: repo.villages())
        if len(villages) != 1:
            raise InvalidRecordError(
                f"{len(villages)} villages are registered; say which village to use"
            )
        return villages[0].id

    def add_grid_area(self, village_id: int, name: str) -> int:
        name = _required(name, "grid area name")

        def act(repo: RegistryRepository, _: _Events) -> int:
            _get(repo.village(village_id), "village", village_id)
            return self._create_place(
                repo,
                GridArea(village_id=village_id, name=name),
                "grid area",
                target_type="grid_area",
                details={"village_id": village_id},
            )

        return self._write(act)

    def add_landlord(
        self, village_id: int, name: str, *, phone: str | None = None, user_id: int | None = None
    ) -> int:
        name = _required(name, "landlord name")

        def act(repo: RegistryRepository, _: _Events) -> int:
            _get(repo.village(village_id), "village", village_id)
            return self._create_place(
                repo,
                Landlord(village_id=village_id, name=name, phone=phone, user_id=user_id),
                "landlord",
                target_type="landlord",
                details={"village_id": village_id, "user_id": user_id},
            )

        return self._write(act)

    def add_house(
        self,
        village_id: int,
        address: str,
        *,
        area_id: int | None = None,
        landlord_id: int | None = None,
    ) -> int:
        address = _required(address, "house address")

        def act(repo: RegistryRepository, _: _Events) -> int:
            _get(repo.village(village_id), "village", village_id)
            if area_id is not None:
                area = _get(repo.grid_area(area_id), "grid area", area_id)
                _same_village(area.village_id, village_id, f"grid area {area_id}")
            if landlord_id is not None:
                landlord = _get(repo.landlord(landlord_id), "landlord", landlord_id)
                _same_village(landlord.village_id, village_id, f"landlord {landlord_id}")
            if repo.house_by_address(village_id, address) is not None:
                raise InvalidRecordError(
                    f"house address {address!r} is already registered in village {village_id}"
                )
            return self._create_place(
                repo,
                House(
                    village_id=village_id,
                    address=address,
                    area_id=area_id,
                    landlord_id=landlord_id,
                ),
                "house",
                target_type="house",
                details={"village_id": village_id, "area_id": area_id, "landlord_id": landlord_id},
            )

        return self._write(act)

    def add_room(self, house_id: int, label: str, *, capacity: int = 1) -> int:
        label = _required(label, "room label")
        if capacity < 1:
            raise InvalidRecordError(f"room {label!r}: capacity must be at least 1, got {capacity}")

        def act(repo: RegistryRepository, _: _Events) -> int:
            _get(repo.house(house_id), "house", house_id)
            return self._create_place(
                repo,
                Room(house_id=house_id, label=label, capacity=capacity),
                f"room {label!r} of house {house_id}",
                target_type="room",
                details={"house_id": house_id, "capacity": capacity},
            )

        return self._write(act)

    def add_household(
        self, house_id: int, name: str, *, registration_number: str | None = None
    ) -> int:
        name = _required(name, "household name")

        def act(repo: RegistryRepository, _: _Events) -> int:
            _get(repo.house(house_id), "house", house_id)
            return self._create_place(
                repo,
                Household(house_id=house_id, name=name, registration_number=registration_number),
                f"household of house {house_id}",
                target_type="household",
                details={"house_id": house_id},
            )

        return self._write(act)

    def rename_place(
        self, kind: str, record_id: int, name: str, *, village_id: int | None = None
    ) -> None:
        """A place's new name, address or label (``cunan.registry.place_edit``); with
        ``village_id``, a place of another village is not found."""
        from cunan.registry import place_edit
        from cunan.storage.place_repository import PlaceRepository

        def act(repo: RegistryRepository, _: _Events) -> None:
            audit = partial(self._audit, repo)
            places = PlaceRepository(repo.session)
            place_edit.rename(places, kind, record_id, name, village_id=village_id, audit=audit)

        self._write(act)

    def remove_place(self, kind: str, record_id: int, *, village_id: int | None = None) -> None:
        """Delete a place nothing refers to any more (``cunan.registry.place_edit``)."""
        from cunan.registry import place_edit
        from cunan.storage.place_repository import PlaceRepository

        def act(repo: RegistryRepository, _: _Events) -> None:
            audit = partial(self._audit, repo)
            places = PlaceRepository(repo.session)
            place_edit.remove(places, kind, record_id, village_id=village_id, audit=audit)

        self._write(act)

    # -- people and consent ------------------------------------------------------------------

    def add_person(
        self,
        person: NewPerson,
        *,
        consent: ConsentInput | None = None,
        templates: Sequence[TemplateInput] = (),
        tenancy: NewTenancy | None = None,
    ) -> int:
        """Register a person, with their consent, face templates and (optionally) tenancy,
        all or nothing.

        Raises ConsentRequiredError for templates without consent, GuardianConsentRequiredError
        for a minor's consent without a guardian, DuplicateIdNumberError for an ID number
        already registered in the village.
        """
        name = _required(person.name, "person name")
        try:
            id_number = validate_id_number(
                person.id_number, person.id_document, today=self._now().date()
            )
        except IdNumberError as exc:
            raise InvalidRecordError(
                f"ID number {mask_id_number(normalise_id_number(person.id_number))}: {exc}"
            ) from None
        is_minor = person.is_minor or self._is_minor_by_id(id_number)
        if templates and consent is None:
            raise ConsentRequiredError(
                "face templates need the person's recorded consent (who collected it, when, "
                "how); without consent register them without face data and note the "
                "non-face alternative"
            )
        if consent is not None:
            self._check_consent(consent, is_minor=is_minor, who="the new person")
        for i, template in enumerate(templates, 1):
            _check_vector(template.vector, f"template {i}")
        if tenancy is not None:
            _required(tenancy.reported_by, "who reported the tenancy")
            _check_tenancy_dates(tenancy.move_in, tenancy.expected_end, tenancy.move_out)

        def act(repo: RegistryRepository, events: _Events) -> int:
            _get(repo.village(person.village_id), "village", person.village_id)
            if person.household_id is not None:
                _get(repo.household(person.household_id), "household", person.household_id)
            self._check_id_number_free(repo, person.village_id, id_number, None)
            row = Person(
                village_id=person.village_id,
                household_id=person.household_id,
                name=name,
                id_number=id_number,
                phone=(person.phone or "").strip() or None,
                category=person.category,
                status=PersonStatus.ACTIVE,
                is_minor=is_minor,
                non_face_alternative=person.non_face_note is not None,
                non_face_note=person.non_face_note,
            )
            _unique(repo, row, "person", village_id=person.village_id, id_number=id_number)
            consent_id: int | None = None
            template_ids: list[int] = []
            if consent is not None:
                consent_row = repo.add(_consent_row(row.id, consent))
                consent_id = consent_row.id
                self._store_consent_form(repo, consent_row, consent.form_photo)
                template_ids = [
                    self._store_template(repo, events, row, consent_row, template)
                    for template in templates
                ]
            tenancy_id = (
                self._insert_tenancy(repo, row.id, tenancy) if tenancy is not None else None
            )
            self._audit(
                repo,
                PERSON_CREATE,
                target_type="person",
                target_id=row.id,
                details={
                    "village_id": person.village_id,
                    "household_id": person.household_id,
                    "consent_id": consent_id,
                    "signed_form": consent is not None and consent.form_photo is not None,
                    "templates": len(template_ids),
                    "template_ids": template_ids,
                    "tenancy_id": tenancy_id,
                    "room_id": tenancy.room_id if tenancy is not None else None,
                    "minor": is_minor,
                    "non_face_alternative": person.non_face_note is not None,
                },
            )
            return row.id

        person_id = self._write(act)
        logger.info("registered person %d with %d template(s)", person_id, len(templates))
        return person_id

    def record_consent(self, person_id: int, consent: ConsentInput) -> int:
        """Record a (new) consent for an existing person; returns the consent id."""

        def act(repo: RegistryRepository, _: _Events) -> int:
            person = _get(repo.person(person_id, for_update=True), "person", person_id)
            self._check_consent(consent, is_minor=person.is_minor, who=f"person {person_id}")
            row = repo.add(_consent_row(person_id, consent))
            self._store_consent_form(repo, row, consent.form_photo)
            person.non_face_alternative = False
            self._audit(
                repo,
                CONSENT_RECORD,
                target_type="person",
                target_id=person_id,
                details={
                    "consent_id": row.id,
                    "guardian": row.guardian_name is not None,
                    "signed_form": consent.form_photo is not None,
                },
            )
            return row.id

        return self._write(act)

    def withdraw_consent(
        self,
        person_id: int,
        *,
        recorded_by: str,
        alternative_note: str,
        at: datetime | None = None,
    ) -> list[int]:
        """Withdraw every consent of a person: their templates and photos are deleted and the
        non-face alternative is recorded. Returns the deleted template ids."""
        recorded_by = _required(recorded_by, "who recorded the withdrawal")
        note = _required(alternative_note, "non-face alternative")
        when = at or self._now()

        def act(repo: RegistryRepository, events: _Events) -> list[int]:
            person = _get(repo.person(person_id, for_update=True), "person", person_id)
            consents = [c for c in repo.consents(person_id) if c.withdrawn_at is None]
            if not consents:
                raise ConsentRequiredError(f"person {person_id} has no consent to withdraw")
            removed, photos = self._delete_face_data(repo, events, person)
            for consent in consents:
                consent.withdrawn_at = when
                consent.withdrawal_recorded_by = recorded_by
            person.non_face_alternative = True
            person.non_face_note = note
            self._audit(
                repo,
                CONSENT_WITHDRAW,
                target_type="person",
                target_id=person_id,
                details={
                    "consent_ids": [c.id for c in consents],
                    "templates": len(removed),
                    "photos": photos,
                },
            )
            return removed

        removed = self._write(act)
        self._flush_deleted()
        logger.info(
            "consent withdrawn for person %d: %d template(s) deleted", person_id, len(removed)
        )
        return removed

    def set_status(self, person_id: int, status: PersonStatus) -> None:
        def act(repo: RegistryRepository, _: _Events) -> None:
            person = _get(repo.person(person_id), "person", person_id)
            before = person.status
            person.status = status
            self._audit(
                repo,
                PERSON_STATUS,
                target_type="person",
                target_id=person_id,
                details={"from": before.value, "to": status.value},
            )

        self._write(act)

    def remove_person(self, person_id: int) -> list[int]:
        """Delete a person with everything about them; returns the deleted template ids."""

        def act(repo: RegistryRepository, events: _Events) -> list[int]:
            return self._erase(repo, events, person_id, PERSON_REMOVE, delete_person=True)

        removed = self._write(act)
        self._flush_deleted()
        return removed

    def get_person(self, person_id: int) -> PersonView:
        def act(repo: RegistryRepository) -> PersonView:
            person = _get(repo.person(person_id), "person", person_id)
            return _person_view(repo, [person])[0]

        return self._read(act)

    def list_people(
        self,
        *,
        village_id: int | None = None,
        status: PersonStatus | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PersonView]:
        def act(repo: RegistryRepository) -> list[PersonView]:
            rows = repo.people(village_id=village_id, status=status, limit=limit, offset=offset)
            return _person_view(repo, rows)

        return self._read(act)

    def consents_of(self, person_id: int) -> list[ConsentView]:
        def act(repo: RegistryRepository) -> list[ConsentView]:
            _get(repo.person(person_id), "person", person_id)
            return [_consent_view(c) for c in repo.consents(person_id)]

        return self._read(act)

    def count_people_with_face_data(self) -> int:
        """People with at least one stored template (filing is required at 100,000)."""
        return self._read(lambda repo: repo.count_people_with_face_data())

    # -- face templates ----------------------------------------------------------------------

    def add_template(self, person_id: int, template: TemplateInput) -> int:
        return self.add_templates(person_id, [template])[0]

    def add_templates(self, person_id: int, templates: Sequence[TemplateInput]) -> list[int]:
        """Store templates for a person with a valid consent; all or none. Returns their ids."""
        for i, template in enumerate(templates, 1):
            _check_vector(template.vector, f"template {i}")

        def act(repo: RegistryRepository, events: _Events) -> list[int]:
            person = _get(repo.person(person_id, for_update=True), "person", person_id)
            consent = repo.valid_consent(person_id)
            if consent is None:
                raise ConsentRequiredError(
                    f"person {person_id} has no valid consent (none recorded, or withdrawn); "
                    "record consent before storing face data"
                )
            if person.is_minor and not (consent.guardian_name or "").strip():
                raise GuardianConsentRequiredError(
                    f"person {person_id} is a minor and consent {consent.id} has no guardian"
                )
            ids = [self._store_template(repo, events, person, consent, t) for t in templates]
            self._audit(
                repo,
                TEMPLATE_ADD,
                target_type="person",
                target_id=person_id,
                details={"templates": len(ids), "template_ids": ids, "consent_id": consent.id},
            )
            return ids

        return self._write(act)

    def delete_templates(self, template_ids: Sequence[int]) -> list[int]:
        """Delete templates by id; unknown ids are an error (nothing deleted)."""

        def act(repo: RegistryRepository, events: _Events) -> list[int]:
            rows = repo.templates_by_ids(template_ids)
            missing = sorted(set(template_ids) - {r.id for r in rows})
            if missing:
                raise NotFoundError("template", ", ".join(map(str, missing)))
            self._remove_templates(repo, events, rows)
            for owner in sorted({r.person_id for r in rows}):
                mine = [r.id for r in rows if r.person_id == owner]
                self._audit(
                    repo,
                    TEMPLATE_DELETE,
                    target_type="person",
                    target_id=owner,
                    details={"templates": len(mine), "template_ids": mine},
                )
            return [r.id for r in rows]

        return self._write(act)

    def purge_face_data(self, person_id: int) -> list[int]:
        """Delete all templates and photos of a person (e.g. after departure + retention)."""

        def act(repo: RegistryRepository, events: _Events) -> list[int]:
            return self._erase(repo, events, person_id, TEMPLATE_PURGE, delete_person=False)

        removed = self._write(act)
        self._flush_deleted()
        return removed

    def _flush_deleted(self) -> None:
        """After face data was deleted and committed: no old copy left in SQLite's WAL (inside
        a unit of work the caller's commit comes later; its next deletion flushes)."""
        if _unit_for(self.database) is None:
            self.database.flush_deleted()

    def iter_templates(
        self, *, model_id: str | None = None, batch_size: int = 1000
    ) -> Iterator[list[StoredTemplate]]:
        """Every readable template, decrypted, in batches of ``batch_size`` (for building an
        index). A row that does not decrypt is skipped and reported (:meth:`_readable`): one
        damaged template must not take the whole gallery down."""
        after = 0
        while True:
            rows = self._read(
                lambda repo, a=after: list(  # type: ignore[misc]
                    repo.template_batch(after_id=a, limit=batch_size, model_id=model_id)
                )
            )
            if not rows:
                return
            yield self._readable(rows)
            after = rows[-1].id

    def templates_of(
        self, person_id: int, *, skip_unreadable: bool = False
    ) -> list[StoredTemplate]:
        """A person's templates, decrypted; one that does not decrypt raises, or with
        ``skip_unreadable`` is skipped and reported (the gallery must go on)."""

        def act(repo: RegistryRepository) -> list[FaceTemplate]:
            _get(repo.person(person_id), "person", person_id)
            return list(repo.templates_of(person_id))

        rows = self._read(act)
        if not skip_unreadable:
            return [self._decrypt_template(row) for row in rows]
        return self._readable(rows)

    def unreadable_templates(self) -> list[UnreadableTemplate]:
        """Every stored template that does not decrypt or decode, with the reason (for
        ``cunan keys check``). Reads all templates: a maintenance call, not a hot path."""
        bad: list[UnreadableTemplate] = []
        after = 0
        while rows := self._read(
            lambda repo, a=after: list(repo.template_batch(after_id=a, limit=1000))  # type: ignore[misc]
        ):
            for row in rows:
                reason = self._unreadable_reason(row)
                if reason is not None:
                    bad.append(
                        UnreadableTemplate(
                            template_id=row.id,
                            person_id=row.person_id,
                            key_id=row.key_id,
                            reason=reason,
                        )
                    )
            after = rows[-1].id
        return bad

    def _readable(self, rows: Sequence[FaceTemplate]) -> list[StoredTemplate]:
        readable = []
        for row in rows:
            try:
                readable.append(self._decrypt_template(row))
            except KeyUnavailableError:
                raise  # no key at all: not one bad row, nothing can be read
            except (DecryptionError, KeyFileError, InvalidRecordError) as exc:
                self.unreadable_skipped[row.id] = str(exc)
                if (self.database.url, row.id) not in _REPORTED_UNREADABLE:
                    _REPORTED_UNREADABLE.add((self.database.url, row.id))
                    logger.error(
                        "template %d of person %d skipped, it cannot be read (%s); the "
                        "others still match. List all such rows with 'cunan keys check'",
                        row.id,
                        row.person_id,
                        exc,
                    )
        return readable

    def _unreadable_reason(self, row: FaceTemplate) -> str | None:
        try:
            self._decrypt_template(row)
        except KeyUnavailableError:
            raise
        except (DecryptionError, KeyFileError, InvalidRecordError) as exc:
            return str(exc)
        return None

    def count_templates(self, *, model_id: str | None = None) -> int:
        return self._read(lambda repo: repo.count_templates(model_id=model_id))

    def photo(self, photo_id: int) -> PhotoInput:
        """A kept enrolment photo, decrypted."""

        def act(repo: RegistryRepository) -> PhotoInput:
            row = _get(repo.photo(photo_id), "photo", photo_id)
            data = self.cipher.decrypt(
                row.ciphertext, photo_context(row.id, row.person_id), what=f"photo {row.id}"
            )
            return PhotoInput(data=data, media_type=row.media_type)

        return self._read(act)

    def _store_consent_form(
        self, repo: RegistryRepository, consent: Consent, photo: PhotoInput | None
    ) -> None:
        """Keep the photo of a consent's signed form, encrypted (whatever
        ``keep_enrolment_photos`` says: it is the proof of consent, not face data)."""
        if photo is None:
            return
        row = repo.add(
            ConsentForm(
                consent_id=consent.id,
                person_id=consent.person_id,
                media_type=photo.media_type,
                ciphertext=b"",
                key_id=self.cipher.active_key_id,
            )
        )
        # Encrypted after the insert: the row's id is part of the associated data.
        row.ciphertext = self.cipher.encrypt(
            photo.data, consent_form_context(row.id, consent.id, consent.person_id)
        )

    def consent_form(self, consent_id: int) -> PhotoInput:
        """The photo of a consent's signed form, decrypted (NotFound: none was taken)."""

        def act(repo: RegistryRepository) -> PhotoInput:
            row = _get(repo.consent_form_of(consent_id), "signed form of consent", consent_id)
            data = self.cipher.decrypt(
                row.ciphertext,
                consent_form_context(row.id, row.consent_id, row.person_id),
                what=f"signed form of consent {consent_id}",
            )
            return PhotoInput(data, row.media_type)

        return self._read(act)

    def photo_ids_of(self, person_id: int) -> list[int]:
        return self._read(lambda repo: [p.id for p in repo.photos_of(person_id)])

    def template_refs(self) -> list[tuple[int, int, int | None, str]]:
        """(template id, person id, photo id, model id) of every template; nothing decrypted."""
        return self._read(lambda repo: repo.template_refs())

    def add_template_from_photo(self, photo_id: int, template: TemplateInput) -> int | None:
        """Store ``template`` (another model's embedding of a kept enrolment photo) for the
        photo's person, linked to that photo. None, storing nothing, when the photo already
        has a template of that model: a re-embedding that was interrupted resumes where it
        stopped. Consent is checked as for any template."""
        _check_vector(template.vector, f"template of photo {photo_id}")

        def act(repo: RegistryRepository, events: _Events) -> int | None:
            photo = _get(repo.photo(photo_id), "photo", photo_id)
            person = _get(repo.person(photo.person_id, for_update=True), "person", photo.person_id)
            if repo.template_of_photo(photo_id, template.model_id) is not None:
                return None
            consent = repo.valid_consent(person.id)
            if consent is None:
                raise ConsentRequiredError(
                    f"person {person.id} has no valid consent (none recorded, or withdrawn); "
                    f"photo {photo_id} is not embedded again"
                )
            if person.is_minor and not (consent.guardian_name or "").strip():
                raise GuardianConsentRequiredError(
                    f"person {person.id} is a minor and consent {consent.id} has no guardian"
                )
            # The photo is already stored: the new template points at it, no second copy.
            template_id = self._store_template(repo, events, person, consent, template)
            row = _get(repo.session.get(FaceTemplate, template_id), "template", template_id)
            row.photo_id = photo_id
            self._audit(
                repo,
                TEMPLATE_ADD,
                target_type="person",
                target_id=person.id,
                details={
                    "templates": 1,
                    "template_ids": [template_id],
                    "consent_id": consent.id,
                    "photo_id": photo_id,
                    "model_id": template.model_id,
                },
            )
            return template_id

        return self._write(act)

    # -- change feed -------------------------------------------------------------------------

    def last_change_seq(self) -> int:
        """Grows with every template added or removed; an index stores the last one it saw."""
        return self._read(lambda repo: repo.last_change_seq())

    def changes_since(self, seq: int, *, limit: int = 10_000) -> list[TemplateChangeRecord]:
        return self._read(
            lambda repo: [
                TemplateChangeRecord(
                    seq=c.seq,
                    kind=c.kind,
                    template_id=c.template_id,
                    person_id=c.person_id,
                    model_id=c.model_id,
                    changed_at=c.changed_at,
                )
                for c in repo.changes_since(seq, limit=limit)
            ]
        )

    # -- tenancies ---------------------------------------------------------------------------

    def add_tenancy(
        self,
        person_id: int,
        room_id: int,
        *,
        move_in: date,
        reported_by: str,
        reported_at: datetime | None = None,
        expected_end: date | None = None,
        move_out: date | None = None,
        landlord_id: int | None = None,
    ) -> int:
        """A person moves into a room; refused if the room would hold more than its capacity
        on any day. The landlord defaults to the house's."""
        reported_by = _required(reported_by, "who reported the tenancy")
        _check_tenancy_dates(move_in, expected_end, move_out)

        tenancy = NewTenancy(
            room_id=room_id,
            move_in=move_in,
            reported_by=reported_by,
            reported_at=reported_at,
            expected_end=expected_end,
            move_out=move_out,
            landlord_id=landlord_id,
        )

        def act(repo: RegistryRepository, _: _Events) -> int:
            _get(repo.person(person_id), "person", person_id)
            tenancy_id = self._insert_tenancy(repo, person_id, tenancy)
            self._audit(
                repo,
                TENANCY_ADD,
                target_type="tenancy",
                target_id=tenancy_id,
                details={"person_id": person_id, "room_id": room_id},
            )
            return tenancy_id

        return self._write(act)

    def _insert_tenancy(self, repo: RegistryRepository, person_id: int, tenancy: NewTenancy) -> int:
        room_id, move_in, move_out = tenancy.room_id, tenancy.move_in, tenancy.move_out
        room = _get(repo.room(room_id, for_update=True), "room", room_id)
        house = _get(repo.house(room.house_id), "house", room.house_id)
        others = repo.tenancies_overlapping(room_id, move_in, move_out)
        if any(t.person_id == person_id for t in others):
            raise RoomCapacityError(
                f"person {person_id} already has a tenancy in room {room_id} overlapping {move_in}"
            )
        peak = peak_occupancy([(t.move_in, t.move_out) for t in others], move_in, move_out)
        if peak + 1 > room.capacity:
            raise RoomCapacityError(
                f"room {room_id} ({room.label!r}, house {house.id}) holds {room.capacity} "
                f"and already has {peak} tenant(s) from {move_in}; record a move-out first"
            )
        row = Tenancy(
            person_id=person_id,
            room_id=room_id,
            landlord_id=(
                tenancy.landlord_id if tenancy.landlord_id is not None else house.landlord_id
            ),
            move_in=move_in,
            expected_end=tenancy.expected_end,
            move_out=move_out,
            reported_by=tenancy.reported_by,
            reported_at=tenancy.reported_at or self._now(),
        )
        check_row_lengths(row, f"tenancy of person {person_id}")
        return repo.add(row).id

    def record_move_out(
        self,
        tenancy_id: int,
        *,
        move_out: date,
        reported_by: str,
        reported_at: datetime | None = None,
    ) -> None:
        reported_by = _required(reported_by, "who reported the move-out")

        def act(repo: RegistryRepository, _: _Events) -> None:
            row = _get(repo.tenancy(tenancy_id), "tenancy", tenancy_id)
            if move_out < row.move_in:
                raise InvalidRecordError(
                    f"tenancy {tenancy_id}: move-out {move_out} is before move-in {row.move_in}"
                )
            row.move_out = move_out
            row.move_out_reported_by = reported_by
            row.move_out_reported_at = reported_at or self._now()
            self._audit(
                repo,
                TENANCY_MOVE_OUT,
                target_type="tenancy",
                target_id=tenancy_id,
                details={
                    "person_id": row.person_id,
                    "room_id": row.room_id,
                    "move_out": move_out.isoformat(),
                },
            )

        self._write(act)

    def tenancies_of(self, person_id: int) -> list[TenancyView]:
        def act(repo: RegistryRepository) -> list[TenancyView]:
            _get(repo.person(person_id), "person", person_id)
            return [_tenancy_view(t) for t in repo.tenancies_of(person_id)]

        return self._read(act)

    # -- edits -------------------------------------------------------------------------------

    def update_person(self, person_id: int, changes: PersonChanges) -> None:
        """Change a person's name, phone, ID number, category or household (only the fields
        given); audited with the names of the changed fields, never their values."""
        fields: dict[str, object] = {}
        if changes.name is not None:
            fields["name"] = _required(changes.name, "person name")
        if changes.phone is not None:
            fields["phone"] = changes.phone.strip() or None
        if changes.category is not None:
            fields["category"] = changes.category
        if changes.household_id is not None:
            fields["household_id"] = changes.household_id or None
        id_number: str | None = None
        if changes.id_number:
            # The same checks as at registration: an edit must not bring in an impossible
            # birth date (and so skip the guardian rule) or a mistyped number.
            try:
                id_number = validate_id_number(
                    changes.id_number, changes.id_document, today=self._now().date()
                )
            except IdNumberError as exc:
                raise InvalidRecordError(
                    f"ID number {mask_id_number(normalise_id_number(changes.id_number))}: {exc}"
                ) from None

        def act(repo: RegistryRepository, _: _Events) -> None:
            person = _get(repo.person(person_id, for_update=True), "person", person_id)
            household = fields.get("household_id")
            if isinstance(household, int):
                _get(repo.household(household), "household", household)
            if id_number is not None and id_number != person.id_number:
                self._check_id_number_free(repo, person.village_id, id_number, person_id)
                fields["id_number"] = id_number
                if self._is_minor_by_id(id_number):
                    person.is_minor = True
            changed = sorted(k for k, v in fields.items() if getattr(person, k) != v)
            for key in changed:
                setattr(person, key, fields[key])
            check_row_lengths(person, f"person {person_id}")
            if changed:
                self._audit(
                    repo,
                    PERSON_UPDATE,
                    target_type="person",
                    target_id=person_id,
                    details={"fields": changed},
                )

        self._write(act)

    def set_house_landlord(self, house_id: int, landlord_id: int | None) -> None:
        """Link a house to its landlord (or unlink it with None)."""

        def act(repo: RegistryRepository, _: _Events) -> None:
            house = _get(repo.house(house_id), "house", house_id)
            if landlord_id is not None:
                landlord = _get(repo.landlord(landlord_id), "landlord", landlord_id)
                _same_village(landlord.village_id, house.village_id, f"landlord {landlord_id}")
            house.landlord_id = landlord_id
            self._audit(
                repo,
                PLACE_UPDATE,
                target_type="house",
                target_id=house_id,
                details={"landlord_id": landlord_id},
            )

        self._write(act)

    def set_room_capacity(self, room_id: int, capacity: int) -> None:
        """A room's capacity; refused below the number of people living in it now or later."""
        if capacity < 1:
            raise InvalidRecordError(f"room {room_id}: capacity must be at least 1, got {capacity}")

        def act(repo: RegistryRepository, _: _Events) -> None:
            room = _get(repo.room(room_id, for_update=True), "room", room_id)
            today = self._now().date()
            tenancies = repo.tenancies_overlapping(room_id, today, None)
            peak = peak_occupancy([(t.move_in, t.move_out) for t in tenancies], today, None)
            if peak > capacity:
                raise RoomCapacityError(
                    f"room {room_id}: {peak} people live there (now or booked); capacity "
                    f"{capacity} is too small"
                )
            room.capacity = capacity
            self._audit(
                repo,
                PLACE_UPDATE,
                target_type="room",
                target_id=room_id,
                details={"capacity": capacity},
            )

        self._write(act)

    # -- internals ---------------------------------------------------------------------------

    def _is_minor_by_id(self, id_number: str | None) -> bool:
        birth = birth_date_from_id(id_number)
        if birth is None:
            return False
        return age_on(birth, self._now().date()) < self.settings.guardian_consent_under_age

    def _check_consent(self, consent: ConsentInput, *, is_minor: bool, who: str) -> None:
        if not consent.collected_by.strip():
            raise ConsentRequiredError(f"consent for {who}: say who collected it")
        if consent.collected_at.tzinfo is None:
            raise InvalidRecordError(f"consent for {who}: collection time must carry a timezone")
        check_consent_time(consent.collected_at, self._now(), who)
        if is_minor and not (consent.guardian_name or "").strip():
            raise GuardianConsentRequiredError(
                f"{who} is a minor (under {self.settings.guardian_consent_under_age}): the "
                "consent must be given by a guardian; give the guardian's name"
            )

    def _check_id_number_free(
        self,
        repo: RegistryRepository,
        village_id: int,
        id_number: str | None,
        person_id: int | None,
    ) -> None:
        if id_number is None:
            return
        other = repo.person_by_id_number(village_id, id_number)
        if other is not None and other.id != person_id:
            raise DuplicateIdNumberError(
                f"ID number {mask_id_number(id_number)} is already registered in village "
                f"{village_id} as person {other.id}"
            )

    def _store_template(
        self,
        repo: RegistryRepository,
        events: _Events,
        person: Person,
        consent: Consent,
        template: TemplateInput,
    ) -> int:
        vector = np.asarray(template.vector, dtype=np.float32)
        photo_id: int | None = None
        if template.photo is not None and self.settings.keep_enrolment_photos:
            photo = repo.add(
                EnrolmentPhoto(
                    person_id=person.id,
                    media_type=template.photo.media_type,
                    ciphertext=b"",
                    key_id="",
                )
            )
            blob = self.cipher.encrypt(template.photo.data, photo_context(photo.id, person.id))
            photo.ciphertext, photo.key_id = blob, self.cipher.active_key_id
            photo_id = photo.id
        q = template.quality
        # The id is part of the associated data, so insert first and encrypt in the same
        # transaction; the placeholder is never visible outside it.
        row = repo.add(
            FaceTemplate(
                person_id=person.id,
                consent_id=consent.id,
                photo_id=photo_id,
                model_id=template.model_id,
                dim=int(vector.shape[0]),
                ciphertext=b"",
                key_id="",
                source=template.source,
                quality_face_width_px=q.face_width_px,
                quality_sharpness=q.sharpness,
                quality_frontalness=q.frontalness,
                quality_brightness=q.brightness,
                detector_score=q.detector_score,
            )
        )
        row.ciphertext = self.cipher.encrypt(
            encode_vector(vector), template_context(row.id, person.id, template.model_id)
        )
        row.key_id = self.cipher.active_key_id
        repo.record_change(
            TemplateChangeKind.ADDED,
            template_id=row.id,
            person_id=person.id,
            model_id=template.model_id,
        )
        repo.session.flush()
        events.added.append((row.id, person.id, vector.copy(), template.model_id))
        return row.id

    def _remove_templates(
        self, repo: RegistryRepository, events: _Events, rows: Sequence[FaceTemplate]
    ) -> None:
        for row in rows:
            repo.record_change(
                TemplateChangeKind.REMOVED,
                template_id=row.id,
                person_id=row.person_id,
                model_id=row.model_id,
            )
        repo.delete_templates(rows)
        events.removed.extend(r.id for r in rows)

    def _delete_face_data(
        self, repo: RegistryRepository, events: _Events, person: Person
    ) -> tuple[list[int], int]:
        """Delete a person's templates and photos, and their face and identity in the
        sightings: (deleted template ids, photo count)."""
        rows = repo.templates_of(person.id)
        self._remove_templates(repo, events, rows)
        photos = repo.delete_photos_of(person.id)
        unlinked, crops = SightingRepository(repo.session).forget_person(person.id)
        if unlinked:
            logger.info(
                "person %d: %d sighting(s) unlinked, %d crop(s) deleted", person.id, unlinked, crops
            )
        return [r.id for r in rows], photos

    def _decrypt_template(self, row: FaceTemplate) -> StoredTemplate:
        data = self.cipher.decrypt(
            row.ciphertext,
            template_context(row.id, row.person_id, row.model_id),
            what=f"template {row.id}",
        )
        return StoredTemplate(
            template_id=row.id,
            person_id=row.person_id,
            model_id=row.model_id,
            vector=decode_vector(data, row.dim),
        )


# -- module helpers ------------------------------------------------------------------------


def _required(value: str | None, what: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise InvalidRecordError(f"{what} is required")
    return cleaned


def _get(row: T | None, kind: str, record_id: int) -> T:
    if row is None:
        raise NotFoundError(kind, record_id)
    return row


def _same_village(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise InvalidRecordError(f"{what} belongs to village {actual}, not village {expected}")


def _unique(
    repo: RegistryRepository,
    row: T,
    what: str,
    *,
    village_id: int | None = None,
    id_number: str | None = None,
) -> T:
    """Insert, turning a unique-constraint refusal (a concurrent duplicate) into a clear error."""
    check_row_lengths(row, what)
    try:
        return repo.add(row)
    except IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        name = getattr(diag, "constraint_name", None) or str(exc.orig)
        if id_number is not None and "id_number" in name:
            raise DuplicateIdNumberError(
                f"ID number {mask_id_number(id_number)} is already registered in village "
                f"{village_id}"
            ) from exc
        raise DuplicateRecordError(
            f"{what} already exists or refers to a missing record ({name})"
        ) from exc


def _check_tenancy_dates(move_in: date, expected_end: date | None, move_out: date | None) -> None:
    if expected_end is not None and expected_end < move_in:
        raise InvalidRecordError(f"expected end {expected_end} is before move-in {move_in}")
    if move_out is not None and move_out < move_in:
        raise InvalidRecordError(f"move-out {move_out} is before move-in {move_in}")


def _check_vector(vector: Vector, what: str) -> None:
    array = np.asarray(vector)
    if array.ndim != 1 or array.size == 0:
        raise InvalidRecordError(
            f"{what}: embedding must be a non-empty 1-D vector, got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise InvalidRecordError(f"{what}: embedding contains NaN or infinite values")


def _consent_row(person_id: int, consent: ConsentInput) -> Consent:
    row = Consent(
        person_id=person_id,
        collected_by=consent.collected_by.strip(),
        collected_at=consent.collected_at,
        method=consent.method,
        scope=consent.scope,
        guardian_name=(consent.guardian_name or "").strip() or None,
        guardian_relation=consent.guardian_relation,
    )
    check_row_lengths(row, f"consent of person {person_id}")
    return row


def _consent_view(row: Consent) -> ConsentView:
    return ConsentView(
        id=row.id,
        collected_by=row.collected_by,
        collected_at=row.collected_at,
        method=row.method,
        scope=row.scope,
        guardian_name=row.guardian_name,
        withdrawn_at=row.withdrawn_at,
    )


def _tenancy_view(row: Tenancy) -> TenancyView:
    return TenancyView(
        id=row.id,
        person_id=row.person_id,
        room_id=row.room_id,
        landlord_id=row.landlord_id,
        move_in=row.move_in,
        expected_end=row.expected_end,
        move_out=row.move_out,
        reported_by=row.reported_by,
        reported_at=row.reported_at,
    )


def _person_view(repo: RegistryRepository, rows: Sequence[Person]) -> list[PersonView]:
    counts = repo.template_counts([p.id for p in rows])
    views = []
    for p in rows:
        views.append(
            PersonView(
                id=p.id,
                village_id=p.village_id,
                name=p.name,
                id_number_masked=mask_id_number(p.id_number),
                phone=p.phone,
                category=p.category,
                status=p.status,
                is_minor=p.is_minor,
                household_id=p.household_id,
                template_count=counts.get(p.id, 0),
                has_valid_consent=repo.valid_consent(p.id) is not None,
                non_face_alternative=p.non_face_alternative,
                non_face_note=p.non_face_note,
                created_at=p.created_at,
            )
        )
    return views
