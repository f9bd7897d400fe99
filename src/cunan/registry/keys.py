"""Key rotation: re-encrypt every stored ciphertext with a new key, then retire the old.

Every table holding ciphertext is covered: face templates, enrolment photos, photos of signed
consent forms, sighting crops and embeddings, the cases' quiet faces (visitors, negative
examples), camera URLs, notification channels and gas cases' site photos. Each value is
re-encrypted with exactly the associated data its writer used; the context functions are
imported from the writers so the two can never drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cunan.audit.log import AuditAction, AuditLog, system_actor
from cunan.cases.service import quiet_face_context
from cunan.errors import Conflict
from cunan.gas.cases import photo_context as gas_photo_context
from cunan.notify.channels import channel_context
from cunan.pipeline.store import camera_url_context, crop_context, embedding_context
from cunan.registry.keybinding import bind_key_ring, forget_retired_keys, record_new_key
from cunan.registry.service import consent_form_context, photo_context, template_context
from cunan.security.cipher import DecryptionError, FieldCipher, KeyUnavailableError
from cunan.security.keys import KeyFileError, KeyRing
from cunan.storage.database import Database
from cunan.storage.gas_alarm_repository import GasAlarmRepository
from cunan.storage.key_repository import DiscardedFaceData, KeyCheckRepository
from cunan.storage.notify_repository import NotifyChannelRepository
from cunan.storage.pipeline_repository import CameraRepository
from cunan.storage.repositories import RegistryRepository

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_key_id: str
    retired_key_ids: tuple[str, ...]
    templates: int
    photos: int
    sighting_crops: int
    sighting_embeddings: int
    quiet_faces: int
    consent_forms: int = 0


@dataclass(frozen=True, slots=True)
class ResetReport:
    new_key_id: str
    discarded: DiscardedFaceData


class KeyFileExistsError(KeyFileError, Conflict):
    """``keys reset`` with a key file in place: a conflict with what is there, not a key
    that is unavailable."""


class RotationNotDurableError(KeyFileError):
    """The re-encryption committed but could not be forced to disk; the old key is kept."""


def rotate_keys(
    database: Database,
    key_file: Path,
    *,
    audit: AuditLog | None = None,
    actor: str | None = None,
) -> RotationReport:
    """Make a new key active and re-encrypt all encrypted data with it in one transaction.

    Run it while ``cunan worker`` and ``cunan serve`` are stopped: they hold the key ring in
    memory and would go on writing with the retired key.

    Order matters for crash safety: the new key is written to the key file (beside the old
    ones) before the database changes; the old keys are removed only after the commit is
    durable on disk (SQLite: a full WAL checkpoint). A crash at any point leaves every stored
    value decryptable with the key file on disk.

    Refuses (KeyFileError, nothing changed) when stored rows were encrypted with a key that
    is not in the key file: rotating would fail on them, and they point to a wrong or
    outdated key file.
    """
    old = KeyRing.load(key_file)
    with database.transaction() as session:
        unknown = RegistryRepository(session).key_ids_in_use() - set(old.keys)
    if unknown:
        raise KeyFileError(
            f"refusing to rotate: stored data is encrypted with key(s) "
            f"{', '.join(sorted(unknown))} that {key_file} does not hold (an old key file "
            "restored, or the wrong one?). Restore the key file that holds them; nothing "
            "was changed"
        )
    bind_key_ring(database, old, key_file)
    ring = old.with_new_active_key()
    # The database learns the new key before the key file holds it: after a crash at any
    # point the key file on disk is still one the database accepts.
    record_new_key(database, ring, ring.active)
    ring.save(key_file)
    cipher = FieldCipher(ring)
    retired = tuple(sorted(k for k in ring.keys if k != ring.active))
    templates = photos = crops = embeddings = quiet = camera_urls = notify_channels = 0
    forms = 0
    gas_photos = 0
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
        after = 0
        while form_batch := repo.consent_form_batch(after_id=after, limit=BATCH):
            for form in form_batch:
                ctx = consent_form_context(form.id, form.consent_id, form.person_id)
                plain = cipher.decrypt(form.ciphertext, ctx, what=f"consent form {form.id}")
                repo.set_consent_form_ciphertext(form.id, cipher.encrypt(plain, ctx), ring.active)
                forms += 1
            after = form_batch[-1].id
            session.expunge_all()
        after = 0
        while sighting_batch := repo.sighting_batch(after_id=after, limit=BATCH):
            for sighting in sighting_batch:
                crop = embedding = None
                if sighting.crop_ciphertext is not None:
                    ctx = crop_context(sighting.id, sighting.camera_name)
                    plain = cipher.decrypt(
                        sighting.crop_ciphertext, ctx, what=f"sighting {sighting.id} crop"
                    )
                    crop = cipher.encrypt(plain, ctx)
                    crops += 1
                if sighting.embedding_ciphertext is not None:
                    ctx = embedding_context(sighting.id, sighting.model_id)
                    plain = cipher.decrypt(
                        sighting.embedding_ciphertext,
                        ctx,
                        what=f"sighting {sighting.id} embedding",
                    )
                    embedding = cipher.encrypt(plain, ctx)
                    embeddings += 1
                repo.set_sighting_ciphertexts(
                    sighting.id, crop=crop, embedding=embedding, key_id=ring.active
                )
            after = sighting_batch[-1].id
            session.expunge_all()
        after = 0
        while quiet_batch := repo.quiet_face_batch(after_id=after, limit=BATCH):
            for face in quiet_batch:
                ctx = quiet_face_context(face.id, face.case_id, face.model_id)
                plain = cipher.decrypt(face.ciphertext, ctx, what=f"quiet face {face.id}")
                repo.set_quiet_face_ciphertext(face.id, cipher.encrypt(plain, ctx), ring.active)
                quiet += 1
            after = quiet_batch[-1].id
            session.expunge_all()
        for camera in CameraRepository(session).cameras():
            if camera.stream_url_ciphertext is not None:
                ctx = camera_url_context(camera.id)
                plain = cipher.decrypt(
                    camera.stream_url_ciphertext, ctx, what=f"camera {camera.id} URL"
                )
                camera.stream_url_ciphertext = cipher.encrypt(plain, ctx)
                camera.key_id = ring.active
                camera_urls += 1
        channels = NotifyChannelRepository(session)
        for channel in channels.channels():
            ctx = channel_context(channel.id)
            plain = cipher.decrypt(
                channel.config_ciphertext, ctx, what=f"notification channel {channel.name}"
            )
            channel.config_ciphertext = cipher.encrypt(plain, ctx)
            channel.key_id = ring.active
            notify_channels += 1
        gas = GasAlarmRepository(session)
        after = 0
        while gas_batch := gas.photo_batch(after_id=after, limit=BATCH):
            for site_photo in gas_batch:
                ctx = gas_photo_context(site_photo.id, site_photo.case_id)
                plain = cipher.decrypt(
                    site_photo.ciphertext, ctx, what=f"gas case photo {site_photo.id}"
                )
                site_photo.ciphertext = cipher.encrypt(plain, ctx)
                site_photo.key_id = ring.active
                gas_photos += 1
            session.flush()
            after = gas_batch[-1].id
            session.expunge_all()
        session.flush()
        still_old = repo.key_ids_in_use() - {ring.active}
        if still_old:
            raise KeyFileError(f"rotation incomplete: keys {sorted(still_old)} still in use")
        if audit is not None:
            audit.record(
                AuditAction.KEY_ROTATE,
                actor=actor or system_actor(),
                target_type="key",
                target_id=ring.active,
                details={
                    "new_key_id": ring.active,
                    "retired_key_ids": list(retired),
                    "templates": templates,
                    "photos": photos,
                    "consent_forms": forms,
                    "sighting_crops": crops,
                    "sighting_embeddings": embeddings,
                    "quiet_faces": quiet,
                    "camera_urls": camera_urls,
                    "notify_channels": notify_channels,
                    "gas_case_photos": gas_photos,
                },
                session=session,
            )
    make_durable(database)
    ring.only_active().save(key_file)
    forget_retired_keys(database, ring.only_active())
    logger.info(
        "rotated keys: %d template(s), %d photo(s), %d sighting crop(s), %d sighting "
        "embedding(s), %d quiet face(s) now under %s; retired %s",
        templates,
        photos,
        crops,
        embeddings,
        quiet,
        ring.active,
        ", ".join(retired),
    )
    return RotationReport(
        new_key_id=ring.active,
        retired_key_ids=retired,
        templates=templates,
        photos=photos,
        sighting_crops=crops,
        sighting_embeddings=embeddings,
        quiet_faces=quiet,
        consent_forms=forms,
    )


@dataclass(frozen=True, slots=True)
class UnreadableValue:
    """An encrypted value other than a template that does not decrypt (``cunan keys check``)."""

    kind: str
    row_id: int
    reason: str


def unreadable_values(database: Database, cipher: FieldCipher) -> list[UnreadableValue]:
    """Every enrolment photo, signed consent form, sighting crop and embedding, quiet face,
    camera URL and notification channel that does
    not decrypt with ``cipher``, with the same associated data its writer used. Templates are
    :meth:`RegistryService.unreadable_templates`'s."""
    bad: list[UnreadableValue] = []

    def check(kind: str, row_id: int, blob: bytes, context: bytes) -> None:
        try:
            cipher.decrypt(blob, context, what=f"{kind} {row_id}")
        except (DecryptionError, KeyFileError) as exc:
            if isinstance(exc, KeyUnavailableError):
                raise
            bad.append(UnreadableValue(kind, row_id, str(exc)))

    with database.read() as session:
        repo = RegistryRepository(session)
        after = 0
        while photos := repo.photo_batch(after_id=after, limit=BATCH):
            for photo in photos:
                check("photo", photo.id, photo.ciphertext, photo_context(photo.id, photo.person_id))
            after = photos[-1].id
        after = 0
        while forms := repo.consent_form_batch(after_id=after, limit=BATCH):
            for form in forms:
                ctx = consent_form_context(form.id, form.consent_id, form.person_id)
                check("consent form", form.id, form.ciphertext, ctx)
            after = forms[-1].id
        after = 0
        while sightings := repo.sighting_batch(after_id=after, limit=BATCH):
            for row in sightings:
                if row.crop_ciphertext is not None:
                    ctx = crop_context(row.id, row.camera_name)
                    check("sighting crop", row.id, row.crop_ciphertext, ctx)
                if row.embedding_ciphertext is not None:
                    ctx = embedding_context(row.id, row.model_id)
                    check("sighting embedding", row.id, row.embedding_ciphertext, ctx)
            after = sightings[-1].id
        after = 0
        while faces := repo.quiet_face_batch(after_id=after, limit=BATCH):
            for face in faces:
                ctx = quiet_face_context(face.id, face.case_id, face.model_id)
                check("quiet face", face.id, face.ciphertext, ctx)
            after = faces[-1].id
        for camera in CameraRepository(session).cameras():
            if camera.stream_url_ciphertext is not None:
                ctx = camera_url_context(camera.id)
                check("camera URL", camera.id, camera.stream_url_ciphertext, ctx)
        for channel in NotifyChannelRepository(session).channels():
            ctx = channel_context(channel.id)
            check("notification channel", channel.id, channel.config_ciphertext, ctx)
        after = 0
        while site_photos := GasAlarmRepository(session).photo_batch(after_id=after, limit=BATCH):
            for site_photo in site_photos:
                ctx = gas_photo_context(site_photo.id, site_photo.case_id)
                check("gas case photo", site_photo.id, site_photo.ciphertext, ctx)
            after = site_photos[-1].id
    return bad


