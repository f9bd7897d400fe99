"""Degraded strangers: LFW faces shrunk to 40-60 px, grey and blurred, against real galleries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from cunan.bench.east_asian import GROUPS, Population, Rule, _draw_seed
from cunan.bench.lfw_embeddings import LfwEmbeddings, build_engine
from cunan.domain import RGBImage
from cunan.faces.engine import FaceEngine, central_face
from cunan.faces.imageio import load_image
from cunan.faces.quality import SIGHTING_THRESHOLDS

#: Face widths (pixels) the degraded images are scaled to, drawn uniformly per image.
FACE_WIDTH = (40.0, 60.0)
#: Gaussian blur radius (pixels) after scaling.
BLUR_RADIUS = 1.0


def degrade(image: RGBImage, face_width: float, target_width: float) -> RGBImage:
    """The image scaled so its face is ``target_width`` px wide, greyscale, blurred."""
    scale = target_width / max(face_width, 1.0)
    pil = Image.fromarray(np.ascontiguousarray(image))
    size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
    pil = pil.resize(size, Image.Resampling.BILINEAR).convert("L").convert("RGB")
    pil = pil.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    return np.asarray(pil, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class DegradedFaces:
    """Embeddings of degraded images (rows of the LFW list); NaN rows: no face found."""

    rows: NDArray[np.int64]
    vectors: NDArray[np.float32]
    found: NDArray[np.bool_]
    quality_ok: NDArray[np.bool_]
    widths: NDArray[np.float32]


def embed_degraded(
    lfw_dir: Path,
    emb: LfwEmbeddings,
    rows: NDArray[np.int64],
    *,
    seed: int = 0,
    face_width: tuple[float, float] = FACE_WIDTH,
    engine: FaceEngine | None = None,
) -> DegradedFaces:
    """Degrade each image, then detect, judge quality and embed as a camera face would be.

    ``engine`` must embed with the model of ``emb`` (another recognition model: pass its
    engine, e.g. ``build_engine("auto", onnx_model=...)``)."""
    engine = engine or build_engine("auto")
    rng = np.random.default_rng(seed)
    vectors = np.full((len(rows), emb.vectors.shape[1]), np.nan, dtype=np.float32)
    found = np.zeros(len(rows), dtype=bool)
    quality_ok = np.zeros(len(rows), dtype=bool)
    widths = rng.uniform(*face_width, size=len(rows)).astype(np.float32)
    for i, row in enumerate(rows.tolist()):
        name, number = emb.names[row], int(emb.numbers[row])
        image = load_image(lfw_dir / name / f"{name}_{number:04d}.jpg")
        box = emb.boxes[row]
        small = degrade(image, float(box[2] - box[0]), float(widths[i]))
        faces = engine.detect(small)
        face = central_face(faces, small.shape[1], small.shape[0])
        if face is None:
            continue
        found[i] = True
        quality_ok[i] = engine.quality(small, face, SIGHTING_THRESHOLDS).passed
        vectors[i] = engine.embed_faces(small, [face])[0]
    return DegradedFaces(rows, vectors, found, quality_ok, widths)


@dataclass(frozen=True, slots=True)
class DegradedFigures:
    """Share of degraded strangers named as someone, per gallery group and size."""

    gallery: str
    size: int
    draws: int
    strangers: int
    found: int
    passed_quality: int
    named_any: float
    named_passing_quality: float
    #: Strangers left undecided by the judging gate (no face found, or too poor to judge).
    undecided: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "gallery": self.gallery,
            "size": self.size,
            "draws": self.draws,
            "strangers": self.strangers,
            "faces_found": self.found,
            "faces_passing_quality": self.passed_quality,
            "named_of_all_strangers": round(self.named_any, 4),
            "named_after_quality_gate": round(self.named_passing_quality, 4),
            "undecided_by_quality_gate": round(self.undecided, 4),
        }


def degraded_figures(
    pop: Population,
    rule: Rule,
    degraded: DegradedFaces,
    group: str,
    size: int,
    half: int,
    *,
    draws: int = 20,
) -> DegradedFigures:
    """Galleries of ``size`` people of ``group`` (plain first images) vs degraded strangers.

    The strangers are the degraded images of people not in the gallery. "Named" counts a
    face decided known; the quality gate (the pipeline's sighting thresholds) leaves a
    failing face undecided, never named. Shares are of all degraded strangers, mean over
    the draws.
    """
    people = pop.by_person(pop.rows(group, half))
    eligible = sorted(n for n, rows in people.items() if len(rows) >= 2)
    size = len(eligible) if size == 0 or size > len(eligible) else size
    runs = 1 if size == len(eligible) else draws
    named_any, named_ok, undecided = [], [], []
    count = 0
    for draw in range(runs):
        rng = np.random.default_rng(_draw_seed(group, size, draw))
        chosen = sorted(rng.choice(eligible, size=size, replace=False).tolist())
        decide = rule(pop.vectors[[people[n][0] for n in chosen]], chosen)
        keep = np.asarray([pop.names[r] not in set(chosen) for r in degraded.rows.tolist()])
        usable = keep & degraded.found
        known = np.zeros(len(degraded.rows), dtype=bool)
        if usable.any():
            _, score = decide(degraded.vectors[usable])
            known[usable] = score >= 0
        count = int(keep.sum())
        named_any.append(float(known[keep].mean()))
        named_ok.append(float((known & degraded.quality_ok)[keep].mean()))
        undecided.append(float((~degraded.quality_ok)[keep].mean()))
    return DegradedFigures(
        gallery=f"{group}/half_{'AB'[half]}",
        size=size,
        draws=runs,
        strangers=count,
        found=int(degraded.found.sum()),
        passed_quality=int(degraded.quality_ok.sum()),
        named_any=float(np.mean(named_any)),
        named_passing_quality=float(np.mean(named_ok)),
        undecided=float(np.mean(undecided)),
    )


def stranger_rows(pop: Population, half: int, per_group: int, seed: int = 0) -> NDArray[np.int64]:
    """One image of up to ``per_group`` people of each group of ``half`` (seeded)."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for group in GROUPS:
        people = pop.by_person(pop.rows(group, half))
        names = sorted(people)
        take = rng.choice(len(names), size=min(per_group, len(names)), replace=False)
        out += [people[names[k]][0] for k in sorted(take.tolist())]
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class DegradedResidents:
    """Degraded photos of enrolled people: named right, named as someone else, or neither."""

    gallery: str
    size: int
    draws: int
    probes: int
    named_right: float
    named_wrong: float
    named_right_passing_quality: float
    #: Named as someone else although the face passed the judging gate.
    named_wrong_passing_quality: float = 0.0
    #: Left undecided by the judging gate (no face found, or too poor to judge): no
    #: "seen" credit, no case; neither named nor decided unknown.
    undecided: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "gallery": self.gallery,
            "size": self.size,
            "draws": self.draws,
            "probes": self.probes,
            "named_right": round(self.named_right, 4),
            "named_as_someone_else": round(self.named_wrong, 4),
            "named_right_after_quality_gate": round(self.named_right_passing_quality, 4),
            "named_as_someone_else_after_quality_gate": round(self.named_wrong_passing_quality, 4),
            "undecided_by_quality_gate": round(self.undecided, 4),
            "unknown_after_quality_gate": round(
                1.0
                - self.undecided
                - self.named_right_passing_quality
                - self.named_wrong_passing_quality,
                4,
            ),
        }


