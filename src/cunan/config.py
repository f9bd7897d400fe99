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


class Settings(BaseSettings):
    """All of CunAn's settings. Nested fields use ``__`` in the environment,
    e.g. ``CUNAN_FACES__MATCH_THRESHOLD=0.55``."""

    model_config = SettingsConfigDict(
        env_prefix="CUNAN_", env_nested_delimiter="__", extra="ignore"
    )

    faces: FaceSettings = FaceSettings()

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
