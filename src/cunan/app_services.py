"""What a principal may do: reads scoped and paginated in SQL, changes checked and audited."""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from cunan.audit.log import AuditAction
from cunan.authz import Permission, Principal, hidden, landlord_scope, require
from cunan.errors import Forbidden, InvalidInput, NotFound, Unavailable
from cunan.registry.identity import IdDocument
from cunan.registry.records import (
    ConsentInput,
    NewPerson,
    PersonChanges,
    PhotoInput,
    TemplateInput,
)
from cunan.settings_overrides import EDITABLE
from cunan.storage.enums import ConsentMethod, PersonCategory, PersonStatus
from cunan.storage.query_repository import Page, PeopleFilter, QueryRepository

if TYPE_CHECKING:
    from cunan.app import CunanApp
    from cunan.audit.chain import ChainReport
    from cunan.audit.privacy import PrivacyReport
    from cunan.calibrate import SiteCalibration
    from cunan.capture.snapshot import Snapshot
    from cunan.cases.parked import ParkedEvents
    from cunan.cases.views import CaseMember, CaseView, ParkedEvent
    from cunan.duties.departures import DepartureReportView
    from cunan.duties.reconcile import ReconcileResult, TaskView
    from cunan.duties.retention import PurgeReport
    from cunan.gas.registry import GasRegistry
    from cunan.notify.admin import ChannelAdmin
    from cunan.notify.deadletters import DeadLetterView, ReplayOutcome
    from cunan.notify.message import Notifier
    from cunan.pipeline.camera_health import CameraHealthView
    from cunan.pipeline.cameras import CameraRecord, CameraSettings
    from cunan.pipeline.runner import CameraTarget
    from cunan.pipeline.store import CameraStore
    from cunan.registry.import_jobs import ImportJob
    from cunan.registry.importer import ImportOptions, ImportReport
    from cunan.registry.keys import ResetReport, RotationReport, UnreadableValue
    from cunan.registry.records import ConsentView, UnreadableTemplate
    from cunan.registry.reembed import ReembedReport
    from cunan.registry.service import NewTenancy, RegistryService
    from cunan.stats.service import CasePeriod, VillageStats

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The ID-number tail people may be searched by: never a pattern, never the whole number.
_ID_TAIL = re.compile(r"[0-9Xx]{1,6}")

#: Largest page any listing returns, whatever the caller asks for.
MAX_PAGE = 200


def page(offset: int = 0, limit: int = 50) -> Page:
    if offset < 0 or limit < 1:
        raise InvalidInput("offset must be >= 0 and limit >= 1")
    return Page(offset=offset, limit=min(limit, MAX_PAGE))


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class PersonSummary:
    id: int
    name: str
    id_number_masked: str
    category: str
    status: str
    room_id: int | None
    room: str | None
    house_id: int | None
    address: str | None
    landlord: str | None


@dataclass(frozen=True, slots=True)
class TenancySummary:
    id: int
    room_id: int
    room: str
    house_id: int
    address: str
    move_in: date
    expected_end: date | None
    move_out: date | None


@dataclass(frozen=True, slots=True)
class PersonDetail:
    id: int
    name: str
    id_number_masked: str
    phone: str | None
    category: str
    status: str
    is_minor: bool
    template_count: int
    has_valid_consent: bool
    non_face_note: str | None
    created_at: datetime
    tenancies: list[TenancySummary]


@dataclass(frozen=True, slots=True)
class RoomSummary:
    id: int
    label: str
    capacity: int
    occupants: int


@dataclass(frozen=True, slots=True)
class TenantSummary:
    tenancy_id: int
    person_id: int
    name: str
    room: str
    move_in: date
    expected_end: date | None


@dataclass(frozen=True, slots=True)
class HouseSummary:
    id: int
    address: str
    landlord_id: int | None
    landlord: str | None


@dataclass(frozen=True, slots=True)
class HouseDetail:
    id: int
    address: str
    landlord_id: int | None
    rooms: list[RoomSummary]
    tenants: list[TenantSummary]


@dataclass(frozen=True, slots=True)
class SightingSummary:
    id: int
    camera_id: int | None
    camera: str
    started_at: datetime
    ended_at: datetime
    decision: str
    person_id: int | None
    distance: float | None
    faces_used: int


@dataclass(frozen=True, slots=True)
class AuditEntryView:
    seq: int
    recorded_at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    details: str
    #: The account name of a ``user:<id>`` actor (None for other actors or a removed user).
    actor_name: str | None = None
    #: The entry's link in the hash chain (``cunan audit verify --anchor`` takes a head's).
    hash: str = ""


@dataclass(frozen=True, slots=True)
class CandidateView:
    person_id: int
    name: str
    distance: float
    #: The distance in plain words (:func:`closeness_of`): ``very_alike``, ``alike``,
    #: ``unsure`` or ``unlike``.
    closeness: str = "unlike"
    #: The person's first kept enrolment photo (None: the village keeps none of theirs).
    photo_id: int | None = None


#: Largest photo of a signed consent form kept (a phone photo of one A4 page fits easily).
MAX_FORM_PHOTO_BYTES = 10 * 1024 * 1024


def signed_form_photo(data: bytes) -> PhotoInput:
    """A photo of a signed consent form as it is kept: a JPEG or PNG file (told by its first
    bytes, not by what the browser claims) of at most ``MAX_FORM_PHOTO_BYTES``."""
    if len(data) > MAX_FORM_PHOTO_BYTES:
        raise InvalidInput(
            f"签字同意书照片太大 (the signed form's photo is {len(data) // (1024 * 1024)} MB; "
            f"at most {MAX_FORM_PHOTO_BYTES // (1024 * 1024)} MB)"
        )
    if data.startswith(b"\xff\xd8\xff"):
        return PhotoInput(data, "image/jpeg")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PhotoInput(data, "image/png")
    raise InvalidInput(
        "签字同意书照片须为 JPG 或 PNG 图片 (the signed form's photo must be a JPG or PNG picture)"
    )


def closeness_of(distance: float, threshold: float) -> str:
    """How alike two faces are, in words staff read, measured against the 1:1 threshold
    (``faces.match_threshold``: at or under it the engine calls two faces one person).
    Well under it is ``very_alike``; a quarter over it ``unsure`` (look-alikes and poor
    pictures land there); beyond, ``unlike``."""
    if distance <= 0.75 * threshold:
        return "very_alike"
    if distance <= threshold:
        return "alike"
    if distance <= 1.25 * threshold:
        return "unsure"
    return "unlike"


@dataclass(frozen=True, slots=True)
class CasePerson:
    """The person a case's outcome named, as the case pages show them."""

    id: int
    name: str
    room: str | None
    house_id: int | None
    address: str | None


@dataclass(frozen=True, slots=True)
class CaseLabels:
    """Words for a page of cases: the people their outcomes named and their assignees."""

    people: dict[int, CasePerson]
    assignees: dict[int, str]


@dataclass(frozen=True, slots=True)
class CaseWorker:
    """An enabled staff or administrator account a case can be assigned to."""

    id: int
    username: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class LandlordChoice:
    """A landlord as a 补录 form offers them."""

    id: int
    name: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class CaseDesk:
    """A case page's words and choices: labels, assignable accounts, landlords."""

    labels: CaseLabels
    workers: list[CaseWorker]
    landlords: list[LandlordChoice]


@dataclass(frozen=True, slots=True)
class FaceIdentification:
    face: int
    box: list[float]
    decision: str
    person_id: int | None
    person_name: str | None
    distance: float | None
    score: float | None
    candidates: list[CandidateView]
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class FaceComparison:
    """A 1:1 comparison of the largest faces of two uploaded images (``faces compare``)."""

    #: ``same_person`` or ``different_people``.
    decision: str
    same_person: bool
    distance: float
    threshold: float
    model_id: str
    #: The reference population of the operating point (``faces.population``), or None.
    population: str | None
    population_distance: float | None
    population_threshold: float | None
    #: Share of different-person pairs of the population this alike (when "same person").
    false_match_rate: float | None
    #: Share of same-person pairs of the population this different (when "different").
    false_non_match_rate: float | None
    #: How sure, in one sentence, Chinese first (empty without a population).
    certainty: str
    #: Faces found in each image (the largest of each is compared).
    faces_found: list[int]


@dataclass(frozen=True, slots=True)
class NewPersonRequest:
    name: str
    category: PersonCategory
    consent_by: str | None
    consent_method: ConsentMethod = ConsentMethod.PAPER
    id_number: str | None = None
    phone: str | None = None
    is_minor: bool = False
    guardian: str | None = None
    non_face_note: str | None = None
    room_id: int | None = None
    landlord_id: int | None = None
    move_in: date | None = None
    #: What ``id_number`` is (a resident ID unless a passport or permit is stated).
    id_document: IdDocument = IdDocument.RESIDENT_ID
    #: Enrol although the face matches another registered person (twins).
    allow_same_face: bool = False
    #: The village by name (installations with several); default: the account's village.
    village: str | None = None
    #: A photo of the signed consent form (JPEG or PNG file bytes), kept with the consent.
    consent_form: bytes | None = None


