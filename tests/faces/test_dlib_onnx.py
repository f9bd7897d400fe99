"""The ONNX conversion of dlib's face-recognition ResNet must reproduce dlib's descriptors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cunan.faces.dlib_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    DlibModelFormatError,
    convert,
    read_dlib_resnet,
)

dlib: Any = pytest.importorskip("dlib")
face_recognition_models: Any = pytest.importorskip("face_recognition_models")
ort: Any = pytest.importorskip("onnxruntime")

Chips = npt.NDArray[np.uint8]
Descriptors = npt.NDArray[np.float32]

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
TOLERANCE = 1e-4
MIN_REAL_CHIPS = 50
# Every n-th LFW person (sorted) gives a deterministic, varied sample without scanning it all.
LFW_PERSON_STEP = 97
CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128
# dlib's anet_type: 3 + 4 + 3 + 3 + 1 residual blocks, one downsampling block per stage
# after the first.
EXPECTED_BLOCKS = 14
EXPECTED_DOWNSAMPLING_BLOCKS = 4
FC_INPUTS = 256


@pytest.fixture(scope="module")
def dat_path() -> Path:
    return Path(face_recognition_models.face_recognition_model_location())


@pytest.fixture(scope="module")
def onnx_path(dat_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dlib_onnx") / "dlib_face_recognition_resnet_model_v1.onnx"
    convert(dat_path, path)
    return path


@pytest.fixture(scope="module")
def session(onnx_path: Path) -> Any:
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def dlib_model(dat_path: Path) -> Any:
    return dlib.face_recognition_model_v1(str(dat_path))


@pytest.fixture(scope="module")
def shared_data() -> Path:
    if not DATA_DIR.is_dir():
        reason = f"shared test data not found at {DATA_DIR}"
        if os.environ.get("CUNAN_REQUIRE_DATA") == "1":
            pytest.fail(f"{reason} (CUNAN_REQUIRE_DATA=1)")
        pytest.skip(reason)
    return DATA_DIR


def _candidate_images(data_dir: Path) -> Iterator[Path]:
    examples = data_dir / "face_recognition_examples" / "examples"
    yield examples / "obama.jpg"
    yield examples / "biden.jpg"
    people = sorted(p for p in (data_dir / "lfw" / "lfw-deepfunneled").iterdir() if p.is_dir())
    for person in people[::LFW_PERSON_STEP]:
        yield from sorted(person.glob("*.jpg"))[:1]


@pytest.fixture(scope="module")
def real_chips(shared_data: Path) -> Chips:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    chips: list[Chips] = []
    for image_path in _candidate_images(shared_data):
        image = dlib.load_rgb_image(str(image_path))
        faces = detector(image, 1)
        if faces:
            shape = predictor(image, faces[0])
            chips.append(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=0.25))
    if len(chips) < MIN_REAL_CHIPS:
        pytest.fail(f"only {len(chips)} face chips found under {shared_data}")
    return np.stack(chips)


@pytest.fixture(scope="module")
def noise_chips() -> Chips:
    rng = np.random.default_rng(20240917)
    noise = rng.integers(0, 256, size=(4, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    # Saturated and flat inputs exercise the extremes of the mean subtraction.
    flat = np.zeros((2, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    flat[1] = 255
    return np.concatenate([noise, flat])


def _dlib_descriptors(model: Any, chips: Chips) -> Descriptors:
    return np.stack(
        [np.asarray(model.compute_face_descriptor(chip), dtype=np.float32) for chip in chips]
    )


def _onnx_descriptors(session: Any, chips: Chips) -> Descriptors:
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: chips})
    return np.asarray(out, dtype=np.float32)


@pytest.mark.slow
def test_matches_dlib_on_real_face_chips(session: Any, dlib_model: Any, real_chips: Chips) -> None:
    expected = _dlib_descriptors(dlib_model, real_chips)
    actual = _onnx_descriptors(session, real_chips)
    assert actual.shape == (len(real_chips), DESCRIPTOR_SIZE)
    assert np.abs(actual - expected).max() < TOLERANCE


def test_matches_dlib_on_synthetic_chips(session: Any, dlib_model: Any, noise_chips: Chips) -> None:
    expected = _dlib_descriptors(dlib_model, noise_chips)
    actual = _onnx_descriptors(session, noise_chips)
    assert np.abs(actual - expected).max() < TOLERANCE


def test_batch_equals_one_at_a_time(session: Any, noise_chips: Chips) -> None:
    batched = _onnx_descriptors(session, noise_chips)
    single = np.concatenate([_onnx_descriptors(session, chip[None]) for chip in noise_chips])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-6)


def test_model_interface(session: Any) -> None:
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert (inp.name, inp.type) == (INPUT_NAME, "tensor(uint8)")
    assert inp.shape[1:] == [CHIP_SIZE, CHIP_SIZE, 3]
    assert not isinstance(inp.shape[0], int)
    assert (out.name, out.type) == (OUTPUT_NAME, "tensor(float)")
    assert out.shape[1] == DESCRIPTOR_SIZE


def test_convert_leaves_no_temporary_files(onnx_path: Path) -> None:
    assert [p.name for p in onnx_path.parent.iterdir()] == [onnx_path.name]


def test_reader_exposes_expected_architecture(dat_path: Path) -> None:
    weights = read_dlib_resnet(dat_path)
    assert weights.input_size == (CHIP_SIZE, CHIP_SIZE)
    assert len(weights.blocks) == EXPECTED_BLOCKS
    assert sum(block.shortcut_pool is not None for block in weights.blocks) == (
        EXPECTED_DOWNSAMPLING_BLOCKS
    )
    assert weights.fc_weight.shape == (FC_INPUTS, DESCRIPTOR_SIZE)
    assert weights.fc_weight.dtype == np.float32


@pytest.mark.parametrize("keep_bytes", [0, 1, 300, 100_000, -1])
def test_truncated_dat_raises_format_error(dat_path: Path, tmp_path: Path, keep_bytes: int) -> None:
    data = dat_path.read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[:keep_bytes])
    with pytest.raises(DlibModelFormatError, match=re.escape(str(truncated))) as info:
        read_dlib_resnet(truncated)
    assert info.value.path == truncated
    assert isinstance(info.value, ValueError)


def test_garbage_dat_raises_format_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(DlibModelFormatError, match=re.escape(str(garbage))):
        read_dlib_resnet(garbage)


def test_trailing_bytes_raise_format_error(dat_path: Path, tmp_path: Path) -> None:
    padded = tmp_path / "padded.dat"
    padded.write_bytes(dat_path.read_bytes() + b"\x00")
    with pytest.raises(DlibModelFormatError, match="trailing"):
        read_dlib_resnet(padded)


def test_other_dlib_model_raises_format_error() -> None:
    other = Path(face_recognition_models.pose_predictor_five_point_model_location())
    with pytest.raises(DlibModelFormatError, match=re.escape(str(other))):
        read_dlib_resnet(other)
