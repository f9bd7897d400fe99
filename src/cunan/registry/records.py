"""Values the registry services take and return (frozen dataclasses, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cunan.registry.identity import IdDocument
from cunan.storage.enums import (
    ConsentMethod,
    PersonCategory,
    PersonStatus,
    TemplateChangeKind,
    TemplateSource,
    UserRole,
)

__all__ = [
    "ConsentInput",
    "ConsentMethod",
    "ConsentView",
    "NewPerson",
    "PersonCategory",
    "PersonStatus",
    "PersonView",
    "PhotoInput",
    "StoredTemplate",
    "TemplateChangeKind",
    "TemplateChangeRecord",
    "TemplateInput",
    "TemplateListener",
    "TemplateQuality",
    "TemplateSource",
    "TenancyView",
    "UserRole",
    "UserView",
]

Vector = NDArray[np.float32]

#: What consent covers unless stated: storing face templates to compare with camera faces.
DEFAULT_CONSENT_SCOPE = "face-registry"


@dataclass(frozen=True, slots=True)
class ConsentInput:
    """A consent as collected: by whom, when, how; a guardian's name for minors."""

    collected_by: str
    collected_at: datetime
    method: ConsentMethod = ConsentMethod.PAPER
    scope: str = DEFAULT_CONSENT_SCOPE
    guardian_name: str | None = None
    guardian_relation: str | None = None
    #: A photo of the signed paper form (JPEG or PNG), kept encrypted with the consent.
    form_photo: PhotoInput | None = None


@dataclass(frozen=True, slots=True)
class NewPerson:
    name: str
    village_id: int
    category: PersonCategory = PersonCategory.TENANT
    id_number: str | None = None
    phone: str | None = None
    is_minor: bool = False
    household_id: int | None = None
    #: Set when the person is identified without a face (refused consent).
    non_face_note: str | None = None
    #: What ``id_number`` is: a resident ID unless a passport or permit is stated.
    id_document: IdDocument = IdDocument.RESIDENT_ID


@dataclass(frozen=True, slots=True)
class PersonChanges:
    """Fields of a person to change; None leaves a field as it is (household 0 clears it)."""

    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    category: PersonCategory | None = None
    household_id: int | None = None
    #: What a new ``id_number`` is (a resident ID unless stated).
    id_document: IdDocument = IdDocument.RESIDENT_ID


@dataclass(frozen=True, slots=True)
class TemplateQuality:
    face_width_px: float | None = None
    sharpness: float | None = None
    frontalness: float | None = None
    brightness: float | None = None
    detector_score: float | None = None


@dataclass(frozen=True, slots=True)
class PhotoInput:
    """An enrolment photo as its file bytes (stored encrypted if the settings keep photos)."""

    data: bytes
    media_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class TemplateInput:
    vector: Vector
    model_id: str
    source: TemplateSource = TemplateSource.ENROLMENT_PHOTO
    quality: TemplateQuality = field(default_factory=TemplateQuality)
    photo: PhotoInput | None = None


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """A decrypted template, as the gallery index loads it."""

    template_id: int
    person_id: int
    model_id: str
    vector: Vector


@dataclass(frozen=True, slots=True)
class UnreadableTemplate:
    """A stored template that does not decrypt or decode, and why (``cunan keys check``)."""

    template_id: int
    person_id: int
    key_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TemplateChangeRecord:
    seq: int
    kind: TemplateChangeKind
    template_id: int
    person_id: int
    model_id: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentView:
    id: int
    collected_by: str
    collected_at: datetime
    method: ConsentMethod
    scope: str
    guardian_name: str | None
    withdrawn_at: datetime | None

    @property
    def valid(self) -> bool:
        return self.withdrawn_at is None


@dataclass(frozen=True, slots=True)
class TenancyView:
    id: int
    person_id: int
    room_id: int
    landlord_id: int | None
    move_in: date
    expected_end: date | None
    move_out: date | None
    reported_by: str
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class PersonView:
    """A person as listings show them: the ID number only ever masked."""

    id: int
    village_id: int
    name: str
    id_number_masked: str
    phone: str | None
    category: PersonCategory
    status: PersonStatus
    is_minor: bool
    household_id: int | None
    template_count: int
    has_valid_consent: bool
    non_face_alternative: bool
    non_face_note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    username: str
    role: UserRole
    display_name: str | None
    village_id: int | None


class TemplateListener(Protocol):
    """Told about template changes after they are committed (e.g. the gallery index)."""

    def on_added(self, template_id: int, person_id: int, vector: Vector, model_id: str) -> None:
        """A template was stored and may be searched from now on."""

    def on_removed(self, template_ids: list[int]) -> None:
        """Templates were deleted and must not be found any more."""