_NO_LABELS: dict[str, str | None] = {
    "person": None,
    "room": None,
    "address": None,
    "landlord": None,
}


@dataclass(frozen=True, slots=True)
class OverdueDeparture:
    """A tenancy whose move-out was reported late (``late_report``) or not at all."""

    kind: str
    tenancy_id: int
    person_id: int
    room_id: int
    landlord_id: int | None
    due_from: date
    deadline: date
    days_overdue: int
    reported_at: datetime | None
    person: str | None
    room: str | None
    address: str | None
    landlord: str | None


@dataclass(frozen=True, slots=True)
class DepartureDeadline:
    """A current tenancy due to end: its move-out must be reported by ``deadline``."""

    tenancy_id: int
    person_id: int
    person: str
    room: str
    house_id: int
    address: str
    expected_end: date
    deadline: date
    #: Days until the deadline (0: today is the last day).
    days_left: int


@dataclass(frozen=True, slots=True)
class ConfirmationTask:
    """Please confirm: a tenant not seen by the cameras for long still lives here."""

    id: int
    tenancy_id: int
    person_id: int
    landlord_id: int | None
    not_seen_since: datetime
    days_not_seen: int
    status: str
    opened_at: datetime
    closed_at: datetime | None
    outcome: str | None
    person: str | None
    room: str | None
    address: str | None
    landlord: str | None


@dataclass(frozen=True, slots=True)
class SettingsChange:
    applied_now: list[str]
    after_restart: list[str]


@dataclass(frozen=True, slots=True)
class CameraRequest:
    name: str
    url: str
    public_notice_posted: bool
    enabled: bool = True
    house_id: int | None = None
    zone_json: str | None = None
    area_id: int | None = None
    #: Capture and decision settings (frame rate, tiling, timeouts); default: the defaults.
    settings: CameraSettings | None = None
    #: Why recognition here is lawful and where the notice hangs (free text).
    public_notice_reason: str | None = None


