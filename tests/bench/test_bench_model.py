"""Benchmarks embed with the site's own ONNX model when given one (``--onnx-model`` or the
settings' ``faces.onnx_model``), and key their caches by it (issue 12 item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.faces.test_onnx_embedder import DIM
from tests.faces.test_onnx_embedder import _build as build_tiny_model

from cunan.bench.lfw_data import LfwImage
from cunan.bench.lfw_embeddings import (
    ONNX_MODEL_ENV,
    bench_model_id,
    build_engine,
    cache_path,
    use_onnx_model,
)


def test_the_settings_model_is_the_benchmarks_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ONNX_MODEL_ENV, raising=False)
    monkeypatch.delenv("CUNAN_CONFIG", raising=False)
    assert bench_model_id() == "dlib_resnet_v1"
    images = [LfwImage("A_B", 1, tmp_path / "A_B" / "A_B_0001.jpg")]
    dlib_cache = cache_path(tmp_path, images, bench_model_id())

    model = build_tiny_model(tmp_path / "licensed.onnx")
    monkeypatch.setenv(ONNX_MODEL_ENV, "")  # restored by monkeypatch after the test
    use_onnx_model(model)
    engine = build_engine("auto")
    assert engine.model_id == bench_model_id() != "dlib_resnet_v1"
    assert engine.model_id.startswith("licensed-")
    chip = np.full((1, 112, 112, 3), 100, dtype=np.uint8)
    assert engine.embedder.embed_chips(chip).vectors.shape == (1, DIM)
    assert cache_path(tmp_path, images, bench_model_id()) != dlib_cache
