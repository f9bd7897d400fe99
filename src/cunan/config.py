"""Settings: defaults, overridden by a TOML file (CUNAN_CONFIG) and CUNAN_* variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cunan.cases.settings import CaseSettings
from cunan.duties.settings import DutySettings
from cunan.notify.settings import NotifySettings


class FaceSettings(BaseModel):
    """The face engine's knobs. Distances are Euclidean between L2-normalised embeddings."""

    detector: Literal["dlib_hog", "dlib_cnn", "video"] = "dlib_hog"
    #: Image doublings before HOG/CNN detection; 1 finds faces down to ~40 px.
    upsample: int = Field(default=1, ge=0, le=3)
    embed_runtime: Literal["auto", "dlib", "onnx"] = "auto"
    #: Same-person threshold for 1:1 comparison (``cunan faces compare``); dlib's usual 0.6
    #: on its raw descriptors (norm ~1.38) is ~0.44 here. Chosen by the
    #: LFW 10-fold protocol on dlib's ResNet (see docs/benchmarks.md).
    match_threshold: float = Field(default=0.44, gt=0.0, lt=2.0)
    #: Largest image accepted, in pixels (width x height).
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    #: ONNX recognition model to use instead of dlib's ResNet (ArcFace-style, 112x112).
    onnx_model: Path | None = None
    threads: int = Field(default=1, ge=1)


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


class Settings(BaseSettings):
    """All of CunAn's settings. Nested fields use ``__`` in the environment,
    e.g. ``CUNAN_FACES__MATCH_THRESHOLD=0.55``."""

    model_config = SettingsConfigDict(
        env_prefix="CUNAN_", env_nested_delimiter="__", extra="ignore"
    )

    faces: FaceSettings = FaceSettings()
    registry: RegistrySettings = RegistrySettings()
    notify: NotifySettings = NotifySettings()
    cases: CaseSettings = CaseSettings()
    duties: DutySettings = DutySettings()
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
    return Settings()