def _finite(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


class AppServices:
    """The application's operations for one principal; CLI and API are adapters over it.

    Reads use read-only transactions (never queued behind camera writers or grouping) and
    are narrowed in SQL to what the principal may see: another landlord's house answers
    exactly like a house that does not exist.
    """

    def __init__(self, app: CunanApp, principal: Principal) -> None:
        self.app = app
        self.principal = principal
        self._db = app.registry.database

    # -- time ---------------------------------------------------------------------------------

    def today(self) -> date:
        """Today in the village's time zone (never the host's)."""
        return datetime.now(UTC).astimezone(self.app.settings.duties.zone).date()

    # -- people -------------------------------------------------------------------------------

    def list_people(self, filters: PeopleFilter, at: Page) -> Listing[PersonSummary]:
        require(self.principal, Permission.READ_REGISTRY)
        from cunan.registry.identity import mask_id_number

        if filters.id_tail is not None and not _ID_TAIL.fullmatch(filters.id_tail):
            raise InvalidInput("id_tail: the last 1-6 characters of an ID number (digits, X)")

        with self._db.read() as session:
            rows, total = QueryRepository(session).people(
                filters, at, today=self.today(), landlord_id=landlord_scope(self.principal)
            )
            items = [
                PersonSummary(
                    id=r.person.id,
                    name=r.person.name,
                    id_number_masked=mask_id_number(r.person.id_number),
                    category=r.person.category.value,
                    status=r.person.status.value,
                    room_id=r.room_id,
                    room=r.room_label,
                    house_id=r.house_id,
                    address=r.address,
                    landlord=r.landlord_name,
                )
                for r in rows
            ]
        return Listing(items, total, at.offset, at.limit)

    def get_person(self, person_id: int) -> PersonDetail:
        require(self.principal, Permission.READ_REGISTRY)
        scope = landlord_scope(self.principal)
        with self._db.read() as session:
            repo = QueryRepository(session)
            if repo.person_visible(person_id, scope) is None:
                raise hidden("person", person_id)
            tenancies = [
                TenancySummary(
                    id=t.id,
                    room_id=r.id,
                    room=r.label,
                    house_id=h.id,
                    address=h.address,
                    move_in=t.move_in,
                    expected_end=t.expected_end,
                    move_out=t.move_out,
                )
                for t, r, h in repo.tenancies_of(person_id, scope)
            ]
        view = self.app.registry.service.get_person(person_id)
        return PersonDetail(
            id=view.id,
            name=view.name,
            id_number_masked=view.id_number_masked,
            phone=view.phone if scope is None else None,
            category=view.category.value,
            status=view.status.value,
            is_minor=view.is_minor,
            template_count=view.template_count if scope is None else 0,
            has_valid_consent=view.has_valid_consent,
            non_face_note=view.non_face_note if scope is None else None,
            created_at=view.created_at,
            tenancies=tenancies,
        )

    def enrol_person(
        self,
        request: NewPersonRequest,
        photos: Sequence[bytes],
        *,
        photo_names: Sequence[str] | None = None,
    ) -> int:
        """Register a person with consent and enrolment photos (each judged, all or none);
        ``photo_names`` (file names) name the photos in errors instead of "photo N"."""
        require(self.principal, Permission.ENROL)

        if photos and not (request.consent_by or "").strip():
            raise InvalidInput("存储人脸数据须先记录知情同意 (consent_by is required with photos)")
        if not photos and not request.non_face_note:
            raise InvalidInput("请上传照片，或说明不采集人脸时的核验方式 (photo or non_face_note)")
        service = self.app.registry.service.acting_as(self.principal.actor)
        # Checked before the photos are (slowly) judged: a mistyped village costs nothing.
        village_id = (
            service.village_id_by_name(request.village)
            if request.village
            else self.principal.village_id or service.default_village_id()
        )
        templates = self._templates(photos, photo_names)
        if templates and not request.allow_same_face:
            self._refuse_same_face(templates)
        person, consent, tenancy = self._person_records(request, village_id)
        return service.add_person(person, consent=consent, templates=templates, tenancy=tenancy)

    def _person_records(
        self, request: NewPersonRequest, village_id: int
    ) -> tuple[NewPerson, ConsentInput | None, NewTenancy | None]:
        """The person, consent (collected now) and tenancy (moved in today in the village
        unless said) a request describes; enrolment and 补录 build them the same way."""
        from cunan.registry.service import NewTenancy

        if request.consent_form and not request.consent_by:
            raise InvalidInput(
                "有签字同意书照片却没有记录同意 (a signed form's photo needs the consent: "
                "consent_by)"
            )
        consent = (
            ConsentInput(
                collected_by=request.consent_by,
                collected_at=datetime.now(UTC),
                method=request.consent_method,
                guardian_name=request.guardian,
                form_photo=signed_form_photo(request.consent_form)
                if request.consent_form
                else None,
            )
            if request.consent_by
            else None
        )
        tenancy = (
            NewTenancy(
                room_id=request.room_id,
                move_in=request.move_in or self.today(),
                reported_by=self.principal.actor,
                landlord_id=request.landlord_id,
            )
            if request.room_id is not None
            else None
        )
        person = NewPerson(
            name=request.name,
            village_id=village_id,
            category=request.category,
            id_number=request.id_number,
            id_document=request.id_document,
            phone=request.phone,
            is_minor=request.is_minor,
            non_face_note=request.non_face_note,
        )
        return person, consent, tenancy

    def _refuse_same_face(self, templates: Sequence[TemplateInput]) -> None:
        """The same-face rule (docs/registry.md), on the live gallery (no decryption)."""
        from cunan.registry.consistency import SAME_FACE_DISTANCE, same_face_problem

        # The nearest template itself (not a person's aggregated distance): one identical
        # template is the same face however far the person's other photos are.
        nearest = self.app.gallery.nearest_template(np.vstack([t.vector for t in templates]))
        if nearest is None:
            return
        problem = same_face_problem((f"person {nearest[0]}", nearest[1]), SAME_FACE_DISTANCE)
        if problem is not None:
            raise InvalidInput(
                problem.replace(
                    "use --allow-same-face",
                    "enrol with allow_same_face (on the command line: --allow-same-face)",
                )
                + " (nothing was stored)"
            )

    def identify(self, data: bytes, *, top: int = 3) -> list[FaceIdentification]:
        """Each face in an uploaded image: registered person or unknown (a 1:N search,
        audited with counts only)."""
        require(self.principal, Permission.IDENTIFY)
        from cunan.faces.imageio import decode_image

        settings = self.app.settings
        picture = decode_image(data, source="upload", max_pixels=settings.faces.max_image_pixels)
        faces = self.app.face_engine.analyze(picture, embed=True)
        embedded = [f for f in faces if f.embedding is not None]
        results = (
            self.app.gallery.identify(
                np.vstack([f.embedding for f in embedded if f.embedding is not None]),
                qualities=[f.quality for f in embedded],
                top=top,
            )
            if embedded
            else []
        )
        names: dict[int, str] = {}
        for result in results:
            for candidate in result.candidates:
                if candidate.person_id not in names:
                    names[candidate.person_id] = self.app.registry.service.get_person(
                        candidate.person_id
                    ).name
        # A 1:N search is audited like any other look-up of people (ids and counts only).
        self.app.audit.record(
            "search",
            actor=self.principal.actor,
            details={
                "faces": len(embedded),
                "known": sum(1 for r in results if r.person_id is not None),
                "matched_person_ids": sorted(
                    {r.person_id for r in results if r.person_id is not None}
                ),
                "candidate_person_ids": sorted(names),
            },
        )
        out: list[FaceIdentification] = []
        for number, (face, result) in enumerate(zip(embedded, results, strict=True), 1):
            decision = result.decision
            who = result.person_id
            out.append(
                FaceIdentification(
                    face=number,
                    box=[round(v, 1) for v in face.face.box.as_list()],
                    decision=str(decision.decision),
                    person_id=who,
                    person_name=names.get(who) if who is not None else None,
                    distance=_finite(decision.distance),
                    score=_finite(decision.score),
                    candidates=[
                        CandidateView(c.person_id, names[c.person_id], round(c.distance, 4))
                        for c in result.candidates
                    ],
                    reasons=list(decision.reasons),
                )
            )
        return out

    def compare_faces(self, image_a: bytes, image_b: bytes) -> FaceComparison:
        """Are the largest faces of two uploaded images the same person? The comparison
        ``cunan faces compare`` makes (faces.match_threshold and the population-aware
        operating point of docs/calibration.md); permitted and audited like identify, with
        the decision only (no names, no vectors)."""
        require(self.principal, Permission.IDENTIFY)
        from cunan.faces.imageio import ImageLoadError, decode_image
        from cunan.faces.verify import compare_vectors
        from cunan.matching.adaptive import population_prior_for

        settings = self.app.settings
        engine = self.app.face_engine
        largest: list[NDArray[np.float32]] = []
        found: list[int] = []
        for name, data in (("image_a", image_a), ("image_b", image_b)):
            try:
                picture = decode_image(
                    data, source=name, max_pixels=settings.faces.max_image_pixels
                )
            except ImageLoadError as exc:
                raise InvalidInput(str(exc)) from None
            faces = [f for f in engine.analyze(picture, embed=True) if f.embedding is not None]
            if not faces:
                raise InvalidInput(f"{name}: 未找到人脸 (no face found)")
            main = max(faces, key=lambda f: f.face.box.width * f.face.box.height)
            assert main.embedding is not None
            largest.append(np.asarray(main.embedding, dtype=np.float32))
            found.append(len(faces))
        prior = population_prior_for(
            settings.faces.population, engine.model_id, int(largest[0].shape[-1])
        )
        result = compare_vectors(
            largest[0], largest[1], prior=prior, threshold=settings.faces.match_threshold
        )
        self.app.audit.record(
            AuditAction.FACE_COMPARE,
            actor=self.principal.actor,
            details={"faces": found, "same_person": result.same_person},
        )
        return FaceComparison(
            decision="same_person" if result.same_person else "different_people",
            same_person=result.same_person,
            distance=round(result.distance, 4),
            threshold=result.threshold,
            model_id=engine.model_id,
            population=result.population,
            population_distance=None
            if result.population_distance is None
            else round(result.population_distance, 4),
            population_threshold=None
            if result.population_threshold is None
            else round(result.population_threshold, 4),
            false_match_rate=result.false_match_rate,
            false_non_match_rate=result.false_non_match_rate,
            certainty=result.certainty(),
            faces_found=found,
        )

    # -- places ---------------------------------------------------------------------------------

    def list_houses(self, at: Page, *, address: str | None = None) -> Listing[HouseSummary]:
        require(self.principal, Permission.READ_REGISTRY)
        with self._db.read() as session:
            rows, total = QueryRepository(session).houses(
                at, landlord_id=landlord_scope(self.principal), address=address
            )
            items = [HouseSummary(h.id, h.address, h.landlord_id, name) for h, name in rows]
        return Listing(items, total, at.offset, at.limit)

    def get_house(self, house_id: int) -> HouseDetail:
        require(self.principal, Permission.READ_REGISTRY)
        today = self.today()
        with self._db.read() as session:
            repo = QueryRepository(session)
            house = repo.house_visible(house_id, landlord_scope(self.principal))
            if house is None:
                raise hidden("house", house_id)
            rooms = [
                RoomSummary(r.id, r.label, r.capacity, n)
                for r, n in repo.rooms_of_house(house_id, today=today)
            ]
            tenants = [
                TenantSummary(t.id, p.id, p.name, r.label, t.move_in, t.expected_end)
                for t, p, r in repo.current_tenants_of_house(house_id, today=today)
            ]
            return HouseDetail(house.id, house.address, house.landlord_id, rooms, tenants)

    def report_move_out(
        self, tenancy_id: int, move_out: date, *, reported_by: str | None = None
    ) -> DepartureReportView:
        """A landlord (own tenants only) or staff reports that a tenant moved out;
        ``reported_by`` names who told (default: the acting account)."""
        require(self.principal, Permission.REPORT_DEPARTURE)
        with self._db.read() as session:
            if (
                QueryRepository(session).tenancy_visible(tenancy_id, landlord_scope(self.principal))
                is None
            ):
                raise hidden("tenancy", tenancy_id)
        if move_out > self.today():
            raise InvalidInput("搬离日期不能晚于今天 (the move-out date is in the future)")
        return self.app.departures.report(
            tenancy_id,
            move_out=move_out,
            reported_by=reported_by or self.principal.username,
            actor=self.principal.actor,
        )

    # -- registry changes -------------------------------------------------------------------

    def _registry(self, permission: Permission = Permission.EDIT_REGISTRY) -> RegistryService:
        require(self.principal, permission)
        return self.app.registry.service.acting_as(self.principal.actor)

    def _village(self) -> int:
        return self.principal.village_id or self.app.registry.service.default_village_id()

    def create_village(self, name: str, code: str | None) -> int:
        return self._registry(Permission.MANAGE_SETTINGS).add_village(name, code=code)

    def create_area(self, name: str) -> int:
        return self._registry().add_grid_area(self._village(), name)

    def create_landlord(self, name: str, phone: str | None) -> int:
        return self._registry().add_landlord(self._village(), name, phone=phone)

    def create_house(self, address: str, area_id: int | None, landlord_id: int | None) -> int:
        return self._registry().add_house(
            self._village(), address, area_id=area_id, landlord_id=landlord_id
        )

    def set_house_landlord(self, house_id: int, landlord_id: int | None) -> None:
        self._registry().set_house_landlord(house_id, landlord_id)

    def create_room(self, house_id: int, label: str, capacity: int) -> int:
        return self._registry().add_room(house_id, label, capacity=capacity)

    def set_room_capacity(self, room_id: int, capacity: int) -> None:
        self._registry().set_room_capacity(room_id, capacity)

    def create_household(self, house_id: int, name: str, number: str | None) -> int:
        return self._registry().add_household(house_id, name, registration_number=number)

    def rename_place(self, kind: str, record_id: int, name: str) -> None:
        """Rename a village (administrators), grid area, landlord, house (its address), room
        (its label) or household of the caller's village; audited."""
        permission = Permission.MANAGE_SETTINGS if kind == "village" else Permission.EDIT_REGISTRY
        village = None if kind == "village" else self._village()
        self._registry(permission).rename_place(kind, record_id, name, village_id=village)

    def remove_place(self, kind: str, record_id: int) -> None:
        """Delete a place nothing refers to any more (refused with what still does: rooms,
        tenants, people, cameras; never a cascade); audited."""
        permission = Permission.MANAGE_SETTINGS if kind == "village" else Permission.EDIT_REGISTRY
        village = None if kind == "village" else self._village()
        self._registry(permission).remove_place(kind, record_id, village_id=village)

    def update_person(self, person_id: int, changes: PersonChanges) -> None:
        self._registry().update_person(person_id, changes)

    def add_tenancy(
        self,
        person_id: int,
        room_id: int,
        move_in: date,
        expected_end: date | None,
        landlord_id: int | None,
    ) -> int:
        return self._registry().add_tenancy(
            person_id,
            room_id,
            move_in=move_in,
            expected_end=expected_end,
            landlord_id=landlord_id,
            reported_by=self.principal.actor,
        )

    def record_consent(
        self,
        person_id: int,
        collected_by: str,
        method: ConsentMethod,
        guardian: str | None,
        form_photo: bytes | None = None,
    ) -> int:
        """A new consent (e.g. after a withdrawal), with a photo of the signed form if one
        was taken; face data may then be added again."""
        return self._registry(Permission.ENROL).record_consent(
            person_id,
            ConsentInput(
                collected_by=collected_by,
                collected_at=datetime.now(UTC),
                method=method,
                guardian_name=guardian,
                form_photo=signed_form_photo(form_photo) if form_photo else None,
            ),
        )

    def withdraw_consent(
        self, person_id: int, note: str, *, recorded_by: str | None = None
    ) -> list[int]:
        """Consent withdrawn: the person's templates and photos are deleted now;
        ``recorded_by`` names who took the withdrawal (default: the acting account)."""
        return self._registry().withdraw_consent(
            person_id, recorded_by=recorded_by or self.principal.actor, alternative_note=note
        )

    def remove_person(self, person_id: int) -> list[int]:
        return self._registry().remove_person(person_id)

    def add_photos(self, person_id: int, photos: Sequence[bytes]) -> list[int]:
        """More enrolment photos for a registered person with a valid consent."""
        service = self._registry(Permission.ENROL)
        if not photos:
            raise InvalidInput("no photo uploaded")
        templates = self._templates(photos)
        from cunan.registry.consistency import different_people_problem

        # New photos must show the person already enrolled, not someone else.
        stored = [t.vector for t in service.templates_of(person_id)]
        mismatch = different_people_problem(
            [f"template {n}" for n in range(1, len(stored) + 1)]
            + [f"photo {n}" for n in range(1, len(templates) + 1)],
            stored + [t.vector for t in templates],
            self.app.settings.faces.match_threshold,
        )
        if mismatch is not None:
            raise InvalidInput(mismatch + " (nothing was stored)")
        return service.add_templates(person_id, templates)

    def _template_or_plain_refusal(self, data: bytes) -> TemplateInput:
        """The 补录 fresh photo's template, or its refusal in plain words."""
        from cunan.faces.engine import EnrolmentPhotoError
        from cunan.faces.imageio import ImageLoadError
        from cunan.faces.plain_words import PhotoProblem, PhotoRefused, explain
        from cunan.registry.enrolment import template_from_photo

        try:
            return template_from_photo(
                self.app.face_engine,
                data,
                source="fresh photo",
                max_pixels=self.app.settings.faces.max_image_pixels,
            )
        except (ImageLoadError, EnrolmentPhotoError) as exc:
            raise PhotoRefused(
                [PhotoProblem(exc.source, explain(exc.reason), exc.reason)]
            ) from None

    def _templates(
        self, photos: Sequence[bytes], names: Sequence[str] | None = None
    ) -> list[TemplateInput]:
        """One template per photo; every unusable photo is named and nothing is kept."""
        labels = list(names) if names else [f"photo {n}" for n in range(1, len(photos) + 1)]
        from cunan.faces.engine import EnrolmentPhotoError
        from cunan.faces.imageio import ImageLoadError
        from cunan.faces.plain_words import PhotoProblem, PhotoRefused, explain
        from cunan.registry.enrolment import template_from_photo

        templates: list[TemplateInput] = []
        problems: list[PhotoProblem] = []
        for label, data in zip(labels, photos, strict=True):
            try:
                templates.append(
                    template_from_photo(
                        self.app.face_engine,
                        data,
                        source=label,
                        max_pixels=self.app.settings.faces.max_image_pixels,
                    )
                )
            except (ImageLoadError, EnrolmentPhotoError) as exc:
                # Plain words for staff (cunan.faces.plain_words), the measured reason kept.
                problems.append(PhotoProblem(exc.source, explain(exc.reason), exc.reason))
        if problems:
            raise PhotoRefused(problems)
        from cunan.registry.consistency import different_people_problem

        # The enrolment consistency rule (docs/registry.md): one person's photos show one face.
        mismatch = different_people_problem(
            labels,
            [t.vector for t in templates],
            self.app.settings.faces.match_threshold,
        )
        if mismatch is not None:
            raise InvalidInput(mismatch + " (nothing was stored)")
        return templates

    # -- cases ----------------------------------------------------------------------------------

    def list_cases(
        self,
        at: Page,
        *,
        statuses: Sequence[str] | None = None,
        camera: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Listing[CaseView]:
        require(self.principal, Permission.READ_CASES)
        with self._db.read() as session:
            rows, total = QueryRepository(session).cases(
                at, statuses=statuses, camera=camera, since=since, until=until
            )
            ids = [c.id for c in rows]
        return Listing(self.app.cases.get_many(ids), total, at.offset, at.limit)

    def get_case(self, case_id: int) -> CaseView:
        require(self.principal, Permission.READ_CASES)
        return self.app.cases.get(case_id)

    def case_candidates(self, case_id: int, *, top: int = 5) -> list[CandidateView]:
        """The registered people nearest to the case's kept faces, nearest first, with their
        distances: what staff compare the crops with before closing a case as "this is
        registered person X". A 1:N search, so it needs the identify permission and is
        audited like identify (ids and counts only)."""
        require(self.principal, Permission.READ_CASES)
        require(self.principal, Permission.IDENTIFY)
        if not 1 <= top <= 20:
            raise InvalidInput("top must be between 1 and 20")
        model_id, vectors = self.app.cases.kept_vectors(case_id)
        gallery = self.app.gallery
        if model_id != gallery.model_id or vectors.size == 0:
            # Faces of another model (the site switched models) cannot be compared.
            nearest: list[tuple[int, float]] = []
        else:
            nearest = gallery.nearest_people(vectors, top)
        service = self.app.registry.service
        with self._db.read() as session:
            photos = QueryRepository(session).first_photo_ids([p for p, _ in nearest])
        threshold = self.app.settings.faces.match_threshold
        out = [
            CandidateView(
                person_id,
                service.get_person(person_id).name,
                round(distance, 4),
                closeness_of(distance, threshold),
                photos.get(person_id),
            )
            for person_id, distance in nearest
        ]
        self.app.audit.record(
            "search",
            actor=self.principal.actor,
            target_type="case",
            target_id=case_id,
            details={
                "source": "case",
                "faces": int(vectors.shape[0]) if vectors.size else 0,
                "candidate_person_ids": sorted(c.person_id for c in out),
            },
        )
        return out

    def case_sightings(self, case_id: int) -> list[CaseMember]:
        """The case's sightings (camera, time), for its timeline; a read for the case page."""
        require(self.principal, Permission.READ_CASES)
        return self.app.cases.members(case_id)

    def case_crop(self, case_id: int, sighting_id: int) -> bytes:
        require(self.principal, Permission.READ_CASES)
        for sid, data in self.app.cases.best_crops(case_id):
            if sid == sighting_id:
                return data
        raise hidden("crop of sighting", sighting_id)

    def case_crops(self, case_id: int) -> list[tuple[int, bytes]]:
        """The case's best crops (sighting id, JPEG), decrypted on demand."""
        require(self.principal, Permission.READ_CASES)
        return self.app.cases.best_crops(case_id)

    def case_labels(self, cases: Sequence[CaseView]) -> CaseLabels:
        """Names for ``cases``: the person each outcome named (with their room today) and
        each assignee's account name, in two queries for a whole page. People are named
        only to a principal who may read the registry."""
        require(self.principal, Permission.READ_CASES)
        with self._db.read() as session:
            return self._case_labels(QueryRepository(session), cases)

    def case_desk(self, case: CaseView) -> CaseDesk:
        """What a case's page needs beside the case, in one read: its labels and, for those
        who may act on it, the accounts it can be assigned to and the landlords a 补录 can
        name."""
        require(self.principal, Permission.READ_CASES)
        workers: list[CaseWorker] = []
        landlords: list[LandlordChoice] = []
        with self._db.read() as session:
            repo = QueryRepository(session)
            labels = self._case_labels(repo, [case])
            if self.principal.may(Permission.EDIT_CASES):
                workers = [CaseWorker(*row) for row in repo.case_workers()]
                if self.principal.may(Permission.ENROL):
                    landlords = [
                        LandlordChoice(*row) for row in repo.landlord_names(self._village())
                    ]
        return CaseDesk(labels, workers, landlords)

    def _case_labels(self, repo: QueryRepository, cases: Sequence[CaseView]) -> CaseLabels:
        person_ids = sorted({c.person_id for c in cases if c.person_id is not None})
        user_ids = sorted({c.assigned_to for c in cases if c.assigned_to is not None})
        if not self.principal.may(Permission.READ_REGISTRY) or landlord_scope(self.principal):
            person_ids = []
        places = repo.person_places(person_ids, self.today())
        assignees = repo.usernames(user_ids)
        people = {
            pid: CasePerson(
                pid,
                name,
                place[1] if place else None,
                place[2] if place else None,
                place[3] if place else None,
            )
            for pid, (name, place) in places.items()
        }
        return CaseLabels(people, assignees)

    def case_workers(self) -> list[CaseWorker]:
        """Who a case can be assigned to: enabled staff and administrator accounts."""
        require(self.principal, Permission.EDIT_CASES)
        with self._db.read() as session:
            return [CaseWorker(*row) for row in QueryRepository(session).case_workers()]

    def assignee_id(self, key: str) -> int:
        """The account a case is assigned to, by id or username."""
        require(self.principal, Permission.EDIT_CASES)
        return self.app.auth.account_id(key)

    def assign_case(self, case_id: int, user_id: int, deadline: datetime | None) -> CaseView:
        """Assign (or re-assign) a case to an enabled staff or administrator account; a
        landlord's, auditor's or disabled account is refused, naming it."""
        require(self.principal, Permission.EDIT_CASES)
        if user_id not in {w.id for w in self.case_workers()}:
            raise InvalidInput(
                f"案件只能指派给在用的工作人员或管理员账号 (case {case_id}: user {user_id} is "
                "not an enabled staff or administrator account)"
            )
        return self.app.cases.assign(
            case_id, user_id, actor=self.principal.actor, deadline=deadline
        )

    def close_false_alarm(self, case_id: int) -> CaseView:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.false_alarm(case_id, actor=self.principal.actor)

    def close_visitor(self, case_id: int, until: datetime) -> CaseView:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.visitor(case_id, until, actor=self.principal.actor)

    def close_escalate(self, case_id: int, reason: str) -> CaseView:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.escalate(case_id, reason, actor=self.principal.actor)

    def close_registered_person(self, case_id: int, person_id: int) -> list[int]:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.registered_person(case_id, person_id, actor=self.principal.actor)

    def close_enrol(
        self,
        case_id: int,
        request: NewPersonRequest,
        fresh_photo: bytes | None,
        sighting_ids: Sequence[int] | None = None,
    ) -> int:
        """补录: enrol the case's person as a tenant in a room, from the case's crops (those
        of ``sighting_ids`` if staff chose; and a fresh photo if given), with the consent
        collected on site."""
        require(self.principal, Permission.EDIT_CASES)
        require(self.principal, Permission.ENROL)

        if request.room_id is None:
            raise InvalidInput("补录须选择房间 (room_id is required)")
        if not (request.consent_by or "").strip():
            raise InvalidInput("补录须记录知情同意 (consent_by is required)")
        fresh = self._template_or_plain_refusal(fresh_photo) if fresh_photo else None
        # 补录 enrols a tenant with the face from the case's crops (no non-face alternative).
        person, consent, tenancy = self._person_records(
            replace(request, category=PersonCategory.TENANT, non_face_note=None),
            self.principal.village_id or self.app.registry.service.default_village_id(),
        )
        assert consent is not None and tenancy is not None  # both checked above
        result = self.app.cases.enrol(
            case_id,
            actor=self.principal.actor,
            person=person,
            consent=consent,
            tenancy=tenancy,
            fresh_photo=fresh,
            sighting_ids=sighting_ids,
        )
        return result.person_id

    def merge_cases(self, target_id: int, source_id: int) -> CaseView:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.merge(target_id, source_id, actor=self.principal.actor)

    def split_case(self, case_id: int, sighting_ids: Sequence[int]) -> CaseView:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.split(case_id, sighting_ids, actor=self.principal.actor)

    def reopen_case(self, case_id: int) -> CaseView:
        require(self.principal, Permission.EDIT_CASES)
        return self.app.cases.reopen(case_id, actor=self.principal.actor)

    # -- departures and landlord tasks ----------------------------------------------------------

    def overdue_departures(self) -> list[OverdueDeparture]:
        """Tenancies whose move-out was reported late or not at all (landlords: their own),
        with the tenant, room, address and landlord named."""
        require(self.principal, Permission.READ_DEPARTURES)
        today = self.today()
        return list(
            self.app.stats_cache.get(
                ("overdue_departures", today, *self._scope()), lambda: self._overdue(today)
            )
        )

    def _overdue(self, today: date) -> list[OverdueDeparture]:
        scope = landlord_scope(self.principal)
        rows = self.app.departures.overdue(today=today)
        # The overdue list is small (one row per late tenancy); a landlord sees the rows of
        # rooms in their houses now.
        visible = self._own_tenancies(scope, [r.tenancy_id for r in rows])
        rows = [r for r in rows if visible is None or r.tenancy_id in visible]
        labels = self._tenancy_labels([r.tenancy_id for r in rows])
        return [
            OverdueDeparture(
                kind=r.kind,
                tenancy_id=r.tenancy_id,
                person_id=r.person_id,
                room_id=r.room_id,
                landlord_id=r.landlord_id,
                due_from=r.due_from,
                deadline=r.deadline,
                days_overdue=r.days_overdue,
                reported_at=r.reported_at,
                **labels.get(r.tenancy_id, _NO_LABELS),
            )
            for r in rows
        ]

    def confirmation_tasks(
        self, *, open_only: bool = True, landlord_id: int | None = None
    ) -> list[ConfirmationTask]:
        """Confirmation tasks (still living here?) of tenants not seen for long, named;
        ``landlord_id`` narrows them to one landlord's (a landlord sees only their own)."""
        require(self.principal, Permission.READ_DEPARTURES)
        tasks = self.app.duties.reconciler.tasks(open_only=open_only, landlord_id=landlord_id)
        visible = self._own_tenancies(landlord_scope(self.principal), [t.tenancy_id for t in tasks])
        tasks = [t for t in tasks if visible is None or t.tenancy_id in visible]
        labels = self._tenancy_labels([t.tenancy_id for t in tasks])
        return [
            ConfirmationTask(
                id=t.id,
                tenancy_id=t.tenancy_id,
                person_id=t.person_id,
                landlord_id=t.landlord_id,
                not_seen_since=t.not_seen_since,
                days_not_seen=t.days_not_seen,
                status=t.status,
                opened_at=t.opened_at,
                closed_at=t.closed_at,
                outcome=t.outcome,
                **labels.get(t.tenancy_id, _NO_LABELS),
            )
            for t in tasks
        ]

    def departure_deadlines(self, *, limit: int = MAX_PAGE) -> list[DepartureDeadline]:
        """Current tenants with an expected end whose move-out deadline has not passed yet
        (landlords: in their houses; the passed ones are in :meth:`overdue_departures`), the
        earliest first, with the last day a move-out report is on time."""
        require(self.principal, Permission.READ_DEPARTURES)
        from cunan.duties.departures import deadline_for

        today = self.today()
        settings = self.app.settings.duties
        with self._db.read() as session:
            rows = QueryRepository(session).tenancies_ending(
                today=today,
                # deadline = expected end + deadline days, and it must be today or later.
                ending_from=today - timedelta(days=settings.departure_deadline_days),
                landlord_id=landlord_scope(self.principal),
                limit=min(limit, MAX_PAGE),
            )
            out: list[DepartureDeadline] = []
            for t, p, r, h in rows:
                assert t.expected_end is not None  # the query asks for it
                deadline = deadline_for(t.expected_end, settings)
                out.append(
                    DepartureDeadline(
                        tenancy_id=t.id,
                        person_id=p.id,
                        person=p.name,
                        room=r.label,
                        house_id=h.id,
                        address=h.address,
                        expected_end=t.expected_end,
                        deadline=deadline,
                        days_left=(deadline - today).days,
                    )
                )
        return out

    def _own_tenancies(self, scope: int | None, tenancy_ids: Sequence[int]) -> set[int] | None:
        """For a landlord, which of these tenancies are in their houses; None: no scope."""
        if scope is None:
            return None
        with self._db.read() as session:
            return QueryRepository(session).tenancies_in_houses_of(scope, tenancy_ids)

    def _tenancy_labels(self, tenancy_ids: Sequence[int]) -> dict[int, dict[str, str | None]]:
        with self._db.read() as session:
            found = QueryRepository(session).tenancy_labels(tenancy_ids)
        return {
            t: {"person": n, "room": r, "address": a, "landlord": ln}
            for t, (n, r, a, ln) in found.items()
        }

    def confirm_task(self, task_id: int, *, confirmed_by: str | None = None) -> TaskView:
        """The tenant still lives here: the task closes and the not-seen clock restarts;
        ``confirmed_by`` names who confirmed (default: the acting account)."""
        require(self.principal, Permission.CONFIRM_TASK)
        scope = landlord_scope(self.principal)
        if scope is not None and all(
            t.id != task_id for t in self.confirmation_tasks(open_only=False)
        ):
            raise hidden("confirmation task", task_id)
        return self.app.duties.reconciler.confirm(
            task_id,
            confirmed_by=confirmed_by or self.principal.username,
            actor=self.principal.actor,
        )

    # -- cameras --------------------------------------------------------------------------------

    def _check_camera_url(self, url: str) -> None:
        """Network cameras on the LAN for everyone who manages cameras; local files, devices
        and the server's own addresses only for administrators (cunan.capture.policy)."""
        from cunan.capture.policy import CameraUrlRefusedError, check_camera_url

        try:
            check_camera_url(url, local_allowed=self.principal.may(Permission.MANAGE_SETTINGS))
        except CameraUrlRefusedError as exc:
            raise Forbidden(str(exc)) from None

    def _check_before_connecting(self, url: str) -> None:
        """A camera named by host name is checked again before a non-administrator makes the
        server connect to it: the name may resolve elsewhere now (DNS rebinding). An address
        given as an IP was checked when the camera was added (or an administrator added it)."""
        from urllib.parse import urlsplit

        from cunan.capture.policy import NETWORK_SCHEMES, is_ip_literal

        parts = urlsplit(url.strip())
        try:
            host = parts.hostname
        except ValueError:
            host = None
        if parts.scheme.lower() in NETWORK_SCHEMES and host and not is_ip_literal(host):
            self._check_camera_url(url)

    def add_camera(self, request: CameraRequest) -> CameraRecord:
        require(self.principal, Permission.MANAGE_CAMERAS)
        self._check_camera_url(request.url)
        cameras = self._camera_store()
        camera_id = cameras.add(
            request.name,
            request.url,
            village_id=self.principal.village_id or self.app.registry.service.default_village_id(),
            area_id=request.area_id,
            house_id=request.house_id,
            enabled=request.enabled,
            public_notice_posted=request.public_notice_posted,
            zone_json=request.zone_json,
            settings=request.settings,
            public_notice_reason=request.public_notice_reason,
        )
        return cameras.get(camera_id)

    def watch_target(
        self,
        source: str,
        *,
        notice_posted: bool,
        realtime: bool = True,
        fps_cap: float | None = None,
        transport: str = "tcp",
    ) -> tuple[CameraRecord | None, CameraTarget]:
        """What ``cunan watch`` runs: a registered camera (by name or id) with its settings,
        or an ad-hoc stream, file or device, refused unless the public notice where it
        films is confirmed (faces are recognised only where the sign is posted)."""
        require(self.principal, Permission.MANAGE_CAMERAS)
        from dataclasses import replace as changed

        from cunan.capture.sources import SourceConfig, redact_url
        from cunan.pipeline.build import target_for_camera
        from cunan.pipeline.cameras import CameraSettings, NoticeNotPostedError
        from cunan.pipeline.runner import CameraTarget

        camera = self.app.cameras.find(source)
        if camera is not None:
            camera.require_notice()
            target = target_for_camera(camera, realtime=realtime)
            return camera, target if fps_cap is None else changed(target, fps_cap=fps_cap)
        self._check_camera_url(source)
        if not notice_posted:
            raise NoticeNotPostedError(
                f"recognition refused: {redact_url(source)} is not a registered camera, "
                "and the public notice sign is required where faces are recognised; "
                "pass --notice-posted to confirm it is posted (or register the camera "
                "with 'cunan cameras add ... --notice-posted')"
            )
        if transport not in ("tcp", "udp"):
            raise InvalidInput("--transport must be tcp or udp")
        return None, CameraTarget(
            # Files are named by their file name; URLs without their password.
            name=redact_url(source) if "://" in source else Path(source).name,
            source=SourceConfig(source, realtime=realtime, rtsp_transport=transport),  # type: ignore[arg-type]
            fps_cap=fps_cap if fps_cap is not None else CameraSettings().fps_cap,
        )

    def _camera_store(self) -> CameraStore:
        """The installation's camera store, recording this principal in the audit entry it
        writes in the same transaction as each change (the public-notice flag included)."""
        from cunan.pipeline.store import CameraStore

        store = self.app.cameras
        return CameraStore(
            store.database, cipher=store.cipher, audit=self.app.audit, actor=self.principal.actor
        )

    def update_camera(
        self,
        camera_id: int | str,
        *,
        enabled: bool | None,
        public_notice_posted: bool | None,
        zone_json: str | None,
        settings: CameraSettings | None = None,
        name: str | None = None,
        url: str | None = None,
        public_notice_reason: str | None = None,
    ) -> CameraRecord:
        """Change a camera (by id, or by name on the command line); None leaves a field as
        it is; audited."""
        require(self.principal, Permission.MANAGE_CAMERAS)
        if url is not None:
            self._check_camera_url(url)
        return self._camera_store().update(
            camera_id,
            enabled=enabled,
            public_notice_posted=public_notice_posted,
            zone_json=zone_json,
            settings=settings,
            name=name,
            stream_url=url,
            public_notice_reason=public_notice_reason,
        )

    def remove_camera(self, camera_id: int | str) -> None:
        require(self.principal, Permission.MANAGE_CAMERAS)
        self._camera_store().remove(camera_id)

    def get_camera(self, camera_id: int | str) -> CameraRecord:
        require(self.principal, Permission.READ_CAMERAS)
        return self.app.cameras.get(camera_id)

    def list_cameras(self) -> list[CameraRecord]:
        require(self.principal, Permission.READ_CAMERAS)
        return self.app.cameras.list()

    def camera_health(self) -> dict[int, CameraHealthView]:
        """Each camera's capture state as its process last reported it (cameras without a
        report are missing: they are not running)."""
        require(self.principal, Permission.READ_CAMERAS)
        from cunan.pipeline.camera_health import CameraHealthStore

        return CameraHealthStore(self._db).views()

    def camera_snapshot(self, camera_id: int) -> Snapshot:
        """The camera's picture now (for the zone editor and "test connection"). Only for
        those who manage cameras: it makes the server connect to the camera's address."""
        require(self.principal, Permission.MANAGE_CAMERAS)
        from cunan.capture.snapshot import snapshot
        from cunan.capture.sources import SourceConfig, SourceError

        camera = self.app.cameras.get(camera_id)
        self._check_before_connecting(camera.stream_url)
        s = camera.settings
        try:
            return snapshot(
                SourceConfig(
                    camera.stream_url,
                    rtsp_transport=s.rtsp_transport,
                    open_timeout_s=s.open_timeout_s,
                    read_timeout_s=s.read_timeout_s,
                    realtime=False,
                )
            )
        except SourceError as exc:
            from cunan.pipeline.camera_health import public_error

            # Shown on pages: no password (public_error scrubs it however it is quoted), not
            # even one hidden in the address's path.
            reason = public_error(str(exc), camera.stream_url)
            raise Unavailable(f"camera {camera_id}: {reason}") from None

    def sighting_crop(self, sighting_id: int) -> bytes:
        require(self.principal, Permission.READ_SIGHTINGS)
        from cunan.pipeline.store import SightingStore

        crop = SightingStore(self._db, self.app.registry.service.cipher).crop(sighting_id)
        if crop is None:
            raise hidden("crop of sighting", sighting_id)
        return crop

    # -- roster imports ---------------------------------------------------------------------

    def start_import(
        self,
        roster: bytes,
        roster_name: str,
        photos_zip: bytes | None,
        *,
        dry_run: bool,
        create_places: bool,
        keep_checked: bool = False,
    ) -> ImportJob:
        """Check (dry run) or import an uploaded roster with a ZIP of its photos, in the
        background; follow it with :meth:`import_job`. ``keep_checked``: a dry run keeps
        the upload for :meth:`import_checked` (the import page's "now import" button)."""
        require(self.principal, Permission.ENROL)
        require(self.principal, Permission.EDIT_REGISTRY)
        if not roster:
            raise InvalidInput("the roster file is empty")
        return self.app.imports.start(
            roster,
            roster_name,
            photos_zip,
            dry_run=dry_run,
            create_places=create_places,
            actor=self.principal.actor,
            keep_checked=keep_checked,
        )

    def import_checked(self, job_id: str) -> ImportJob:
        """Import for real what the dry run ``job_id`` checked (its starter only)."""
        require(self.principal, Permission.ENROL)
        require(self.principal, Permission.EDIT_REGISTRY)
        self.import_job(job_id)
        return self.app.imports.start_checked(job_id, actor=self.principal.actor)

    def import_roster_file(
        self,
        roster: Path,
        options: ImportOptions,
        *,
        progress: Callable[[int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Check (dry run) or import a roster file and photo folder in this process, as this
        account (options from :meth:`CunanApp.import_options`)."""
        require(self.principal, Permission.ENROL)
        require(self.principal, Permission.EDIT_REGISTRY)
        from cunan.registry.importer import import_roster

        return import_roster(
            roster, self._registry(), options, progress=progress, on_total=on_total
        )

    def import_job(self, job_id: str) -> ImportJob:
        """A job's progress and row report: its starter's, or any for administrators."""
        require(self.principal, Permission.ENROL)
        job = self.app.imports.get(job_id)
        if job.created_by != self.principal.actor and not self.principal.may(
            Permission.MANAGE_USERS
        ):
            raise hidden("import job", job_id)
        return job

    # -- statistics, settings, notifications ----------------------------------------------

    def _scope(self) -> tuple[int | None, int | None, str]:
        """Everything a cached answer may depend on about the caller: the village, the
        landlord scope and the role. A cached value is only ever handed to a caller with
        the same scope as the one it was computed for."""
        return (self.principal.village_id, landlord_scope(self.principal), self.principal.role)

    def statistics(self) -> dict[str, object]:
        """The dashboard's figures, cached briefly per scope (writes drop the cache)."""
        require(self.principal, Permission.READ_STATS)
        stats = self.app.stats_cache.get(
            ("statistics", *self._scope()), lambda: self.village_statistics().as_dict()
        )
        # A copy: the cached one is shared by every caller of the scope.
        return copy.deepcopy(stats)

    def village_statistics(self, days: int | None = None) -> VillageStats:
        """The village's figures; ``days`` of sightings per camera (default: the setting)."""
        require(self.principal, Permission.READ_STATS)
        return self.app.stats.compute(days=days)

    def settings_view(self) -> dict[str, object]:
        """The settings in force, without secrets (passwords, webhook secrets, URLs with
        credentials)."""
        require(self.principal, Permission.READ_SETTINGS)
        settings = self.app.settings
        return {
            "faces": settings.faces.model_dump(mode="json"),
            "matching": settings.matching.model_dump(mode="json"),
            "cases": settings.cases.model_dump(mode="json"),
            "duties": settings.duties.model_dump(mode="json"),
            "web": settings.web.model_dump(mode="json"),
            "registry": settings.registry.model_dump(mode="json"),
            "database": "postgresql" if settings.database_url else "sqlite",
            "editable": sorted(EDITABLE),
            # Channel counts only: their URLs, secrets and passwords stay out of views.
            "notify": {
                "include_face_data": settings.notify.include_face_data,
                "webhooks": len(settings.notify.webhooks),
                "mqtt": len(settings.notify.mqtt),
                "email": len(settings.notify.email),
                "wecom": len(settings.notify.wecom),
                "dingtalk": len(settings.notify.dingtalk),
            },
        }

    def update_settings(self, changes: dict[str, object]) -> SettingsChange:
        """Change thresholds, retention periods or deadlines (administrators); kept in the
        database, audited. Decision thresholds apply at once, the rest at the next start."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        from cunan import settings_overrides as overrides

        if not changes:
            raise InvalidInput("no setting to change")
        pinned = sorted(k for k in changes if overrides.set_by_environment(k))
        if pinned:
            raise InvalidInput(
                "set by the environment (change it there): "
                + ", ".join(f"{k} ({overrides.env_name(k)})" for k in pinned)
            )
        updated = overrides.with_changes(self.app.settings, changes)
        overrides.store(self._db, self.app.audit, changes, self.principal.actor)
        self.app.settings = updated
        live = sorted(k for k in changes if k in overrides.LIVE)
        if live and self.app._gallery is not None:
            self.app._gallery.config = updated.matching.open_set_config()
        return SettingsChange(applied_now=live, after_restart=sorted(set(changes) - set(live)))

    def landlords_for_accounts(self) -> list[tuple[int, str, bool]]:
        """(id, name, has an account) of the village's landlords, for linking a new landlord
        account to its record (administrators)."""
        require(self.principal, Permission.MANAGE_USERS)
        from cunan.storage.auth_repository import AuthRepository

        with self._db.read() as session:
            rows = AuthRepository(session).landlords_of_village(self._village())
            return [(row.id, row.name, row.user_id is not None) for row in rows]

    def notification_channels(self) -> ChannelAdmin:
        """Notification channels (administrators): list, add, edit, remove, test; changes
        are audited and take effect at once."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        from cunan.notify.admin import ChannelAdmin

        return ChannelAdmin(self.app, self.principal.actor)

    def dead_letters(self, *, include_replayed: bool = False) -> list[DeadLetterView]:
        require(self.principal, Permission.READ_NOTIFY)
        from cunan.notify.deadletters import DeadLetterStore

        return DeadLetterStore(self._db).pending(include_replayed=include_replayed)

    def replay_dead_letters(
        self, letter_id: int | None, channels: Mapping[str, Notifier] | None = None
    ) -> list[ReplayOutcome]:
        """Send one dead letter (or, with None, every pending one) again on its channel,
        through the installation's configured channels unless ``channels`` are given."""
        require(self.principal, Permission.MANAGE_NOTIFY)
        from cunan.notify.deadletters import DeadLetterStore

        if channels is None:
            channels = self.app.dispatcher.channels if self.app.dispatcher else {}
        store = DeadLetterStore(self._db)
        if letter_id is None:
            return store.replay_all(channels)
        try:
            return [store.replay(letter_id, channels)]
        except LookupError as exc:
            # The store's own lookups are plain LookupErrors: the vocabulary's not found.
            if isinstance(exc, NotFound):
                raise
            raise NotFound(str(exc.args[0]) if exc.args else str(exc)) from None

    # -- sightings, audit, stats --------------------------------------------------------------

    def list_sightings(
        self,
        at: Page,
        *,
        camera_id: int | None = None,
        decision: str | None = None,
        person_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Listing[SightingSummary]:
        require(self.principal, Permission.READ_SIGHTINGS)
        with self._db.read() as session:
            rows, total = QueryRepository(session).sightings(
                at,
                camera_id=camera_id,
                decision=decision,
                person_id=person_id,
                since=since,
                until=until,
            )
            items = [
                SightingSummary(
                    s.id,
                    s.camera_id,
                    s.camera_name,
                    s.started_at,
                    s.ended_at,
                    s.decision,
                    s.person_id,
                    s.distance,
                    s.faces_used,
                )
                for s in rows
            ]
        return Listing(items, total, at.offset, at.limit)

    def list_audit(
        self,
        at: Page,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
    ) -> Listing[AuditEntryView]:
        """Audit entries, newest first, filtered in SQL (action and its sub-actions, actor as
        recorded or an account name, time, the record acted on)."""
        require(self.principal, Permission.READ_AUDIT)
        from cunan.storage.privacy_repository import PrivacyRepository, user_of_actor

        with self._db.read() as session:
            if actor and ":" not in actor:
                # An account name (what an auditor knows) means that account's entries.
                user_id = PrivacyRepository(session).user_id_named(actor)
                actor = f"user:{user_id}" if user_id is not None else actor
            rows, total = QueryRepository(session).audit(
                at,
                action=action,
                actor=actor,
                since=since,
                until=until,
                target_type=target_type,
                target_id=target_id,
            )
            # Auditors read names, not numbers: the page's users, looked up in one query.
            names = PrivacyRepository(session).usernames(
                sorted({u for e in rows if (u := user_of_actor(e.actor)) is not None})
            )
            items = [
                AuditEntryView(
                    e.seq,
                    e.recorded_at,
                    e.actor,
                    e.action,
                    e.target_type,
                    e.target_id,
                    e.details,
                    names.get(user_of_actor(e.actor) or 0),
                    e.hash,
                )
                for e in rows
            ]
        return Listing(items, total, at.offset, at.limit)

    def verify_audit(self) -> tuple[bool, int, str | None]:
        """(chain intact, entries checked, the first problem in words)."""
        report = self.audit_chain()
        return report.ok, report.entries, None if report.problem is None else str(report.problem)

    def audit_chain(self) -> ChainReport:
        """The hash chain recomputed from entry 1: entries, head, and the first problem."""
        require(self.principal, Permission.READ_AUDIT)
        from cunan.audit.chain import verify_chain

        return verify_chain(self._db)

    def privacy_report(self, since: date | None = None, until: date | None = None) -> PrivacyReport:
        """The auditor's privacy report for village days ``since``..``until`` (the last 30
        days by default): face data held against the filing threshold, consents and
        withdrawals, purges, 1:N searches per account per day."""
        require(self.principal, Permission.READ_PRIVACY)
        from cunan.audit.privacy import build_report, report_period

        start, end = report_period(since, until, self.today())
        return build_report(self._db, self.app.settings.duties, start, end)

    def case_flow(self, period: str = "week", count: int = 8) -> list[CasePeriod] | None:
        """Cases opened and closed per week or month (the last ``count``, village calendar);
        None without the cases workflow."""
        require(self.principal, Permission.READ_STATS)
        from cunan.stats.service import CASE_FLOW_PERIODS

        if period not in CASE_FLOW_PERIODS:
            raise InvalidInput(f"period {period!r}: one of {', '.join(CASE_FLOW_PERIODS)}")
        if not 1 <= count <= 60:
            raise InvalidInput(f"count {count}: between 1 and 60 periods")
        return self.app.stats.case_flow(period, count)

    def record_statistics_export(self, *, period: str, periods: int, file_format: str) -> None:
        """Audit a download of the statistics (a report leaves the server like any export):
        the format and the periods only, the figures are counts."""
        require(self.principal, Permission.READ_STATS)
        self.app.audit.record(
            "statistics.export",
            actor=self.principal.actor,
            target_type="statistics",
            details={"format": file_format, "period": period, "periods": periods},
        )

    def people_statuses(self) -> list[str]:
        return [s.value for s in PersonStatus]

    # -- registry pages: the places and a person's records ----------------------------------

    def _village_wide(self) -> None:
        """Village-wide registry lists (all landlords, areas) are not a landlord's to read:
        a landlord sees their own houses, rooms and tenants only."""
        require(self.principal, Permission.READ_REGISTRY)
        if landlord_scope(self.principal) is not None:
            raise Forbidden("房东只能查看自己的房屋 (landlords see their own houses only)")

    def list_villages(self) -> list[VillageSummary]:
        self._village_wide()
        with self._db.read() as session:
            return [
                VillageSummary(v.id, v.name, v.code) for v in QueryRepository(session).villages()
            ]

    def list_areas(self) -> list[AreaSummary]:
        """The grid areas (网格) of the caller's village, with their number of houses."""
        self._village_wide()
        with self._db.read() as session:
            return [
                AreaSummary(a.id, a.name, n)
                for a, n in QueryRepository(session).areas(self._village())
            ]

    def list_landlords(self) -> list[LandlordSummary]:
        """The landlords of the caller's village, with their number of houses."""
        self._village_wide()
        with self._db.read() as session:
            return [
                LandlordSummary(x.id, x.name, x.phone, n, x.user_id is not None)
                for x, n in QueryRepository(session).landlords(self._village())
            ]

    def list_rooms(self, at: Page, *, vacant_only: bool = False) -> Listing[RoomListing]:
        """Rooms with their house and occupants today (landlords: in their houses only);
        ``vacant_only``: those with a free place."""
        require(self.principal, Permission.READ_REGISTRY)
        with self._db.read() as session:
            rows, total = QueryRepository(session).rooms(
                at,
                today=self.today(),
                landlord_id=landlord_scope(self.principal),
                vacant_only=vacant_only,
            )
            items = [RoomListing(r.id, r.label, r.capacity, n, h.id, h.address) for r, h, n in rows]
        return Listing(items, total, at.offset, at.limit)

    def house_extras(self, house_id: int) -> HouseExtras:
        """A house's grid area and households (户), beside :meth:`get_house`."""
        require(self.principal, Permission.READ_REGISTRY)
        with self._db.read() as session:
            repo = QueryRepository(session)
            house = repo.house_visible(house_id, landlord_scope(self.principal))
            if house is None:
                raise hidden("house", house_id)
            households = [
                HouseholdSummary(h.id, h.name, h.registration_number, n)
                for h, n in repo.households_of_house(house_id)
            ]
            return HouseExtras(house.area_id, households)

    def person_records(self, person_id: int) -> PersonRecords:
        """A person's household, consent history and kept enrolment photos (not for
        landlords: consent and face data are the village office's)."""
        self._village_wide()
        with self._db.read() as session:
            repo = QueryRepository(session)
            person = repo.person_visible(person_id, None)
            if person is None:
                raise hidden("person", person_id)
            household = repo.household(person.household_id) if person.household_id else None
            forms = repo.consents_with_forms(person_id)
            consents = [
                ConsentEntry(
                    c.id,
                    c.collected_by,
                    c.collected_at,
                    c.method.value,
                    c.guardian_name,
                    c.withdrawn_at,
                    c.withdrawal_recorded_by,
                    c.id in forms,
                )
                for c in repo.consents_of(person_id)
            ]
            return PersonRecords(
                household_id=person.household_id,
                household=household.name if household is not None else None,
                household_house_id=household.house_id if household is not None else None,
                consents=consents,
                photo_ids=repo.photo_ids_of(person_id),
            )

    def person_photo(self, person_id: int, photo_id: int) -> PhotoInput:
        """A kept enrolment photo of this person, decrypted for the person page (never a
        file on a public path); another person's photo id answers like a missing one."""
        if photo_id not in self.person_records(person_id).photo_ids:
            raise hidden("photo", photo_id)
        photo = self.app.registry.service.photo(photo_id)
        # Looking at someone's face photo is a use of their face data: on the record.
        self.app.audit.record(
            "photo.view",
            actor=self.principal.actor,
            target_type="person",
            target_id=person_id,
            details={"photo": photo_id},
        )
        return photo

    def consent_form(self, person_id: int, consent_id: int) -> PhotoInput:
        """The photo of the signed form of one of this person's consents, decrypted for the
        person page (not landlords); another person's consent answers like a missing one.
        Each look is audited (``photo.view``, the consent's id)."""
        if consent_id not in {c.id for c in self.person_records(person_id).consents}:
            raise hidden("consent", consent_id)
        form = self.app.registry.service.consent_form(consent_id)
        self.app.audit.record(
            "photo.view",
            actor=self.principal.actor,
            target_type="person",
            target_id=person_id,
            details={"consent_form": consent_id},
        )
        return form

    # -- operations the command line offers (keys, export, duties by hand, parked events) ----

    def consents_of(self, person_id: int) -> list[ConsentView]:
        """A person's consents (who collected them, how, withdrawn when); not a landlord's."""
        require(self.principal, Permission.READ_REGISTRY)
        if landlord_scope(self.principal) is not None:
            # Landlords see their tenants' names and rooms, never the consent records.
            self.get_person(person_id)  # their own tenant, or "not found"
            return []
        return self.app.registry.service.consents_of(person_id)

    def open_tenancy_of(self, person_id: int) -> int:
        """The person's one tenancy without a move-out (the one a move-out report is about)."""
        require(self.principal, Permission.REPORT_DEPARTURE)
        return self.app.departures.tenancy_to_report(person_id)

    def export_people(self, path: Path, *, encoding: str = "utf-8-sig") -> int:
        """Write the registry to CSV or XLSX (no biometric data, ID numbers masked; audited)."""
        require(self.principal, Permission.READ_REGISTRY)
        if landlord_scope(self.principal) is not None:
            # The whole village: not for landlords, who see their own tenants only.
            raise Forbidden("房东不能导出全村名单 (landlords cannot export the registry)")
        from cunan.registry.export import write_export

        return write_export(self._registry(Permission.READ_REGISTRY), path, encoding=encoding)

    def rotate_keys(self) -> RotationReport:
        """Re-encrypt every encrypted value with a new key, then retire the old (admins)."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        from cunan.registry.keys import rotate_keys

        registry = self.app.registry
        return rotate_keys(
            registry.database, registry.key_file, audit=self.app.audit, actor=self.principal.actor
        )

    def reset_keys(self) -> ResetReport:
        """After the key file was lost: delete all face data and create a new key (admins)."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        from cunan.registry.keys import reset_keys

        registry = self.app.registry
        return reset_keys(
            registry.database, registry.key_file, audit=self.app.audit, actor=self.principal.actor
        )

    def unreadable_values(self) -> tuple[list[UnreadableTemplate], list[UnreadableValue]]:
        """Templates, and other encrypted values, that do not decrypt with the key (admins)."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        from cunan.registry.keys import unreadable_values

        service = self.app.registry.service
        return service.unreadable_templates(), unreadable_values(self._db, service.cipher)

    def delete_templates(self, template_ids: Sequence[int]) -> list[int]:
        """Delete templates (the unreadable ones ``keys check`` found); audited."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        return self._registry().delete_templates(template_ids)

    def purge_retention(self, *, dry_run: bool = False) -> PurgeReport:
        """Delete what is past its retention now (the daily duty, run by hand; admins)."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        return self.app.duties.purger.purge(dry_run=dry_run, actor=self.principal.actor)

    def reconcile_tenancies(self) -> ReconcileResult:
        """Open "please confirm" tasks for tenants not seen lately (the daily duty by hand)."""
        require(self.principal, Permission.EDIT_REGISTRY)
        return self.app.duties.reconciler.reconcile(actor=self.principal.actor)

    def parked_events(self, *, discarded: bool = False) -> list[ParkedEvent]:
        """Sighting events the case grouping set aside after repeated failures."""
        require(self.principal, Permission.READ_CASES)
        return self._parked().events(discarded=discarded)

    def replay_parked(self, event_ids: Sequence[int] | None) -> list[int]:
        """Hand parked events back to the case grouping (None: every one not discarded)."""
        require(self.principal, Permission.EDIT_CASES)
        return self._parked().replay(event_ids, actor=self.principal.actor)

    def discard_parked(self, event_ids: Sequence[int], reason: str) -> list[int]:
        """Give up on parked events whose sighting is gone for good (audited)."""
        require(self.principal, Permission.EDIT_CASES)
        return self._parked().discard(event_ids, reason=reason, actor=self.principal.actor)

    def _parked(self) -> ParkedEvents:
        from cunan.cases.parked import ParkedEvents

        return ParkedEvents(self._db, audit=self.app.audit)

    def reembed_photos(self, progress: Callable[[int, int], None] | None = None) -> ReembedReport:
        """Templates of the configured model from every kept enrolment photo (after a change
        of faces.onnx_model; resumable, audited; administrators)."""
        require(self.principal, Permission.MANAGE_SETTINGS)
        from cunan.registry.reembed import reembed

        return reembed(
            self._registry(),
            self.app.face_engine,
            max_pixels=self.app.settings.faces.max_image_pixels,
            progress=progress,
        )

    def calibration(self, target: float | None = None) -> SiteCalibration:
        """Expected false-known rate of this site's gallery and thresholds for ``target``
        (decrypts every template in memory; changes nothing)."""
        require(self.principal, Permission.READ_SETTINGS)
        require(self.principal, Permission.READ_CASES)
        from cunan.calibrate import site_calibration

        return site_calibration(
            self.app.registry.service,
            self.app.settings,
            model_id=self.app.face_engine.model_id,
            target=target,
        )

    # -- gas registry -------------------------------------------------------------------------

    def gas_registry(self) -> GasRegistry:
        """The gas registry (businesses, contacts, models, devices) as this principal sees it."""
        from cunan.gas.registry import GasRegistry

        return GasRegistry(self._db, self.app.audit, self.principal, auth=self.app.auth)


@dataclass(frozen=True, slots=True)
class VillageSummary:
    id: int
    name: str
    code: str | None


@dataclass(frozen=True, slots=True)
class AreaSummary:
    id: int
    name: str
    houses: int


@dataclass(frozen=True, slots=True)
class LandlordSummary:
    id: int
    name: str
    phone: str | None
    houses: int
    has_account: bool


@dataclass(frozen=True, slots=True)
class RoomListing:
    id: int
    label: str
    capacity: int
    occupants: int
    house_id: int
    address: str


@dataclass(frozen=True, slots=True)
class HouseholdSummary:
    id: int
    name: str
    registration_number: str | None
    members: int


@dataclass(frozen=True, slots=True)
class HouseExtras:
    area_id: int | None
    households: list[HouseholdSummary]


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    id: int
    collected_by: str
    collected_at: datetime
    method: str
    guardian: str | None
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    #: A photo of the signed form is kept (``/people/{id}/consents/{consent}/form``).
    has_form: bool = False


@dataclass(frozen=True, slots=True)
class PersonRecords:
    household_id: int | None
    household: str | None
    household_house_id: int | None
    consents: list[ConsentEntry]
    photo_ids: list[int]
