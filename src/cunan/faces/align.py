"""Face alignment: landmarks to fixed-size chips for the recognition models."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import dlib
import numpy as np
from numpy.typing import NDArray

from cunan.domain import Landmarks5, RGBImage
from cunan.faces.landmarks import ARCFACE_REFERENCE_112, similarity_transform

#: dlib's ResNet was trained on 150x150 chips with 25% padding around the 5-point shape.
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25


def dlib_chips(
    image: RGBImage,
    shapes: Sequence[dlib.full_object_detection],
    *,
    size: int = DLIB_CHIP_SIZE,
    padding: float = DLIB_CHIP_PADDING,
) -> NDArray[np.uint8]:
    """Chips as dlib's own ``compute_face_descriptor`` makes them, shape (n, size, size, 3)."""
    if not shapes:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    shape_list = dlib.full_object_detections()
    for shape in shapes:
        shape_list.append(shape)
    chips = dlib.get_face_chips(np.ascontiguousarray(image), shape_list, size=size, padding=padding)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in chips])


def arcface_chip(image: RGBImage, landmarks: Landmarks5, *, size: int = 112) -> NDArray[np.uint8]:
    """The ArcFace-convention chip: a similarity warp of the five landmarks onto the reference."""
    reference = ARCFACE_REFERENCE_112.astype(np.float64) * (size / 112.0)
    matrix = similarity_transform(landmarks.astype(np.float64), reference)
    chip = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.asarray(chip, dtype=np.uint8)


def grey_face_crop(image: RGBImage, landmarks: Landmarks5, *, size: int = 64) -> NDArray[np.uint8]:
    """A small grey crop of the inner face at a canonical scale, for quality measures.

    Large faces are scaled down and small ones up, so blur is judged at one scale and a
    tiny, upscaled face honestly reads as unsharp.
    """
    chip = arcface_chip(image, landmarks, size=size)
    return np.asarray(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
