"""The LFW data set on disk: image listing, identities and the View 2 pairs file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class LfwImage:
    """One LFW image: the person's directory name, its 1-based number and its path."""

    name: str
    number: int
    path: Path


@dataclass(frozen=True, slots=True)
class LfwPair:
    """One pair of View 2: two (name, number) images, whether they show the same person."""

    name_a: str
    number_a: int
    name_b: str
    number_b: int
    same: bool
    fold: int


def list_images(lfw_dir: Path) -> list[LfwImage]:
    """Every ``<Name>/<Name>_NNNN.jpg`` under ``lfw_dir``, sorted by name then number."""
    images = []
    for person_dir in sorted(p for p in lfw_dir.iterdir() if p.is_dir()):
        for path in sorted(person_dir.glob("*.jpg")):
            stem = path.stem
            number_text = stem.rsplit("_", 1)[-1]
            if not number_text.isdigit():
                continue
            images.append(LfwImage(name=person_dir.name, number=int(number_text), path=path))
    if not images:
        raise FileNotFoundError(f"{lfw_dir}: no <Name>/<Name>_NNNN.jpg images found")
    return images


def image_path(lfw_dir: Path, name: str, number: int) -> Path:
    """Path of image ``number`` (1-based) of ``name``, as LFW names its files."""
    return lfw_dir / name / f"{name}_{number:04d}.jpg"


class PairsFormatError(ValueError):
    """The pairs file does not follow LFW's View 2 format."""


def parse_pairs(path: Path) -> list[LfwPair]:
    """Parse LFW's ``pairs.txt``: a ``folds n`` header, then per fold n same and n different pairs.

    Same pairs are ``name i j``, different pairs ``name1 i name2 j`` (tab or space separated).
    """
    lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [fields for fields in lines if fields]
    if not lines or len(lines[0]) != 2 or not all(f.isdigit() for f in lines[0]):
        raise PairsFormatError(f"{path}: first line must be '<folds> <pairs per class>'")
    folds, per_class = int(lines[0][0]), int(lines[0][1])
    body = lines[1:]
    if len(body) != folds * 2 * per_class:
        raise PairsFormatError(
            f"{path}: expected {folds} x 2 x {per_class} = {folds * 2 * per_class} pairs, "
            f"found {len(body)}"
        )
    pairs = []
    for index, fields in enumerate(body):
        fold, within = divmod(index, 2 * per_class)
        same = within < per_class
        try:
            if same:
                if len(fields) != 3:
                    raise ValueError("same pair needs 3 fields")
                name, i, j = fields
                pairs.append(LfwPair(name, int(i), name, int(j), True, fold))
            else:
                if len(fields) != 4:
                    raise ValueError("different pair needs 4 fields")
                name_a, i, name_b, j = fields
                pairs.append(LfwPair(name_a, int(i), name_b, int(j), False, fold))
        except ValueError as exc:
            raise PairsFormatError(f"{path}: pair line {index + 2}: {exc}") from None
    return pairs