def resident_rows(pop: Population, half: int, group: str) -> NDArray[np.int64]:
    """The second image of every person of ``group`` in ``half`` with two or more."""
    people = pop.by_person(pop.rows(group, half))
    return np.asarray([rows[1] for rows in people.values() if len(rows) >= 2], dtype=np.int64)


def degraded_residents(
    pop: Population,
    rule: Rule,
    degraded: DegradedFaces,
    group: str,
    size: int,
    half: int,
    *,
    draws: int = 20,
) -> DegradedResidents:
    """Galleries as in :func:`degraded_figures`; probes: degraded photos of enrolled people."""
    people = pop.by_person(pop.rows(group, half))
    eligible = sorted(n for n, rows in people.items() if len(rows) >= 2)
    size = len(eligible) if size == 0 or size > len(eligible) else size
    runs = 1 if size == len(eligible) else draws
    right, wrong, right_ok, wrong_ok, undecided = [], [], [], [], []
    count = 0
    for draw in range(runs):
        rng = np.random.default_rng(_draw_seed(group, size, draw))
        chosen = sorted(rng.choice(eligible, size=size, replace=False).tolist())
        decide = rule(pop.vectors[[people[n][0] for n in chosen]], chosen)
        names = [pop.names[r] for r in degraded.rows.tolist()]
        mine = np.asarray([n in set(chosen) for n in names])
        usable = mine & degraded.found
        best = np.full(len(names), -1, dtype=np.int64)
        known = np.zeros(len(names), dtype=bool)
        if usable.any():
            b, score = decide(degraded.vectors[usable])
            best[usable], known[usable] = b, score >= 0
        truth = np.asarray([chosen.index(n) if n in chosen else -2 for n in names])
        correct = known & (best == truth)
        count = int(mine.sum())
        right.append(float(correct[mine].mean()))
        wrong.append(float((known & ~correct)[mine].mean()))
        right_ok.append(float((correct & degraded.quality_ok)[mine].mean()))
        wrong_ok.append(float((known & ~correct & degraded.quality_ok)[mine].mean()))
        undecided.append(float((~degraded.quality_ok)[mine].mean()))
    return DegradedResidents(
        gallery=f"{group}/half_{'AB'[half]}",
        size=size,
        draws=runs,
        probes=count,
        named_right=float(np.mean(right)),
        named_wrong=float(np.mean(wrong)),
        named_right_passing_quality=float(np.mean(right_ok)),
        named_wrong_passing_quality=float(np.mean(wrong_ok)),
        undecided=float(np.mean(undecided)),
    )
