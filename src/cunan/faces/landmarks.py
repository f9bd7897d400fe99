"""Five-point facial landmarks: dlib's shape predictor and conversion to the canonical order."""

from __future__ import annotations

import threading
from pathlib import Path

import dlib
import numpy as np
from numpy.typing import NDArray

from cunan.domain import BoundingBox, Landmarks5, RGBImage
from cunan.faces.models import dlib_model_path

#: ArcFace's 112x112 reference positions of the canonical five landmarks.
ARCFACE_REFERENCE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: NDArray[np.float64], dst: NDArray[np.float64]) -> NDArray[np.float64]:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Returns a 2x3 matrix. Umeyama's closed form, so it is exact for 2+ points and
    never iterates.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s = src.mean(axis=0)
    mu_d = dst.mean(axis=0)
    s_c = src - mu_s
    d_c = dst - mu_d
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    var_s = (s_c**2).sum() / n
    scale = float(np.trace(np.diag(sig) @ sign) / var_s) if var_s > 0 else 1.0
    out = np.zeros((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def canonical_from_dlib5(points: NDArray[np.float64]) -> Landmarks5:
    """Canonical five landmarks from dlib's 5-point shape (two corners per eye + nose base).

    dlib gives no mouth points, so the mouth corners are placed where the ArcFace mean
    face puts them relative to the eyes and nose; they are estimates, which is why a
    :class:`~cunan.domain.DetectedFace` records where its landmarks came from.
    """
    eye_a = points[0:2].mean(axis=0)
    eye_b = points[2:4].mean(axis=0)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    nose = points[4]
    observed = np.stack([left, right, nose])
    to_image = similarity_transform(ARCFACE_REFERENCE_112[:3].astype(np.float64), observed)
    mouth_ref = np.hstack([ARCFACE_REFERENCE_112[3:].astype(np.float64), np.ones((2, 1))])
    mouth = mouth_ref @ to_image.T
    return np.vstack([observed, mouth]).astype(np.float32)


def _rect(box: BoundingBox) -> dlib.rectangle:
    return dlib.rectangle(round(box.left), round(box.top), round(box.right), round(box.bottom))


class FivePointLandmarker:
    """dlib's 5-point shape predictor (the one dlib's ResNet chips are aligned with)."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._predictor = dlib.shape_predictor(
            str(model_path or dlib_model_path("shape_predictor_5"))
        )
        # dlib objects are not documented as thread-safe; one lock keeps shared use correct.
        self._lock = threading.Lock()

    def shape(self, image: RGBImage, box: BoundingBox) -> dlib.full_object_detection:
        """dlib's native shape object, needed by ``dlib.get_face_chips``."""
        with self._lock:
            return self._predictor(image, _rect(box))

    def points(self, image: RGBImage, box: BoundingBox) -> NDArray[np.float64]:
        """The raw 5 dlib points as a (5, 2) array."""
        shape = self.shape(image, box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def canonical(self, image: RGBImage, box: BoundingBox) -> Landmarks5:
        return canonical_from_dlib5(self.points(image, box))


def shape_from_points(box: BoundingBox, points: NDArray[np.float64]) -> dlib.full_object_detection:
    """Rebuild dlib's shape object from stored 5-point coordinates (integers, as dlib made them)."""
    parts = [dlib.point(round(float(x)), round(float(y))) for x, y in points]
    return dlib.full_object_detection(_rect(box), parts)
