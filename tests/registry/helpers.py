"""Builders shared by the registry tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from cunan.registry.records import ConsentInput, PhotoInput, TemplateInput, Vector

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
MODEL = "dlib_resnet_v1"


def vector(seed: int, dim: int = 128) -> Vector:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def template(seed: int, *, photo: bytes | None = None) -> TemplateInput:
    return TemplateInput(
        vector=vector(seed),
        model_id=MODEL,
        photo=PhotoInput(photo, "image/jpeg") if photo is not None else None,
    )


def consent(guardian: str | None = None) -> ConsentInput:
    return ConsentInput(collected_by="网格员 王", collected_at=NOW, guardian_name=guardian)
