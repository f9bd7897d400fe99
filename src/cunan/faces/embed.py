"""Face embedders behind one protocol; every embedding carries the id of its model."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import dlib
import numpy as np
from numpy.typing import NDArray

from cunan.domain import DetectedFace, Embeddings, RGBImage
from cunan.faces.align import (
    ChipJitter,
    arcface_chip,
    arcface_jittered_chips,
    dlib_chips,
    dlib_jittered_chips,
)
from cunan.faces.landmarks import FivePointLandmarker, shape_from_points
from cunan.faces.models import ModelNotAvailableError, cache_dir, dlib_model_path

logger = logging.getLogger(__name__)

#: Model id of dlib's ResNet v1; the same for both runtimes because the weights and the
#: results (within 1e-4 per dimension) are the same.
DLIB_RESNET_MODEL_ID = "dlib_resnet_v1"


@runtime_checkable
class Embedder(Protocol):
    """Turns faces into L2-normalised embedding vectors."""

    model_id: str
    dim: int

    def align(self, image: RGBImage, faces: Sequence[DetectedFace]) -> NDArray[np.uint8]:
        """Model-specific aligned chips, shape (n, h, w, 3)."""
        ...

    def align_jittered(
        self, image: RGBImage, face: DetectedFace, jitters: Sequence[ChipJitter]
    ) -> NDArray[np.uint8]:
        """One face's chips, one per jitter of its alignment, shape (len(jitters), h, w, 3)."""
        ...

    def embed_chips(self, chips: NDArray[np.uint8]) -> Embeddings:
        """Embeddings of already aligned chips (lets callers batch across images)."""
        ...

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> Embeddings:
        """Align and embed the given faces of one image."""
        ...


def l2_normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # A zero vector would divide by zero; it can only come from a broken model output.
    norms[norms == 0] = 1.0
    return np.asarray(vectors / norms, dtype=np.float32)


