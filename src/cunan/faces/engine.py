"""The face engine: one object that detects, judges and embeds faces in an image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from cunan.domain import AnalyzedFace, DetectedFace, FaceQuality, RGBImage
from cunan.faces.align import random_jitters
from cunan.faces.detect import DlibCnnDetector, DlibHogDetector, FaceDetector
from cunan.faces.embed import (
    DlibResnetEmbedder,
    Embedder,
    OnnxEmbedder,
    OnnxModelSpec,
    embed_jittered,
)
from cunan.faces.landmarks import FivePointLandmarker
from cunan.faces.quality import (
    ENROLMENT_THRESHOLDS,
    SIGHTING_THRESHOLDS,
    QualityThresholds,
    assess_quality,
)

if TYPE_CHECKING:
    from cunan.config import FaceSettings

DetectorName = Literal["dlib_hog", "dlib_cnn", "video"]

#: Jittered copies averaged into each enrolment descriptor (``faces.enrol_jitter``); the
#: same default as the setting, so an engine built without settings enrols alike. Off (1):
#: on LFW, jittering only the enrolment side gained 0.2 points of verification accuracy and
#: ~1 point of TPIR at FPIR 1 %, but lost 1-4 points at FPIR 0.1 % and moved the default
#: min_score's FPIR from 0.98 % to 1.1 % (docs/benchmarks.md, LFW and identification).
DEFAULT_ENROL_JITTER = 1

#: Seed of the jitters: fixed, so the same photo always gives the same descriptor.
JITTER_SEED = 0


class EnrolmentPhotoError(ValueError):
    """A photo cannot be used for enrolment; ``reason`` says why in words staff understand."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine is built from. ``onnx_model`` replaces dlib's ResNet when given."""

    detector: DetectorName = "dlib_hog"
    upsample: int = 1
    embed_runtime: Literal["auto", "dlib", "onnx"] = "auto"
    onnx_model: OnnxModelSpec | None = None
    threads: int = 1
    #: Jittered chips averaged per enrolment descriptor; 1 = the plain descriptor.
    #: Only enrolment photos are jittered: camera faces are always embedded once.
    enrol_jitter: int = DEFAULT_ENROL_JITTER

    @classmethod
    def from_settings(cls, faces: FaceSettings) -> EngineConfig:
        """The engine the ``faces`` settings describe."""
        return cls(
            detector=faces.detector,
            upsample=faces.upsample,
            embed_runtime=faces.embed_runtime,
            onnx_model=OnnxModelSpec(path=faces.onnx_model) if faces.onnx_model else None,
            threads=faces.threads,
            enrol_jitter=faces.enrol_jitter,
        )


def build_detector(
    name: DetectorName, *, upsample: int = 1, landmarker: FivePointLandmarker | None = None
) -> FaceDetector:
    if name == "dlib_hog":
        return DlibHogDetector(upsample=upsample, landmarker=landmarker)
    if name == "dlib_cnn":
        return DlibCnnDetector(upsample=upsample, landmarker=landmarker)
    if name == "video":
        from cunan.faces.video_detector import BlazeFaceDetector

        return BlazeFaceDetector()
    raise ValueError(f"unknown detector {name!r}; use dlib_hog, dlib_cnn or video")


