"""``faces.onnx_model`` reaches the face engine CunanApp builds, and everything built on it
(enrolment, identification's gallery, the camera pipeline's embedder)."""

from __future__ import annotations

from pathlib import Path

from cunan.app import CunanApp
from cunan.config import FaceSettings, Settings
from cunan.faces.embed import OnnxEmbedder
from cunan.pipeline.build import build_embedder
from cunan.registry.datadir import initialise
from tests.cli_helpers import ADMIN_PASSWORD
from tests.faces.test_onnx_embedder import DIM, _build


def test_the_sites_onnx_model_is_the_apps_model(tmp_path: Path) -> None:
    model = _build(tmp_path / "site-model.onnx")
    settings = Settings(faces=FaceSettings(onnx_model=model))
    data = tmp_path / "data"
    initialise(
        data, settings, admin_username="admin", admin_password=ADMIN_PASSWORD, village_name="村"
    ).close()
    app = CunanApp.open(settings, data)
    try:
        engine = app.face_engine
        assert isinstance(engine.embedder, OnnxEmbedder)
        assert engine.embedder.dim == DIM and engine.model_id != "dlib_resnet_v1"
        # The gallery searches that model's templates; the cameras embed with it too.
        gallery = app.gallery
        assert gallery.model_id == engine.model_id
        assert build_embedder(app.settings).model_id == engine.model_id
    finally:
        app.close()