def embed_jittered(
    embedder: Embedder,
    faces: Sequence[tuple[RGBImage, DetectedFace]],
    jitters: Sequence[ChipJitter],
) -> Embeddings:
    """One descriptor per (image, face): the mean of its jittered chips' embeddings.

    Each chip's embedding is unit length (as every embedding here), so the mean weighs the
    jitters equally; it is L2-normalised again so distances stay on the scale the
    thresholds in the settings were measured on. The chips of all the faces go through
    the model together, so a caller can batch across images.
    """
    n = len(jitters)
    if n == 0:
        raise ValueError("need at least one jitter")
    if not faces:
        return Embeddings(np.zeros((0, embedder.dim), dtype=np.float32), embedder.model_id)
    chips = np.concatenate([embedder.align_jittered(image, f, jitters) for image, f in faces])
    emb = embedder.embed_chips(chips)
    means = emb.vectors.reshape(len(faces), n, -1).mean(axis=1, dtype=np.float64)
    return Embeddings(l2_normalise(means.astype(np.float32)), emb.model_id)


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class DlibResnetEmbedder:
    """dlib's ResNet (128-d, LFW 99.38% published) run by dlib itself or by ONNX Runtime.

    ``runtime="onnx"`` runs the same weights converted from the ``.dat`` file to an ONNX
    graph (cached under :func:`cunan.faces.models.cache_dir`); it matches dlib within
    1e-4 per dimension and is several times faster on CPUs with AVX2. ``"auto"`` picks
    ONNX when onnxruntime is importable.
    """

    model_id = DLIB_RESNET_MODEL_ID
    dim = 128

    def __init__(
        self,
        *,
        runtime: Literal["auto", "dlib", "onnx"] = "auto",
        threads: int = 1,
        batch_size: int = 32,
        landmarker: FivePointLandmarker | None = None,
    ) -> None:
        self._landmarker = landmarker or FivePointLandmarker()
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._dlib_model: Any = None
        self._session: Any = None
        if runtime in ("auto", "onnx"):
            try:
                self._session = _dlib_resnet_session(threads)
            except Exception as exc:
                if runtime == "onnx":
                    raise ModelNotAvailableError(
                        f"cannot run dlib's ResNet in ONNX Runtime: {exc}"
                    ) from exc
                logger.warning("ONNX runtime for dlib's ResNet unavailable (%s); using dlib", exc)
        if self._session is None:
            self._dlib_model = dlib.face_recognition_model_v1(str(dlib_model_path("resnet_v1")))
        self.runtime = "onnx" if self._session is not None else "dlib"

    def align(self, image: RGBImage, faces: Sequence[DetectedFace]) -> NDArray[np.uint8]:
        shapes = [
            shape_from_points(face.box, face.dlib_points)
            if face.dlib_points is not None
            else self._landmarker.shape(image, face.box)
            for face in faces
        ]
        return dlib_chips(image, shapes)

    def align_jittered(
        self, image: RGBImage, face: DetectedFace, jitters: Sequence[ChipJitter]
    ) -> NDArray[np.uint8]:
        shape = (
            shape_from_points(face.box, face.dlib_points)
            if face.dlib_points is not None
            else self._landmarker.shape(image, face.box)
        )
        return dlib_jittered_chips(image, shape, jitters)

    def embed_chips(self, chips: NDArray[np.uint8]) -> Embeddings:
        if chips.ndim != 4 or chips.shape[1:] != (150, 150, 3):
            raise ValueError(f"dlib ResNet needs (n, 150, 150, 3) chips, got {chips.shape}")
        if len(chips) == 0:
            return Embeddings(np.zeros((0, self.dim), dtype=np.float32), self.model_id)
        parts = []
        for start in range(0, len(chips), self._batch_size):
            batch = np.ascontiguousarray(chips[start : start + self._batch_size])
            parts.append(self._run(batch))
        return Embeddings(l2_normalise(np.vstack(parts)), self.model_id)

    def _run(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        if self._session is not None:
            out = self._session.run(["descriptors"], {"chips": batch})[0]
            return np.asarray(out, dtype=np.float32)
        with self._lock:
            descriptors = self._dlib_model.compute_face_descriptor(list(batch))
        return np.asarray([np.asarray(d) for d in descriptors], dtype=np.float32)

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> Embeddings:
        return self.embed_chips(self.align(image, faces))


def _dlib_resnet_session(threads: int) -> Any:
    import onnxruntime as ort

    onnx_path = ensure_dlib_resnet_onnx()
    return ort.InferenceSession(
        str(onnx_path), _session_options(threads), providers=["CPUExecutionProvider"]
    )


def ensure_dlib_resnet_onnx(directory: Path | None = None) -> Path:
    """The ONNX form of dlib's ResNet, converted from the installed ``.dat`` on first use."""
    from cunan.faces.dlib_onnx import convert

    dat = dlib_model_path("resnet_v1")
    stat = dat.stat()
    # Name the converted file after the source's size and mtime so an upgraded
    # face_recognition_models package is converted again rather than silently reused.
    target_dir = directory or cache_dir() / "models"
    target = target_dir / f"dlib_resnet_v1-{stat.st_size}-{int(stat.st_mtime)}.onnx"
    if not target.is_file():
        target_dir.mkdir(parents=True, exist_ok=True)
        logger.info("converting %s to ONNX at %s (one time)", dat, target)
        convert(dat, target)
    return target


@dataclass(frozen=True, slots=True)
class OnnxModelSpec:
    """How to feed a user-supplied ArcFace-style recognition model.

    Pixels are transformed as ``(pixel - mean) / std`` per channel after optional
    RGB->BGR reordering; ``layout`` is the model's input layout.
    """

    path: Path
    input_size: int = 112
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    model_id: str | None = None


class OnnxEmbedder:
    """Runs a user-supplied recognition model (e.g. ArcFace, 112x112 in, 512-d out)."""

    def __init__(self, spec: OnnxModelSpec, *, threads: int = 1, batch_size: int = 32) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            raise ModelNotAvailableError("onnxruntime is not installed") from exc
        path = Path(spec.path)
        if not path.is_file():
            raise ModelNotAvailableError(f"{path}: ONNX model file not found")
        try:
            self._session = ort.InferenceSession(
                str(path), _session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelNotAvailableError(f"{path}: not a loadable ONNX model ({exc})") from None
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelNotAvailableError(
                f"{path}: expected one input and at least one output, got "
                f"{len(inputs)} inputs and {len(outputs)} outputs"
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self.spec = spec
        self._mean = np.asarray(spec.mean, dtype=np.float32)
        self._std = np.asarray(spec.std, dtype=np.float32)
        # One blank chip at load time: a model exported with dynamic axes still tells its
        # size, and a model that cannot take the configured input fails now, not mid-stream.
        self.dim = self._probe_dim(path)
        self.model_id = spec.model_id or _file_model_id(path)
        self._batch_size = batch_size

    def _probe_dim(self, path: Path) -> int:
        size = self.spec.input_size
        blank = self.preprocess(np.full((1, size, size, 3), 128, dtype=np.uint8))
        try:
            out = self._session.run([self._output_name], {self._input_name: blank})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelNotAvailableError(
                f"{path}: model does not accept a {self.spec.layout} {size}x{size} chip ({exc})"
            ) from None
        return int(np.asarray(out).reshape(1, -1).shape[1])

    def align(self, image: RGBImage, faces: Sequence[DetectedFace]) -> NDArray[np.uint8]:
        size = self.spec.input_size
        if not faces:
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        return np.stack([arcface_chip(image, f.landmarks, size=size) for f in faces])

    def align_jittered(
        self, image: RGBImage, face: DetectedFace, jitters: Sequence[ChipJitter]
    ) -> NDArray[np.uint8]:
        return arcface_jittered_chips(image, face.landmarks, jitters, size=self.spec.input_size)

    def preprocess(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Chips (n, h, w, 3) RGB uint8 -> the model's input tensor."""
        x = chips.astype(np.float32)
        if self.spec.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - self._mean) / self._std
        if self.spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def embed_chips(self, chips: NDArray[np.uint8]) -> Embeddings:
        size = self.spec.input_size
        if chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
            raise ValueError(f"model needs (n, {size}, {size}, 3) chips, got {chips.shape}")
        if len(chips) == 0:
            return Embeddings(np.zeros((0, self.dim), dtype=np.float32), self.model_id)
        parts = []
        for start in range(0, len(chips), self._batch_size):
            x = self.preprocess(chips[start : start + self._batch_size])
            out = self._session.run([self._output_name], {self._input_name: x})[0]
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(x), -1))
        return Embeddings(l2_normalise(np.vstack(parts)), self.model_id)

    def embed(self, image: RGBImage, faces: Sequence[DetectedFace]) -> Embeddings:
        return self.embed_chips(self.align(image, faces))


def _file_model_id(path: Path) -> str:
    """``<stem>-<first 12 hex of sha256>``: a renamed copy keeps its id, a retrained file not."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    stem = path.stem
    return f"{stem}-{digest.hexdigest()[:12]}"
