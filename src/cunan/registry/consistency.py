"""Face consistency at enrolment: one person's photos show one face; one face is one person."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cunan.registry.records import Vector
from cunan.registry.service import RegistryService

#: Two templates this close (Euclidean, unit vectors) are the same face: the same photo or
#: the same sitting. Different people came this close in 2 of 718,954 LFW pairs
#: (benchmarks/enrolment_consistency.py, docs/benchmarks.md section 6), so a village of
#: thousands rarely trips it by chance; twins can, hence the override. It does not catch the
#: same person in another photo (the median of LFW same-person pairs is 0.30).
SAME_FACE_DISTANCE = 0.25


def farthest_pair(vectors: list[Vector]) -> tuple[int, int, float] | None:
    """The two most different of one person's templates (indexes and distance)."""
    if len(vectors) < 2:
        return None
    stack = np.vstack(vectors).astype(np.float32)
    distances = np.linalg.norm(stack[:, None, :] - stack[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return int(min(i, j)), int(max(i, j)), float(distances[i, j])


def different_people_problem(
    names: list[str], vectors: list[Vector], max_distance: float
) -> str | None:
    """Why these photos cannot all be one person (farther apart than the gallery would ever
    match), or None."""
    pair = farthest_pair(vectors)
    if pair is None or pair[2] <= max_distance:
        return None
    i, j, distance = pair
    return (
        f"照片不是同一个人 (the photos show different people): {names[i]} and {names[j]} are "
        f"{distance:.2f} apart, more than {max_distance:.2f}; give photos of this person only"
    )


@dataclass(slots=True)
class KnownFaces:
    """Templates of registered people (and of rows imported in this run), to find one face
    registered under a second name before it is stored."""

    dim: int
    _matrix: NDArray[np.float32] = field(init=False)
    _owners: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._matrix = np.empty((256, self.dim), dtype=np.float32)

    @classmethod
    def load(cls, service: RegistryService, model_id: str, dim: int) -> KnownFaces:
        known = cls(dim)
        for batch in service.iter_templates(model_id=model_id):
            for stored in batch:
                known.add(f"person {stored.person_id}", [stored.vector])
        return known

    def __len__(self) -> int:
        return len(self._owners)

    def add(self, owner: str, vectors: list[Vector]) -> None:
        for vector in vectors:
            n = len(self._owners)
            if n == len(self._matrix):
                grown = np.empty((2 * n, self.dim), dtype=np.float32)
                grown[:n] = self._matrix
                self._matrix = grown
            self._matrix[n] = vector
            self._owners.append(owner)

    def nearest(self, vectors: list[Vector]) -> tuple[str, float] | None:
        """The owner of the closest known template to any of ``vectors``, with the distance."""
        if not self._owners or not vectors:
            return None
        known = self._matrix[: len(self._owners)]
        best: tuple[str, float] | None = None
        for vector in vectors:
            distances = np.linalg.norm(known - np.asarray(vector, dtype=np.float32), axis=1)
            k = int(np.argmin(distances))
            if best is None or float(distances[k]) < best[1]:
                best = (self._owners[k], float(distances[k]))
        return best


class TemplateLookup(Protocol):
    """What the same-face rule needs of a live gallery (cunan.matching.live.LiveGallery)."""

    model_id: str
    dim: int

    def nearest_template(self, vectors: NDArray[np.float32]) -> tuple[int, float] | None: ...


class FaceLookup(Protocol):
    """Registered faces (and this run's) the same-face rule looks a new face up in."""

    def add(self, owner: str, vectors: list[Vector]) -> None: ...

    def nearest(self, vectors: list[Vector]) -> tuple[str, float] | None: ...


@dataclass(slots=True)
class LiveFaces:
    """The same-face rule on the application's live gallery (already decrypted, indexed)
    plus the faces of this run's rows not yet written (a dry run writes none), instead of
    decrypting every registered template again (:meth:`KnownFaces.load`)."""

    gallery: TemplateLookup
    run: KnownFaces

    @classmethod
    def over(cls, gallery: TemplateLookup) -> LiveFaces:
        return cls(gallery, KnownFaces(gallery.dim))

    def add(self, owner: str, vectors: list[Vector]) -> None:
        self.run.add(owner, vectors)

    def nearest(self, vectors: list[Vector]) -> tuple[str, float] | None:
        if not vectors:
            return None
        found: list[tuple[str, float]] = []
        registered = self.gallery.nearest_template(np.vstack(vectors).astype(np.float32))
        if registered is not None:
            found.append((f"person {registered[0]}", registered[1]))
        own = self.run.nearest(vectors)
        if own is not None:
            found.append(own)
        return min(found, key=lambda pair: pair[1], default=None)


def known_faces(
    service: RegistryService, model_id: str, dim: int, gallery: TemplateLookup | None
) -> FaceLookup:
    """The live gallery when the application has one of this model (serve, the API), else
    every registered template decrypted once (plain command-line use)."""
    if gallery is not None and gallery.model_id == model_id and gallery.dim == dim:
        return LiveFaces.over(gallery)
    return KnownFaces.load(service, model_id, dim)


def same_face_problem(match: tuple[str, float] | None, threshold: float) -> str | None:
    if match is None or match[1] > threshold:
        return None
    owner, distance = match
    return (
        f"人脸重复 (same face as {owner}, distance {distance:.2f}): one person is "
        "registered once; if they really are different people (twins), use --allow-same-face"
    )
