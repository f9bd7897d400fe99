"""Settings: defaults, overridden by a TOML file (CUNAN_CONFIG) and CUNAN_* variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cunan.cases.settings import CaseSettings
from cunan.duties.settings import DutySettings
from cunan.faces.quality import SIGHTING_THRESHOLDS, QualityThresholds
from cunan.gas.alarm_settings import GasAlarmSettings
from cunan.gas.ingest_settings import GasIngestSettings
from cunan.matching.openset import AdaptiveConfig, OpenSetConfig
from cunan.notify.settings import NotifySettings

if TYPE_CHECKING:
    from cunan.matching.index import IndexSpec


class SightingQualitySettings(BaseModel):
    """The judging gate of camera faces (``cunan.faces.quality.SIGHTING_THRESHOLDS`` are
    the defaults; docs/pipeline.md "Faces too poor to judge"). A camera face missing any
    of these is stored and shown but never decides: a track of such faces is undecided."""

    #: Smaller side of the detector's face box, pixels.
    min_face_px: float = Field(default=SIGHTING_THRESHOLDS.min_face_px, ge=0.0)
    #: Distance between the eye centres, pixels.
    min_interocular_px: float = Field(default=SIGHTING_THRESHOLDS.min_interocular_px, ge=0.0)
    #: Variance of the Laplacian of the 64x64 grey inner-face crop (blur lowers it).
    min_sharpness: float = Field(default=SIGHTING_THRESHOLDS.min_sharpness, ge=0.0)
    #: 1 = frontal, 0 = about 45 degrees of yaw.
    min_frontalness: float = Field(default=SIGHTING_THRESHOLDS.min_frontalness, ge=0.0, le=1.0)
    #: Mean grey level of the crop, 0-255: darker is too dark, brighter is blown out.
    min_brightness: float = Field(default=SIGHTING_THRESHOLDS.min_brightness, ge=0.0, le=255.0)
    max_brightness: float = Field(default=SIGHTING_THRESHOLDS.max_brightness, ge=0.0, le=255.0)
    #: Standard deviation of the crop's grey levels (fog, glare, a flat night image).
    min_contrast: float = Field(default=SIGHTING_THRESHOLDS.min_contrast, ge=0.0, le=255.0)

    @model_validator(mode="after")
    def _brightness_range(self) -> SightingQualitySettings:
        # An empty range would judge every face too dark or blown out: nothing decides.
        if self.min_brightness >= self.max_brightness:
            raise ValueError(
                f"min_brightness ({self.min_brightness:g}) must be below "
                f"max_brightness ({self.max_brightness:g})"
            )
        return self

    def thresholds(self) -> QualityThresholds:
        """These settings as the thresholds the best-shot selector judges faces by."""
        return QualityThresholds(
            min_face_px=self.min_face_px,
            min_interocular_px=self.min_interocular_px,
            min_sharpness=self.min_sharpness,
            min_frontalness=self.min_frontalness,
            min_brightness=self.min_brightness,
            max_brightness=self.max_brightness,
            min_contrast=self.min_contrast,
        )


class FaceSettings(BaseModel):
    """The face engine's knobs. Distances are Euclidean between L2-normalised embeddings."""

    detector: Literal["dlib_hog", "dlib_cnn", "video"] = "dlib_hog"
    #: Image doublings before HOG/CNN detection; 1 finds faces down to ~40 px.
    upsample: int = Field(default=1, ge=0, le=3)
    embed_runtime: Literal["auto", "dlib", "onnx"] = "auto"
    #: Same-person threshold for 1:1 comparison (``cunan faces compare``) when
    #: ``population`` is ``none``: the mean of the LFW 10-fold thresholds for dlib's
    #: ResNet, 0.426 (docs/benchmarks.md section 3). dlib's customary 0.6 applies to its
    #: raw descriptors (norm ~1.4), not to these.
    match_threshold: float = Field(default=0.43, gt=0.0, lt=2.0)
    #: Population whose statistics set the 1:1 operating point: ``east_asian`` centres both
    #: embeddings on the packaged East Asian mean and uses its threshold (different-person
    #: pairs of the reference people at most 0.5 % of the time; docs/calibration.md), and
    #: reports how sure the verdict is; ``none`` is the raw distance and ``match_threshold``.
    #: Only for dlib's ResNet: another model (``onnx_model``) falls back to ``none``.
    population: Literal["east_asian", "none"] = "east_asian"

    #: Largest image accepted, in pixels (width x height).
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    #: ONNX recognition model to use instead of dlib's ResNet (ArcFace-style, 112x112).
    onnx_model: Path | None = None
    threads: int = Field(default=1, ge=1)
    #: Jittered copies of each enrolment photo's face whose embeddings are averaged into
    #: its template (rotation, shift, zoom, mirror); 1 turns jitter off. Costs that many
    #: embeddings per photo at enrolment only; camera faces are always embedded once.
    #: 2 = the photo and its mirror image. Off by default: see
    #: cunan.faces.engine.DEFAULT_ENROL_JITTER and docs/benchmarks.md sections 3 and 4.
    enrol_jitter: int = Field(default=1, ge=1, le=100)
    #: The judging gate of camera faces: too small, blurred, dark or flat faces never
    #: decide a sighting (``[faces.sighting_quality]`` in the TOML file).
    sighting_quality: SightingQualitySettings = Field(default_factory=SightingQualitySettings)


