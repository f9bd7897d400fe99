"""The ONNX Runtime backend for user-supplied recognition models, on models built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cunan.domain import BoundingBox, DetectedFace
from cunan.faces.embed import OnnxEmbedder, OnnxModelSpec
from cunan.faces.landmarks import ARCFACE_REFERENCE_112
from cunan.faces.models import ModelNotAvailableError

DIM = 512


def _weights() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(3, DIM)).astype(np.float32)


def _build(path: Path, *, layout: str = "NCHW", dim: int | str = DIM) -> Path:
    """A tiny 'recogniser': per-channel mean of the input, then a fixed 3 x 512 projection."""
    shape: list[int | str] = ["N", 3, 112, 112] if layout == "NCHW" else ["N", 112, 112, 3]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    graph = helper.make_graph(
        nodes=[
            helper.make_node("ReduceMean", ["input", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "W"], ["embedding"]),
        ],
        name="tiny",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        outputs=[helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=[
            numpy_helper.from_array(np.array(axes, dtype=np.int64), "axes"),
            numpy_helper.from_array(_weights(), "W"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _expected(chips: np.ndarray, mean: float, std: float, bgr: bool) -> np.ndarray:
    x = chips.astype(np.float32)
    if bgr:
        x = x[..., ::-1]
    pooled = ((x - mean) / std).mean(axis=(1, 2))
    out = pooled @ _weights()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _chips(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(11)
    chips = rng.integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)
    chips[0, ..., 0] = 250  # a strongly red chip makes channel order matter
    return chips


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocessing_and_output(tmp_path: Path, layout: str, order: str) -> None:
    path = _build(tmp_path / "tiny.onnx", layout=layout)
    spec = OnnxModelSpec(
        path=path,
        mean=(127.5, 127.5, 127.5),
        std=(128.0, 128.0, 128.0),
        channel_order=order,  # type: ignore[arg-type]
        layout=layout,  # type: ignore[arg-type]
    )
    embedder = OnnxEmbedder(spec, batch_size=2)
    chips = _chips(5)
    emb = embedder.embed_chips(chips)
    assert emb.vectors.shape == (5, DIM)
    assert embedder.dim == DIM
    np.testing.assert_allclose(
        emb.vectors, _expected(chips, 127.5, 128.0, order == "BGR"), rtol=1e-4, atol=1e-5
    )


def test_channel_order_changes_the_result(tmp_path: Path) -> None:
    path = _build(tmp_path / "tiny.onnx")
    chips = _chips(1)
    rgb = OnnxEmbedder(OnnxModelSpec(path=path)).embed_chips(chips).vectors
    bgr = OnnxEmbedder(OnnxModelSpec(path=path, channel_order="BGR")).embed_chips(chips).vectors
    assert np.abs(rgb - bgr).max() > 1e-3


def test_model_id_follows_content_not_name(tmp_path: Path) -> None:
    a = _build(tmp_path / "arcface.onnx")
    b = tmp_path / "renamed.onnx"
    b.write_bytes(a.read_bytes())
    id_a = OnnxEmbedder(OnnxModelSpec(path=a)).model_id
    id_b = OnnxEmbedder(OnnxModelSpec(path=b)).model_id
    assert id_a.startswith("arcface-") and id_b.startswith("renamed-")
    assert id_a.split("-")[1] == id_b.split("-")[1]
    assert OnnxEmbedder(OnnxModelSpec(path=a, model_id="site-arcface-v2")).model_id == (
        "site-arcface-v2"
    )


def test_aligns_faces_from_landmarks(tmp_path: Path) -> None:
    embedder = OnnxEmbedder(OnnxModelSpec(path=_build(tmp_path / "tiny.onnx")))
    # A face whose landmarks sit at twice the reference positions, shifted by (40, 30).
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    landmarks = (ARCFACE_REFERENCE_112 * 2 + np.array([40, 30])).astype(np.float32)
    for x, y in landmarks:
        image[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4] = 255
    face = DetectedFace(BoundingBox(40, 30, 264, 254), 1.0, landmarks, "t", "t")
    chips = embedder.align(image, [face])
    assert chips.shape == (1, 112, 112, 3)
    for x, y in ARCFACE_REFERENCE_112:
        assert chips[0, round(y), round(x)].max() > 200, "landmark lands on its reference"
    assert embedder.embed(image, [face]).vectors.shape == (1, DIM)
    assert embedder.embed(image, []).vectors.shape == (0, DIM)


def test_wrong_chip_size_is_refused(tmp_path: Path) -> None:
    embedder = OnnxEmbedder(OnnxModelSpec(path=_build(tmp_path / "tiny.onnx")))
    with pytest.raises(ValueError, match=r"\(n, 112, 112, 3\)"):
        embedder.embed_chips(np.zeros((1, 150, 150, 3), dtype=np.uint8))


def test_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="not found"):
        OnnxEmbedder(OnnxModelSpec(path=tmp_path / "missing.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 this is not a protobuf" * 10)
    with pytest.raises(ModelNotAvailableError, match=r"garbage\.onnx: not a loadable ONNX model"):
        OnnxEmbedder(OnnxModelSpec(path=garbage))
    dynamic = _build(tmp_path / "dynamic.onnx", dim="D")
    assert OnnxEmbedder(OnnxModelSpec(path=dynamic)).dim == DIM
    wrong_layout = _build(tmp_path / "nhwc.onnx", layout="NHWC")
    with pytest.raises(ModelNotAvailableError, match="does not accept a NCHW 112x112 chip"):
        OnnxEmbedder(OnnxModelSpec(path=wrong_layout, layout="NCHW"))
