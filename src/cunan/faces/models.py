"""Locations of the model files CunAn uses and of its per-user model cache."""

from __future__ import annotations

import os
from pathlib import Path

from cunan.errors import Unavailable


class ModelNotAvailableError(RuntimeError, Unavailable):
    """A model file or runtime that a component needs is not installed."""


def _face_recognition_models_dir() -> Path:
    try:
        import face_recognition_models
    except ImportError as exc:  # pragma: no cover - a broken install, not a code path
        raise ModelNotAvailableError(
            "the face_recognition_models package is not installed; "
            "run `pip install face_recognition_models`"
        ) from exc
    return Path(face_recognition_models.__file__).resolve().parent / "models"


def dlib_model_path(name: str) -> Path:
    """Path of one dlib model shipped in ``face_recognition_models``.

    The 68-point landmark model in that package is deliberately not offered: its
    training data's licence forbids commercial use.
    """
    allowed = {
        "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
        "resnet_v1": "dlib_face_recognition_resnet_model_v1.dat",
        "mmod": "mmod_human_face_detector.dat",
    }
    if name not in allowed:
        raise ModelNotAvailableError(f"unknown dlib model {name!r}; known: {sorted(allowed)}")
    path = _face_recognition_models_dir() / allowed[name]
    if not path.is_file():
        raise ModelNotAvailableError(f"{path}: model file missing from face_recognition_models")
    return path


def cache_dir() -> Path:
    """Directory for derived model files (e.g. the ONNX form of dlib's ResNet).

    ``CUNAN_CACHE_DIR`` wins, then ``$XDG_CACHE_HOME/cunan``, then ``~/.cache/cunan``.
    """
    explicit = os.environ.get("CUNAN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "cunan"