class FaceEngine:
    """Stateless image -> faces -> quality -> embeddings; never touches storage."""

    def __init__(
        self,
        detector: FaceDetector,
        embedder: Embedder,
        *,
        enrolment_thresholds: QualityThresholds = ENROLMENT_THRESHOLDS,
        sighting_thresholds: QualityThresholds = SIGHTING_THRESHOLDS,
        enrol_jitter: int = DEFAULT_ENROL_JITTER,
        jitter_seed: int = JITTER_SEED,
    ) -> None:
        if enrol_jitter < 1:
            raise ValueError(f"enrol_jitter must be at least 1, got {enrol_jitter}")
        self.detector = detector
        self.embedder = embedder
        self.enrolment_thresholds = enrolment_thresholds
        self.sighting_thresholds = sighting_thresholds
        self.enrol_jitter = enrol_jitter
        self.jitter_seed = jitter_seed

    @classmethod
    def from_config(cls, config: EngineConfig | None = None) -> FaceEngine:
        config = config or EngineConfig()
        landmarker = FivePointLandmarker()
        detector = build_detector(config.detector, upsample=config.upsample, landmarker=landmarker)
        embedder: Embedder
        if config.onnx_model is not None:
            embedder = OnnxEmbedder(config.onnx_model, threads=config.threads)
        else:
            embedder = DlibResnetEmbedder(
                runtime=config.embed_runtime, threads=config.threads, landmarker=landmarker
            )
        return cls(detector, embedder, enrol_jitter=config.enrol_jitter)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        return self.detector.detect(image)

    def quality(
        self, image: RGBImage, face: DetectedFace, thresholds: QualityThresholds | None = None
    ) -> FaceQuality:
        return assess_quality(image, face, thresholds or self.sighting_thresholds)

    def analyze(
        self,
        image: RGBImage,
        *,
        embed: bool = True,
        thresholds: QualityThresholds | None = None,
    ) -> list[AnalyzedFace]:
        """Every face in the image with its quality; embeddings for all of them if asked."""
        faces = self.detect(image)
        qualities = [self.quality(image, f, thresholds) for f in faces]
        vectors: list[NDArray[np.float32] | None] = [None] * len(faces)
        if embed and faces:
            emb = self.embedder.embed(image, faces)
            vectors = [emb.vectors[i] for i in range(len(faces))]
        model = self.model_id if embed else None
        return [
            AnalyzedFace(face=f, quality=q, embedding=v, model_id=model)
            for f, q, v in zip(faces, qualities, vectors, strict=True)
        ]

    def embed_faces(self, image: RGBImage, faces: Sequence[DetectedFace]) -> NDArray[np.float32]:
        return self.embedder.embed(image, faces).vectors

    def embed_faces_jittered(
        self, image: RGBImage, faces: Sequence[DetectedFace], num_jitters: int
    ) -> NDArray[np.float32]:
        """Descriptors averaged over ``num_jitters`` jittered chips (1: :meth:`embed_faces`).

        Costs ``num_jitters`` embeddings per face; meant for enrolment photos, where a
        steadier descriptor is worth it, not for camera frames.
        """
        if num_jitters == 1:
            return self.embed_faces(image, faces)
        jitters = random_jitters(num_jitters, self.jitter_seed)
        return embed_jittered(self.embedder, [(image, f) for f in faces], jitters).vectors

    def enrolment_face(self, image: RGBImage, *, source: str = "<image>") -> AnalyzedFace:
        """The one good face of an enrolment photo, or an error saying what is wrong."""
        faces = self.detect(image)
        if not faces:
            raise EnrolmentPhotoError(source, "no face found")
        judged = [(f, self.quality(image, f, self.enrolment_thresholds)) for f in faces]
        confident = getattr(self.detector, "confident_score", float("-inf"))
        good = [(f, q) for f, q in judged if q.passed and f.score >= confident]
        if len(good) > 1:
            raise EnrolmentPhotoError(
                source, f"{len(good)} faces of enrolment quality; the photo must show one person"
            )
        if not good:
            best_face, best_q = max(judged, key=lambda fq: fq[0].box.width)
            reasons = list(best_q.reasons)
            if best_face.score < confident:
                reasons.append(
                    f"uncertain detection (score {best_face.score:.2f} < {confident:.2f})"
                )
            raise EnrolmentPhotoError(
                source, "face not good enough for enrolment: " + "; ".join(reasons)
            )
        face, q = good[0]
        vector = self.embed_faces_jittered(image, [face], self.enrol_jitter)[0]
        return AnalyzedFace(face=face, quality=q, embedding=vector, model_id=self.model_id)


def central_face(faces: Sequence[DetectedFace], width: int, height: int) -> DetectedFace | None:
    """The face nearest the image centre (ties to the larger): the subject of a portrait crop."""
    if not faces:
        return None
    cx, cy = width / 2.0, height / 2.0

    def key(face: DetectedFace) -> tuple[float, float]:
        fx, fy = face.box.center
        return ((fx - cx) ** 2 + (fy - cy) ** 2, -face.box.width)

    return min(faces, key=key)
