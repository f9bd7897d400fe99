"""The key check values a database was bound to (table ``key_checks``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from cunan.storage.case_tables import CaseQuietFace
from cunan.storage.database import rowcount
from cunan.storage.enums import TemplateChangeKind
from cunan.storage.gas_tables import GasCasePhoto
from cunan.storage.notify_tables import NotifyChannel
from cunan.storage.pipeline_tables import Camera, Sighting
from cunan.storage.repositories import RegistryRepository
from cunan.storage.tables import ConsentForm, EnrolmentPhoto, KeyCheck


@dataclass(frozen=True, slots=True)
class DiscardedFaceData:
    """How many encrypted values a key reset deleted, per kind."""

    templates: int
    photos: int
    sightings: int
    quiet_faces: int
    #: Cameras whose URL (with its password) was encrypted: they keep the redacted URL and
    #: must be added again with the password.
    camera_urls: int = 0
    #: Notification channels added from the web (their keys and secrets were encrypted):
    #: deleted, to be added again on the settings page.
    notify_channels: int = 0
    #: Photos of signed consent forms (the consents themselves stay, without the photo).
    consent_forms: int = 0
    #: Gas cases' site photos: deleted (the cases and their steps stay).
    gas_case_photos: int = 0


class KeyCheckRepository:
    """Which keys (by id and check value) encrypted this database's face data."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def check_values(self) -> dict[str, str]:
        return {row.key_id: row.check_value for row in self.session.scalars(select(KeyCheck))}

    def record(self, key_id: str, check_value: str, *, at: datetime) -> None:
        if self.session.get(KeyCheck, key_id) is None:
            self.session.add(KeyCheck(key_id=key_id, check_value=check_value, recorded_at=at))
            self.session.flush()

    def forget_all_but(self, key_ids: set[str]) -> None:
        """Drop retired keys: a key file holding only them no longer fits this database."""
        self.session.execute(delete(KeyCheck).where(KeyCheck.key_id.not_in(key_ids)))

    def forget_all(self) -> None:
        self.session.execute(delete(KeyCheck))

    def discard_face_data(self) -> DiscardedFaceData:
        """Delete every encrypted value (templates through the change feed, so gallery
        indexes drop them too); sightings keep their decision, without crop or embedding."""
        registry = RegistryRepository(self.session)
        templates = 0
        while batch := registry.template_batch(after_id=0, limit=1000):
            for row in batch:
                registry.record_change(
                    TemplateChangeKind.REMOVED,
                    template_id=row.id,
                    person_id=row.person_id,
                    model_id=row.model_id,
                )
            self.session.flush()  # the change rows, before expunging forgets them
            registry.delete_templates(batch)
            templates += len(batch)
            self.session.expunge_all()
        photos = rowcount(self.session.execute(delete(EnrolmentPhoto)))
        forms = rowcount(self.session.execute(delete(ConsentForm)))
        sightings = rowcount(
            self.session.execute(
                update(Sighting)
                .where(
                    or_(
                        Sighting.crop_ciphertext.is_not(None),
                        Sighting.embedding_ciphertext.is_not(None),
                    )
                )
                .values(crop_ciphertext=None, embedding_ciphertext=None, key_id=None)
            )
        )
        quiet = rowcount(self.session.execute(delete(CaseQuietFace)))
        cameras = rowcount(
            self.session.execute(
                update(Camera)
                .where(Camera.stream_url_ciphertext.is_not(None))
                .values(stream_url_ciphertext=None, key_id=None)
            )
        )
        channels = rowcount(self.session.execute(delete(NotifyChannel)))
        gas_photos = rowcount(self.session.execute(delete(GasCasePhoto)))
        return DiscardedFaceData(
            templates=templates,
            photos=photos,
            sightings=sightings,
            quiet_faces=quiet,
            camera_urls=cameras,
            notify_channels=channels,
            consent_forms=forms,
            gas_case_photos=gas_photos,
        )