class MatchingSettings(BaseModel):
    """Open-set decision rules (see cunan.matching.openset.OpenSetConfig for their meaning).

    Defaults come from ``cunan bench identify`` on LFW (docs/benchmarks.md): re-check
    ``min_score`` on the site's own data, since cohort scores shift with gallery size.
    """

    #: Sanity cap on the best person's distance (Euclidean, unit vectors).
    max_distance: float = Field(default=0.55, ge=0.0, le=2.0)
    #: Decides instead of the score when no cohort exists (a one-person gallery).
    fallback_max_distance: float = Field(default=0.43, ge=0.0, le=2.0)
    #: Cohort-normalised score (nats) a match must reach; higher is stricter.
    min_score: float = 0.24
    #: People in the identity and probe cohorts.
    cohort_k: int = Field(default=16, ge=1, le=64)
    #: Distance to a person over their templates: mean or nearest (min).
    aggregation: Literal["mean", "min"] = "mean"
    #: Optional margin (distance units) the runner-up person must be farther away.
    min_margin: float | None = Field(default=None, ge=0.0)
    #: Gallery index: ``auto`` is exact search below ``ann_threshold`` templates and the
    #: routed ANN index from there (docs/search.md); chosen when the gallery is loaded.
    #: ``pgvector`` keeps the index in PostgreSQL (``pg_url``, default: the site's
    #: ``database_url``; the server needs the ``vector`` extension), ``milvus`` on a Milvus
    #: server (``milvus_uri``).
    index: Literal["auto", "exact", "numpy", "routed", "ivf", "hnsw", "pgvector", "milvus"] = "auto"
    #: Templates (of one model) from which ``auto`` switches to the ANN index.
    ann_threshold: int = Field(default=100_000, ge=1)
    #: PostgreSQL URL of the pgvector index when it is not the site's own database.
    pg_url: str | None = None
    #: Milvus server of the ``milvus`` index, e.g. ``http://127.0.0.1:19530``.
    milvus_uri: str | None = None
    #: Adapt to the site's own people (docs/calibration.md): centre embeddings on the
    #: enrolled people and calibrate the thresholds from them for ``adaptive_target``;
    #: ``min_score``, ``fallback_max_distance`` and ``max_distance`` are then replaced by
    #: the calibration's. Off: the fixed rules above.
    adaptive: bool = True
    #: False-known rate to calibrate for: the share of strangers that may be named as an
    #: enrolled person (0.01 = 1 in 100 strangers' faces).
    adaptive_target: float = Field(default=0.01, gt=0.0, lt=0.5)
    #: How many enrolled people the packaged East Asian statistic counts as (centre and
    #: threshold) before the site's own people outweigh it.
    adaptive_prior_weight: float = Field(default=30.0, ge=0.0)
    #: Relative change of the number of enrolled people that triggers a re-calibration
    #: (below 100 people every change does); each new calibration is audited.
    adaptive_recalibrate_change: float = Field(default=0.1, gt=0.0, le=1.0)

    def adaptive_config(self) -> AdaptiveConfig:
        """The adaptive settings (also when ``adaptive`` is off, e.g. for ``calibrate``)."""
        return AdaptiveConfig(
            target=self.adaptive_target,
            prior_weight=self.adaptive_prior_weight,
            recalibrate_change=self.adaptive_recalibrate_change,
        )

    def index_spec(self, database_url: str | None) -> IndexSpec:
        """The gallery index to build, checked: pgvector needs PostgreSQL (the site's
        ``database_url`` or ``pg_url``), milvus needs ``milvus_uri``."""
        from cunan.errors import InvalidInput
        from cunan.matching.index import IndexSpec

        pg_url = self.pg_url or database_url
        if self.index == "pgvector" and not (pg_url or "").startswith("postgres"):
            raise InvalidInput(
                "matching.index = pgvector 需要 PostgreSQL (needs PostgreSQL): this site's "
                "database is SQLite; set database_url to a PostgreSQL database, or "
                "matching.pg_url to one with the 'vector' extension, or choose another "
                "matching.index"
            )
        if self.index == "milvus" and not self.milvus_uri:
            raise InvalidInput(
                "matching.index = milvus 需要 Milvus 服务器地址 (needs matching.milvus_uri), "
                "e.g. http://127.0.0.1:19530"
            )
        return IndexSpec(
            kind=self.index,
            ann_threshold=self.ann_threshold,
            pg_url=pg_url if self.index == "pgvector" else None,
            milvus_uri=self.milvus_uri if self.index == "milvus" else None,
        )

    def open_set_config(self) -> OpenSetConfig:
        """The decision rules these settings describe."""
        return OpenSetConfig(
            max_distance=self.max_distance,
            fallback_max_distance=self.fallback_max_distance,
            min_score=self.min_score,
            cohort_k=self.cohort_k,
            aggregation=self.aggregation,
            min_margin=self.min_margin,
            adaptive=self.adaptive_config() if self.adaptive else None,
        )


