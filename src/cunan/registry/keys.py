"""Key rotation: re-encrypt every template and photo with a new key, then retire the old."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cunan.registry.service import photo_context, template_context
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyFileError, KeyRing
from cunan.storage.database import Database
from cunan.storage.repositories import RegistryRepository

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_key_id: str
    retired_key_ids: tuple[str, ...]
    templates: int
    photos: int


def rotate_keys(database: Database, key_file: Path) -> RotationReport:
    """Make a new key active and re-encrypt all face data with it in one transaction.

    Order matters for crash safety: the new key is written to the key file (beside the old
    ones) before the database changes; the old keys are removed only after the commit. A crash
    at any point leaves every stored value decryptable with the key file on disk.
    """
    old = KeyRing.load(key_file)
    ring = old.with_new_active_key()
    ring.save(key_file)
    cipher = FieldCipher(ring)
    templates = photos = 0
    with database.transaction() as session:
        repo = RegistryRepository(session)
        after = 0
        while batch := repo.template_batch(after_id=after, limit=BATCH):
            for row in batch:
                ctx = template_context(row.id, row.person_id, row.model_id)
                plain = cipher.decrypt(row.ciphertext, ctx, what=f"template {row.id}")
                repo.set_template_ciphertext(row.id, cipher.encrypt(plain, ctx), ring.active)
                templates += 1
            after = batch[-1].id
            session.expunge_all()  # keep memory flat on large galleries
        after = 0
        while photo_batch := repo.photo_batch(after_id=after, limit=BATCH):
            for photo in photo_batch:
                ctx = photo_context(photo.id, photo.person_id)
                plain = cipher.decrypt(photo.ciphertext, ctx, what=f"photo {photo.id}")
                repo.set_photo_ciphertext(photo.id, cipher.encrypt(plain, ctx), ring.active)
                photos += 1
            after = photo_batch[-1].id
            session.expunge_all()
        still_old = repo.key_ids_in_use() - {ring.active}
        if still_old:
            raise KeyFileError(f"rotation incomplete: keys {sorted(still_old)} still in use")
    retired = tuple(sorted(k for k in ring.keys if k != ring.active))
    ring.only_active().save(key_file)
    logger.info(
        "rotated keys: %d template(s), %d photo(s) now under %s; retired %s",
        templates,
        photos,
        ring.active,
        ", ".join(retired),
    )
    return RotationReport(
        new_key_id=ring.active, retired_key_ids=retired, templates=templates, photos=photos
    )
