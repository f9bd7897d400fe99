"""The composition root: one object built from settings and data dir that holds every service."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cunan.audit.log import AuditLog
from cunan.authz import Principal
from cunan.config import Settings
from cunan.registry.datadir import Registry, open_registry

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cunan.auth.service import AuthService
    from cunan.cases.consumer import CaseConsumer
    from cunan.cases.service import CaseService
    from cunan.duties.daily import Duties
    from cunan.duties.departures import DepartureService
    from cunan.duties.scheduler import Scheduler
    from cunan.faces.engine import FaceEngine
    from cunan.gas.alarms import GasAlarmService
    from cunan.gas.cases import GasCaseService
    from cunan.gas.domain import DeviceMessage
    from cunan.gas.escalation import GasAlarmWorker, GasEscalation
    from cunan.gas.ingest import GasIngestService, OnStored
    from cunan.gas.mqtt_ingest import MqttIngestor
    from cunan.gas.push import GasPushService, PushProcessor
    from cunan.matching.live import LiveGallery
    from cunan.notify.dispatcher import NotificationDispatcher
    from cunan.pipeline.store import CameraStore, EventOutbox
    from cunan.pipeline.supervisor import Worker
    from cunan.registry.import_jobs import ImportJob, ImportJobs
    from cunan.registry.importer import ImportOptions
    from cunan.stats.service import StatsService
    from cunan.storage.write_cache import ShortCache

logger = logging.getLogger(__name__)

#: Import progress is announced to open pages at most this often (seconds).
IMPORT_PROGRESS_EVERY_S = 2.0


@dataclass(frozen=True, slots=True)
class BackgroundOptions:
    """What ``start`` runs besides serving requests (``cunan serve`` runs all of it)."""

    cameras: bool = True
    cases: bool = True
    duties: bool = True
    #: Gas: alarm escalation rounds, the offline sweep, the daily replacement check; the
    #: MQTT subscription (``[gas.ingest] mqtt_enabled``) and the push inbox processor (when
    #: push sources are configured); the daily purge of old messages.
    gas: bool = True
    lease_s: float = 30.0
    max_cameras: int | None = None


@dataclass(eq=False)
class CunanApp:
    """Everything one installation runs, wired once.

    :meth:`open` reads as the map of the system: storage and keys, the audit log, the
    registry, notifications, cases, duties, cameras; the face engine and the live gallery
    are built on first use (loading a model costs seconds a ``cunan people list`` need not
    pay). :meth:`start` and :meth:`stop` run and stop the background work.
    """

    settings: Settings
    registry: Registry
    audit: AuditLog
    cases: CaseService
    duties: Duties
    departures: DepartureService
    stats: StatsService
    cameras: CameraStore
    outbox: EventOutbox
    dispatcher: NotificationDispatcher | None
    _engine: FaceEngine | None = None
    _gallery: LiveGallery | None = None
    _imports: ImportJobs | None = None
    _auth: AuthService | None = None
    _stats_cache: ShortCache | None = None
    _import_announced: dict[str, float] = field(default_factory=dict)
    _lazy_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _scheduler: Scheduler | None = None
    _consumer: CaseConsumer | None = None
    _worker: Worker | None = None
    # gas ingestion: built on first use; each batch's new messages go through the alarm
    # rules, or to ``gas_on_stored`` when that is set (benchmarks, tests), set before ``start``.
    gas_on_stored: OnStored | None = None
    _gas_ingest: GasIngestService | None = None
    _gas_push: GasPushService | None = None
    _gas_mqtt: MqttIngestor | None = None
    _gas_push_processor: PushProcessor | None = None
    _gas_alarms: GasAlarmService | None = None
    _gas_cases: GasCaseService | None = None
    _gas_worker: GasAlarmWorker | None = None

    # -- building ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        settings: Settings,
        data_dir: Path,
        *,
        actor: str | None = None,
        key_required: bool = True,
    ) -> CunanApp:
        """Open an initialised data dir and wire every service (nothing starts running).

        Without ``key_required`` a lost key file is no error: face data can then be deleted
        but not read or written (removal, withdrawal of consent, ``keys reset``).
        """
        from cunan.cases.service import CaseService
        from cunan.duties.daily import Duties
        from cunan.notify.deadletters import DeadLetterStore
        from cunan.notify.dispatcher import NotificationDispatcher
        from cunan.notify.settings import build_notifiers
        from cunan.pipeline.store import CameraStore, EventOutbox
        from cunan.stats.service import StatsService

        # 1. Storage and keys: the database (migrated to head), the key ring, field cipher.
        registry = open_registry(data_dir, settings, actor=actor, key_required=key_required)
        try:
            from cunan.settings_overrides import apply_stored

            # Thresholds, retention and deadlines an administrator changed from the web.
            settings = apply_stored(settings, registry.database)
            # The gallery index is built on first use; a choice this site cannot serve
            # (pgvector on SQLite, milvus without a server) is refused now, not then.
            settings.matching.index_spec(settings.database_url)
            audit = registry.audit or AuditLog(registry.database)
            # 2. Notifications: the settings file's channels and those added on the settings
            #    page; nothing leaves the machine until a channel is set, undeliverable
            #    alerts land in the dead-letter list. The dispatcher exists even without
            #    channels, so one added from the web works without a restart.
            from cunan.notify.channels import ChannelStore

            notify = ChannelStore(registry.database, registry.service.cipher).merged(
                settings.notify
            )
            channels = build_notifiers(notify, zone=settings.duties.zone)
            dispatcher = NotificationDispatcher(
                channels, dead_letters=DeadLetterStore(registry.database)
            )
            # 3. Cases: unknown sightings grouped, verified on site, 补录.
            cases = CaseService(
                registry.database,
                registry.service.cipher,
                registry.service,
                settings.cases,
                dispatcher=dispatcher,
            )
            # 4. Duties: departures and their deadlines, not-seen checks, retention purges.
            duties = Duties.build(registry.database, registry.service, settings.duties)
            stats = StatsService(registry.database, settings.duties, departures=duties.departures)
            # 5. Cameras and the transactional outbox their sightings are announced through.
            # With the data key: camera passwords are stored encrypted (docs/keys.md).
            cameras = CameraStore(registry.database, cipher=registry.service.cipher)
            outbox = EventOutbox(registry.database)
        except BaseException:
            registry.close()
            raise
        return cls(
            settings=settings,
            registry=registry,
            audit=audit,
            cases=cases,
            duties=duties,
            departures=duties.departures,
            stats=stats,
            cameras=cameras,
            outbox=outbox,
            dispatcher=dispatcher,
        )

    @property
    def data_dir(self) -> Path:
        return self.registry.data_dir

    def act_as(self, actor: str) -> None:
        """Record ``actor`` for changes made without a principal's services in this process
        (the command line acts as one account from start to end)."""
        self.registry.service.actor = actor

    @property
    def face_engine(self) -> FaceEngine:
        """Detection, alignment and embedding as ``faces.*`` configures them (built once)."""
        with self._lazy_lock:
            if self._engine is None:
                from cunan.faces.engine import EngineConfig, FaceEngine

                self._engine = FaceEngine.from_config(
                    EngineConfig.from_settings(self.settings.faces)
                )
            return self._engine

    @property
    def gallery(self) -> LiveGallery:
        """The registry's templates of the engine's model, searchable, kept current live.

        Built once, then registered as a listener on the registry so every enrolment and
        removal (from the API, from 补录) reaches it at once; requests never decrypt the
        whole gallery again.
        """
        engine = self.face_engine
        with self._lazy_lock:
            if self._gallery is None:
                from cunan.matching.live import LiveGallery

                matching = self.settings.matching
                gallery = LiveGallery.load(
                    self.registry.service,
                    model_id=engine.model_id,
                    dim=engine.embedder.dim,
                    config=matching.open_set_config(),
                    spec=matching.index_spec(self.settings.database_url),
                )
                self.registry.service.add_listener(gallery)
                self._gallery = gallery
            return self._gallery

    @property
    def auth(self) -> AuthService:
        """Logins, sessions, accounts and API tokens (one per installation: it holds the
        login throttle's counts)."""
        with self._lazy_lock:
            if self._auth is None:
                from cunan.auth.service import AuthService

                self._auth = AuthService(self.registry.database, self.audit, self.settings.web)
            return self._auth

    @property
    def gas_ingest(self) -> GasIngestService:
        """Stores device messages (MQTT, HTTP push, CSV) and hands them to ``gas_on_stored``."""
        with self._lazy_lock:
            if self._gas_ingest is None:
                from cunan.gas.ingest import GasIngestService

                self._gas_ingest = GasIngestService(
                    self.registry.database,
                    on_stored=self._gas_stored,
                    settings=self.settings.gas.ingest,
                    audit=self.audit,
                    # The alarm service keeps the online/offline history (it also marks
                    # devices offline): one writer of it, not two rows per comeback.
                    record_online=False,
                )
            return self._gas_ingest

    def _gas_stored(self, messages: Sequence[DeviceMessage]) -> None:
        """Every batch of newly stored gas messages goes through the alarm rules (or, for a
        benchmark or a test, through ``gas_on_stored`` instead)."""
        if self.gas_on_stored is not None:
            self.gas_on_stored(messages)
        else:
            self.gas_alarms.evaluate(messages)

    @property
    def gas_push(self) -> GasPushService:
        """The HTTP push inbox (``/api/v1/gas/push/{source}``)."""
        ingest = self.gas_ingest
        with self._lazy_lock:
            if self._gas_push is None:
                from cunan.gas.push import GasPushService

                self._gas_push = GasPushService(ingest)
            return self._gas_push

    def gas_push_wake(self) -> None:
        """A push was queued: the processor (if running) takes it now, not at its next poll."""
        if self._gas_push_processor is not None:
            self._gas_push_processor.wake()

    @property
    def stats_cache(self) -> ShortCache:
        """Statistics and overdue departures as computed moments ago, per scope (see
        ``web.stats_cache_seconds``); watched writes drop them at commit."""
        with self._lazy_lock:
            if self._stats_cache is None:
                from cunan.storage.write_cache import ShortCache

                cache = ShortCache(self.settings.web.stats_cache_seconds)
                cache.watch(self.registry.database)
                self._stats_cache = cache
            return self._stats_cache

    @property
    def imports(self) -> ImportJobs:
        """Roster imports uploaded over the API, run one at a time in the background."""
        with self._lazy_lock:
            if self._imports is None:
                from cunan.registry.import_jobs import ImportJobs

                self._imports = ImportJobs(
                    self.data_dir,
                    self.registry.service,
                    self._import_options,
                    announce=self._announce_import,
                )
            return self._imports

    def _import_options(self, photos: Path, dry_run: bool, create_places: bool) -> ImportOptions:
        # One photo-checking process for uploads: the cameras keep the other core.
        return self.import_options(
            photos, dry_run=dry_run, create_places=create_places, reported_by="roster import (web)"
        )

    def import_options(
        self,
        photos: Path,
        *,
        dry_run: bool,
        create_places: bool,
        reported_by: str,
        village: str | None = None,
        workers: int = 1,
        allow_same_face: bool = False,
    ) -> ImportOptions:
        """How a roster is imported here: the site's face model, image limits and rules."""
        from cunan.faces.engine import EngineConfig
        from cunan.registry.importer import ImportOptions

        faces = self.settings.faces
        return ImportOptions(
            photos_dir=photos,
            dry_run=dry_run,
            create_places=create_places,
            village=village,
            workers=workers,
            reported_by=reported_by,
            engine=EngineConfig.from_settings(faces),
            max_image_pixels=faces.max_image_pixels,
            guardian_under_age=self.settings.registry.guardian_consent_under_age,
            person_max_distance=faces.match_threshold,
            allow_same_face=allow_same_face,
            # The same-face rule on the live gallery, not every template decrypted again.
            gallery=self.gallery,
        )

    def _announce_import(self, job: ImportJob) -> None:
        """Progress to open pages, at most every couple of seconds (each is a write)."""
        import time

        now = time.monotonic()
        last = self._import_announced.get(job.id, 0.0)
        if job.finished_at is None and now - last < IMPORT_PROGRESS_EVERY_S:
            return
        self._import_announced[job.id] = now
        with self.registry.database.transaction() as session:
            from cunan.storage.cases_repository import CaseRepository

            CaseRepository(session).announce(
                "live.import.progress",
                {"job": job.id, "state": job.state.value, "done": job.done, "total": job.total},
            )

    # -- gas alarms ------------------------------------------------------------------------

    @property
    def gas_alarms(self) -> GasAlarmService:
        """The alarm rules on every stored gas message (ingestion calls ``evaluate``), the
        alarm lists and acknowledgement. A new alarm to notify wakes the gas worker."""
        with self._lazy_lock:
            if self._gas_alarms is None:
                from cunan.gas.alarms import GasAlarmService

                self._gas_alarms = GasAlarmService(
                    self.registry.database,
                    self.audit,
                    self.settings.gas.alarms,
                    on_escalate=self._wake_gas,
                    zone=self.settings.duties.zone,
                )
            return self._gas_alarms

    @property
    def gas_cases(self) -> GasCaseService:
        """Gas cases' stage moves and site photos (encrypted with the data key)."""
        with self._lazy_lock:
            if self._gas_cases is None:
                from cunan.gas.cases import GasCaseService

                self._gas_cases = GasCaseService(
                    self.registry.database, self.audit, self.registry.service.cipher
                )
            return self._gas_cases

    def gas_escalation(self) -> GasEscalation:
        """Notification rounds of unacknowledged gas alarms: the notification channels and
        the SMS gateway of ``[gas.alarms.sms]``."""
        from cunan.gas.escalation import GasEscalation, build_sms

        settings = self.settings.gas.alarms
        return GasEscalation(
            self.registry.database,
            settings,
            dispatcher=self.dispatcher,
            sms=build_sms(settings.sms) if settings.sms is not None else None,
            zone=self.settings.duties.zone,
        )

    def _wake_gas(self) -> None:
        worker = self._gas_worker
        if worker is not None:
            worker.wake()

    def services_for(self, principal: Principal) -> AppServices:
        """The services recording ``principal`` as the actor of what they change."""
        from cunan.app_services import AppServices

        return AppServices(self, principal)

    # -- running -------------------------------------------------------------------------

    def start(self, options: BackgroundOptions | None = None) -> None:
        """Start the background work: camera worker, case grouping, daily duties."""
        from cunan.cases.consumer import CaseConsumer
        from cunan.duties.scheduler import Scheduler
        from cunan.pipeline.build import limit_threads
        from cunan.pipeline.camera_health import CameraHealthStore
        from cunan.pipeline.leases import CameraLeases
        from cunan.pipeline.supervisor import CameraSupervisor, Worker

        opts = options or BackgroundOptions()
        limit_threads()
        if opts.cameras:
            self._worker = Worker(
                self.cameras,
                CameraLeases(self.registry.database, period_s=opts.lease_s),
                CameraSupervisor(self.data_dir, health=CameraHealthStore(self.registry.database)),
                max_cameras=opts.max_cameras,
            )
            self._threads.append(
                threading.Thread(target=self._worker.run, args=(self._stop,), name="cunan-worker")
            )
        if opts.cases:
            # Known sightings close the person's "please confirm" tasks at once.
            self._consumer = CaseConsumer(
                self.cases, self.outbox, on_known=self.duties.reconciler.on_sighting
            )
            self._threads.append(
                threading.Thread(target=self._consumer.run, args=(self._stop,), name="cunan-cases")
            )
        if opts.gas:
            from cunan.gas.escalation import GasAlarmWorker

            self._gas_worker = GasAlarmWorker(
                self.gas_alarms, self.gas_escalation(), poll_s=self.settings.gas.alarms.poll_s
            )
            self._threads.append(
                threading.Thread(
                    target=self._gas_worker.run, args=(self._stop,), name="cunan-gas-alarms"
                )
            )
            self._start_gas()
        for thread in self._threads:
            thread.start()
        # Checked roster uploads kept from before a restart: offered again, or expired.
        _ = self.imports
        if opts.duties:
            self._scheduler = Scheduler(self.settings.duties.zone)
            self.duties.register(self._scheduler)
            # After the day's reconcile: staff hear of overdue move-outs in their groups.
            self._scheduler.add_daily(
                "overdue_departure_alert",
                self.settings.duties.daily_at,
                self.alert_overdue_departures,
            )
            if opts.gas:
                # Devices past their replacement date: once a day, with the other duties.
                self._scheduler.add_daily(
                    "gas_replacement_check",
                    self.settings.duties.daily_at,
                    self.gas_alarms.check_replacements,
                )
                # Raw gas messages after raw_days, minutes after minutes_days, in chunks.
                self._scheduler.add_daily(
                    "gas_purge", self.settings.duties.daily_at, self.gas_ingest.purge
                )
            self._scheduler.start()
        logger.info("background work started (%d threads)", len(self._threads))

    def alert_overdue_departures(self) -> int:
        """The daily alert to the notification channels while departures are overdue: how
        many and the longest delay, never who (group chats are not the registry). Returns
        how many were overdue."""
        if self.dispatcher is None:
            return 0
        from cunan.notify.message import Notification

        rows = [o for o in self.departures.overdue() if o.kind == "unreported"]
        if not rows:
            return 0
        longest = max(o.days_overdue for o in rows)
        self.dispatcher.dispatch(
            Notification(
                kind="departure.overdue",
                title=f"{len(rows)} overdue departure(s)",
                body=f"{len(rows)} tenancies ended without a move-out report "
                f"(longest {longest} days past the deadline).",
                data={"count": len(rows), "max_days_overdue": longest},
            )
        )
        return len(rows)

    def _start_gas(self) -> None:
        from cunan.gas.mqtt_ingest import MqttIngestor
        from cunan.gas.push import PushProcessor

        gas = self.settings.gas.ingest
        if gas.push_sources:
            self._gas_push_processor = PushProcessor(self.gas_push)
            self._threads.append(
                threading.Thread(
                    target=self._gas_push_processor.run, args=(self._stop,), name="cunan-gas-push"
                )
            )
        if gas.mqtt_enabled:
            self._gas_mqtt = MqttIngestor(self.gas_ingest, gas)
            self._gas_mqtt.start()

    def healthy(self) -> bool:
        """Every background thread that was started is still running."""
        return all(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        """Stop the background work: camera processes store their open tracks and exit."""
        self._stop.set()
        if self._gas_mqtt is not None:
            self._gas_mqtt.stop()
            self._gas_mqtt = None
        if self._gas_push_processor is not None:
            self._gas_push_processor.wake()
        if self._consumer is not None:
            self._consumer.wake()
        self._wake_gas()
        if self._scheduler is not None:
            self._scheduler.stop()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def close(self) -> None:
        """Stop anything running and release the database."""
        self.stop()
        if self._imports is not None:
            self._imports.close()
        if self._auth is not None:
            try:
                # Sessions' "last seen" times that waited for a free writer.
                self._auth.flush_seen()
            except Exception:
                logger.warning("sessions' last-seen times not written at close", exc_info=True)
        self.registry.close()


if TYPE_CHECKING:
    from cunan.app_services import AppServices