class RegistrySettings(BaseModel):
    """How the registry stores people and their face data."""

    #: Keep the (encrypted) enrolment photos, so a change of face model can re-embed
    #: everyone without re-collecting photos. Off by default: DOMAIN.md keeps photos only
    #: when the village chooses to (shortest necessary retention).
    keep_enrolment_photos: bool = False
    #: Below this age a person's consent must be given by a guardian (PIPL Art. 28, 31).
    guardian_consent_under_age: int = Field(default=14, ge=1, le=18)
    #: Seconds a SQLite writer waits for another writer before failing with "busy".
    busy_timeout_s: float = Field(default=10.0, gt=0.0)
    #: Seconds to wait for a PostgreSQL server before reporting it unavailable.
    connect_timeout_s: int = Field(default=5, ge=1)


class WebSettings(BaseModel):
    """The web application and HTTP API (``cunan serve``): address, sessions, login limits."""

    #: Address to listen on. ``0.0.0.0`` serves the village LAN (staff phones); use
    #: ``127.0.0.1`` to serve this PC only (e.g. behind a reverse proxy with TLS).
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    #: A session unused this long ends (minutes).
    session_idle_minutes: int = Field(default=120, ge=1)
    #: A session ends this long after login however active it is (hours).
    session_absolute_hours: int = Field(default=12, ge=1)
    #: Failed logins of one account within ``login_window_minutes`` before it is locked.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    #: Failed logins from one client address within the window before it is locked out.
    login_max_failures_per_client: int = Field(default=20, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    #: Password hashes (argon2, deliberately slow: ~64 MiB and most of a core each) computed
    #: at once; None: one per CPU core. A login storm then cannot starve page requests:
    #: logins past the bound wait ``login_hash_wait_s`` for a slot, then get 503 with
    #: Retry-After (the browser or client tries again a moment later).
    login_hash_slots: int | None = Field(default=None, ge=1)
    login_hash_wait_s: float = Field(default=3.0, ge=0.0)
    #: Seconds the statistics and the overdue-departures list (the dashboard) are reused per
    #: caller's scope before being computed again; a change to people, tenancies, rooms,
    #: cases' status ... drops them at once. Sightings per day may lag this long. 0: off.
    stats_cache_seconds: float = Field(default=5.0, ge=0.0)
    #: Largest request body accepted for uploads (photos, rosters), in megabytes.
    max_upload_mb: int = Field(default=50, ge=1)
    #: Mark cookies ``Secure`` even when the request came over plain HTTP (set it when a
    #: TLS-terminating proxy sits in front). Over HTTPS they are always Secure.
    force_secure_cookies: bool = False
    #: Addresses (or networks, e.g. ``10.0.0.0/24``) of reverse proxies whose
    #: ``X-Forwarded-Proto`` and ``X-Forwarded-For`` are believed: a request from one of them
    #: saying ``https`` counts as HTTPS (Secure cookies) and its client address is the one
    #: the proxy names (login throttling). Empty: nobody's, not even this PC's.
    trusted_proxies: list[str] = Field(default_factory=list)


class GasSettings(BaseModel):
    """The gas-alarm module (``[gas]``): each part its own sub-section."""

    #: ``[gas.alarms]``: set points, severities, escalation, cases, the SMS gateway.
    alarms: GasAlarmSettings = GasAlarmSettings()
    #: ``[gas.ingest]``: the broker, batching, retention, HTTP push sources.
    ingest: GasIngestSettings = Field(default_factory=GasIngestSettings)


class Settings(BaseSettings):
    """All of CunAn's settings. Nested fields use ``__`` in the environment,
    e.g. ``CUNAN_FACES__MATCH_THRESHOLD=0.55``."""

    model_config = SettingsConfigDict(
        env_prefix="CUNAN_", env_nested_delimiter="__", extra="ignore"
    )

    faces: FaceSettings = FaceSettings()
    registry: RegistrySettings = RegistrySettings()
    matching: MatchingSettings = MatchingSettings()
    notify: NotifySettings = NotifySettings()
    cases: CaseSettings = CaseSettings()
    duties: DutySettings = DutySettings()
    web: WebSettings = WebSettings()
    gas: GasSettings = GasSettings()
    #: Where the database (SQLite), the key file and crops live; ``CUNAN_DATA_DIR``.
    #: Unset: ``platformdirs.user_data_dir("cunan")`` (e.g. ``~/.local/share/cunan``).
    data_dir: Path | None = None
    #: SQLAlchemy URL of the database; ``CUNAN_DATABASE_URL``. Unset: SQLite in the data dir.
    #: PostgreSQL: ``postgresql+psycopg://user:password@host:5432/dbname``.
    database_url: str | None = None
    #: The key file (AES keys for face data); ``CUNAN_KEY_FILE``. Unset: ``DATA_DIR/cunan.key``.
    key_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CUNAN_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings() -> Settings:
    """Settings for this process (environment wins over the TOML file)."""
    config_file = os.environ.get("CUNAN_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise FileNotFoundError(f"{config_file}: CUNAN_CONFIG names a file that does not exist")
    source = config_file or "CUNAN_* environment variables"
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"{source}: invalid settings: {problems}") from None
    except ValueError as exc:  # TOML syntax errors
        raise ValueError(f"{source}: invalid settings: {' '.join(str(exc).split())}") from None
