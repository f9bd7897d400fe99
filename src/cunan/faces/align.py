"""Face alignment: landmarks to fixed-size chips for the recognition models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import dlib
import numpy as np
from numpy.typing import NDArray

from cunan.domain import Landmarks5, RGBImage
from cunan.faces.landmarks import ARCFACE_REFERENCE_112, similarity_transform

#: dlib's ResNet was trained on 150x150 chips with 25% padding around the 5-point shape.
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25

#: Ranges of the random perturbations of :func:`random_jitters`, the size of dlib's own
#: test-time jitter: a few degrees of roll, a shift of up to 2% of the chip, the face shrunk
#: to between 97% and 100% of its aligned size, and a mirror image half of the time.
JITTER_MAX_ROTATION_DEG = 3.0
JITTER_MAX_SHIFT = 0.02
JITTER_MIN_SCALE = 0.97


@dataclass(frozen=True, slots=True)
class ChipJitter:
    """A small change of the alignment transform, applied before the chip is cut.

    Perturbing the transform (instead of warping the finished chip) keeps every jittered
    chip filled with image pixels, with no black corners a chip warp would bring in.
    ``scale`` is the face's size relative to the aligned chip (< 1: the face is smaller);
    ``shift_x``/``shift_y`` move the crop window by that fraction of its size.
    """

    rotation_deg: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    mirror: bool = False


#: The unperturbed chip: exactly the chip alignment makes without jitter.
NO_JITTER = ChipJitter()


def random_jitters(n: int, seed: int) -> tuple[ChipJitter, ...]:
    """``n`` chip jitters: the unperturbed chip, its mirror image, then ``n - 2`` random ones.

    The same ``seed`` gives the same jitters, so a photo embedded twice gets the same
    descriptor, and the first ``p`` of ``n`` jitters are the ``p`` jitters. Keeping the
    unperturbed chip first makes ``n = 1`` the plain descriptor; ``n = 2`` is the cheapest
    useful jitter, the chip and its mirror image (:data:`MIRROR_JITTERS`).
    """
    if n < 1:
        raise ValueError(f"need at least one jitter, got {n}")
    rng = np.random.default_rng(seed)
    jitters = list(MIRROR_JITTERS[:n])
    for _ in range(n - len(jitters)):
        rotation, scale, shift_x, shift_y, mirror = rng.uniform(0.0, 1.0, size=5)
        jitters.append(
            ChipJitter(
                rotation_deg=float((2 * rotation - 1) * JITTER_MAX_ROTATION_DEG),
                scale=float(JITTER_MIN_SCALE + (1 - JITTER_MIN_SCALE) * scale),
                shift_x=float((2 * shift_x - 1) * JITTER_MAX_SHIFT),
                shift_y=float((2 * shift_y - 1) * JITTER_MAX_SHIFT),
                mirror=bool(mirror < 0.5),
            )
        )
    return tuple(jitters)


#: The cheapest jitter: the chip and its mirror image.
MIRROR_JITTERS = (NO_JITTER, ChipJitter(mirror=True))


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


def dlib_jittered_chips(
    image: RGBImage,
    shape: dlib.full_object_detection,
    jitters: Sequence[ChipJitter],
    *,
    size: int = DLIB_CHIP_SIZE,
    padding: float = DLIB_CHIP_PADDING,
) -> NDArray[np.uint8]:
    """One face's chips under each jitter, shape (len(jitters), size, size, 3).

    dlib cuts every chip (its extraction smooths before shrinking large faces), so the
    unperturbed jitter gives exactly :func:`dlib_chips`' chip.
    """
    if not jitters:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    base = dlib.get_face_chip_details(shape, size=size, padding=padding)
    rect = base.rect
    cx = (rect.left() + rect.right()) / 2.0
    cy = (rect.top() + rect.bottom()) / 2.0
    width = rect.right() - rect.left()
    height = rect.bottom() - rect.top()
    details = []
    for jitter in jitters:
        if (
            jitter.rotation_deg == 0
            and jitter.scale == 1
            and not (jitter.shift_x or jitter.shift_y)
        ):
            # Reuse dlib's own details: rebuilding the rectangle could move it by rounding.
            details.append(base)
            continue
        # A face shown at ``scale`` of its size needs a window 1/scale as large.
        half_w = width / jitter.scale / 2.0
        half_h = height / jitter.scale / 2.0
        # The shift is along the chip's axes, which are the image's turned by the angle.
        cos_a, sin_a = math.cos(base.angle), math.sin(base.angle)
        dx, dy = jitter.shift_x * width, jitter.shift_y * height
        jx = cx + dx * cos_a - dy * sin_a
        jy = cy + dx * sin_a + dy * cos_a
        window = dlib.drectangle(jx - half_w, jy - half_h, jx + half_w, jy + half_h)
        angle = base.angle + math.radians(jitter.rotation_deg)
        details.append(dlib.chip_details(window, dlib.chip_dims(base.rows, base.cols), angle))
    chips = dlib.extract_image_chips(np.ascontiguousarray(image), details)
    out = np.stack([np.asarray(c, dtype=np.uint8) for c in chips])
    for i, jitter in enumerate(jitters):
        if jitter.mirror:
            out[i] = out[i, :, ::-1]
    return out


def _jitter_matrix(jitter: ChipJitter, size: int) -> NDArray[np.float64]:
    """3x3 chip-to-chip similarity of ``jitter`` about the chip centre."""
    centre = size / 2.0
    angle = math.radians(jitter.rotation_deg)
    a = jitter.scale * math.cos(angle)
    b = jitter.scale * math.sin(angle)
    tx = centre - a * centre + b * centre - jitter.shift_x * size * jitter.scale
    ty = centre - b * centre - a * centre - jitter.shift_y * size * jitter.scale
    return np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])


def arcface_jittered_chips(
    image: RGBImage, landmarks: Landmarks5, jitters: Sequence[ChipJitter], *, size: int = 112
) -> NDArray[np.uint8]:
    """ArcFace-convention chips under each jitter; the unperturbed one is :func:`arcface_chip`."""
    if not jitters:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    reference = ARCFACE_REFERENCE_112.astype(np.float64) * (size / 112.0)
    base = np.vstack([similarity_transform(landmarks.astype(np.float64), reference), [0, 0, 1]])
    chips = []
    for jitter in jitters:
        matrix = base if jitter == NO_JITTER else _jitter_matrix(jitter, size) @ base
        chip = cv2.warpAffine(
            image,
            matrix[:2],
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        chips.append(chip[:, ::-1] if jitter.mirror else chip)
    return np.ascontiguousarray(np.stack(chips), dtype=np.uint8)


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