def reset_keys(
    database: Database,
    key_file: Path,
    *,
    audit: AuditLog | None = None,
    actor: str | None = None,
) -> ResetReport:
    """Start over after the key file was lost: delete every encrypted value (it can never be
    read again), then bind the database to a new key and write it to ``key_file``.

    People, consents, tenancies, cases and the audit log stay; faces must be enrolled again.
    Refuses while ``key_file`` exists: a key file that works needs 'cunan keys rotate', and a
    foreign one must be moved away on purpose first.
    """
    if key_file.exists():
        raise KeyFileExistsError(
            f"{key_file}: a key file exists; 'cunan keys reset' is only for a lost key. If it "
            "is this database's key, use 'cunan keys rotate'; if it is not, move it away "
            "first (keep it: it may belong to another data dir)"
        )
    ring = KeyRing.generate()
    with database.transaction() as session:
        checks = KeyCheckRepository(session)
        discarded = checks.discard_face_data()
        checks.forget_all()
        session.flush()
        checks.record(ring.active, ring.check_values()[ring.active], at=datetime.now(UTC))
        if audit is not None:
            audit.record(
                AuditAction.KEY_RESET,
                actor=actor or system_actor(),
                target_type="key",
                target_id=ring.active,
                details={
                    "new_key_id": ring.active,
                    "templates": discarded.templates,
                    "photos": discarded.photos,
                    "sightings": discarded.sightings,
                    "quiet_faces": discarded.quiet_faces,
                    "camera_urls": discarded.camera_urls,
                    "notify_channels": discarded.notify_channels,
                    "consent_forms": discarded.consent_forms,
                    "gas_case_photos": discarded.gas_case_photos,
                },
                session=session,
            )
    # Written only after the commit: a crash in between leaves no key file, and running the
    # reset again starts from the same state.
    make_durable(database)
    ring.save(key_file, overwrite=False)
    logger.info(
        "key reset: discarded %d template(s), %d photo(s), %d sighting crop/embedding row(s), "
        "%d quiet face(s); new key %s",
        discarded.templates,
        discarded.photos,
        discarded.sightings,
        discarded.quiet_faces,
        ring.active,
    )
    return ResetReport(new_key_id=ring.active, discarded=discarded)


def make_durable(database: Database) -> None:
    """Make sure committed transactions are on disk before the old key is deleted.

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit reaches the WAL file but is
    fsynced only at a checkpoint, so a power cut right after the commit could lose the
    re-encryption while the key file (already without the old key) survives. A FULL
    checkpoint copies the WAL into the database file and fsyncs it. PostgreSQL commits are
    durable already (with the default ``synchronous_commit=on``).
    """
    if not database.is_sqlite:
        return
    with database.engine.connect() as conn:
        # The raw connection, so SQLAlchemy issues no BEGIN: a checkpoint runs outside any
        # transaction of this connection.
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(FULL)")
            # (busy, WAL frames, frames checkpointed); busy = 1: it could not finish.
            row = cursor.fetchone()
            busy = 1 if row is None else int(row[0])
        finally:
            cursor.close()
    if busy:
        raise RotationNotDurableError(
            "the re-encryption is committed, but the database stayed busy and could not be "
            "checkpointed to disk (is 'cunan worker' or 'cunan serve' running? stop them "
            "first). The old key stays in the key file, so everything still decrypts; run "
            "'cunan keys rotate' again to retire it"
        )
