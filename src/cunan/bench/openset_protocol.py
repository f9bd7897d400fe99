"""Open-set identification protocol on LFW: gallery/probe/stranger split and TPIR at FPIR."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class OpenSetSplit:
    """Rows (into the image list) of gallery templates, known probes and stranger probes."""

    gallery_rows: NDArray[np.int64]
    gallery_names: tuple[str, ...]
    probe_rows: NDArray[np.int64]
    probe_names: tuple[str, ...]
    stranger_rows: NDArray[np.int64]
    stranger_names: tuple[str, ...]

    @property
    def n_identities(self) -> int:
        return len(set(self.gallery_names))


def lfw_open_set_split(
    names: Sequence[str], numbers: Sequence[int], enrol: int = 1
) -> OpenSetSplit:
    """Enrol each person with > ``enrol`` images by their first ``enrol`` images (by number).

    Their other images are known probes; the people with exactly one image are strangers.
    With ``enrol=2`` the people with exactly two images are in neither set.
    """
    if enrol < 1:
        raise ValueError("enrol must be >= 1")
    by_person: dict[str, list[int]] = defaultdict(list)
    for row, name in enumerate(names):
        by_person[name].append(row)
    gallery: list[int] = []
    gallery_names: list[str] = []
    probes: list[int] = []
    probe_names: list[str] = []
    strangers: list[int] = []
    stranger_names: list[str] = []
    for name in sorted(by_person):
        rows = sorted(by_person[name], key=lambda r: numbers[r])
        if len(rows) == 1:
            strangers.append(rows[0])
            stranger_names.append(name)
        elif len(rows) > enrol:
            gallery += rows[:enrol]
            gallery_names += [name] * enrol
            probes += rows[enrol:]
            probe_names += [name] * (len(rows) - enrol)
    return OpenSetSplit(
        gallery_rows=np.asarray(gallery, dtype=np.int64),
        gallery_names=tuple(gallery_names),
        probe_rows=np.asarray(probes, dtype=np.int64),
        probe_names=tuple(probe_names),
        stranger_rows=np.asarray(strangers, dtype=np.int64),
        stranger_names=tuple(stranger_names),
    )


def person_half(name: str) -> int:
    """0 or 1, a fixed pseudo-random half of people (tuning half / reporting half)."""
    return zlib.crc32(name.encode("utf-8")) % 2


def threshold_at_fpir(stranger_scores: NDArray[np.floating], fpir: float) -> float:
    """The lowest threshold (accept ``score >= t``) at which at most ``fpir`` of strangers pass.

    Strangers refused by a hard rule carry ``-inf`` and never pass.
    """
    s = np.sort(np.asarray(stranger_scores, dtype=np.float64))[::-1]
    if len(s) == 0:
        raise ValueError("need stranger scores")
    allowed = int(np.floor(fpir * len(s) + 1e-9))
    if allowed >= len(s):
        return -np.inf
    # Just above the (allowed+1)-th highest stranger score, so that one is refused.
    return float(np.nextafter(s[allowed], np.inf))


def tpir_at_threshold(
    probe_scores: NDArray[np.floating], probe_correct: NDArray[np.bool_], threshold: float
) -> float:
    """Share of known probes both identified as the right person and accepted."""
    accepted = np.asarray(probe_scores) >= threshold
    return float((accepted & np.asarray(probe_correct, dtype=bool)).mean())


def fpir_at_threshold(stranger_scores: NDArray[np.floating], threshold: float) -> float:
    return float((np.asarray(stranger_scores) >= threshold).mean())


def tpir_at_fpir(
    probe_scores: NDArray[np.floating],
    probe_correct: NDArray[np.bool_],
    stranger_scores: NDArray[np.floating],
    fpir: float,
) -> tuple[float, float]:
    """(TPIR, threshold) at the given false-positive identification rate."""
    threshold = threshold_at_fpir(stranger_scores, fpir)
    return tpir_at_threshold(probe_scores, probe_correct, threshold), threshold
