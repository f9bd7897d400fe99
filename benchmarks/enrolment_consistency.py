"""How often the enrolment face-consistency thresholds trip on LFW: different and same people.

Usage: python benchmarks/enrolment_consistency.py [--lfw-dir DIR] [--faces 1200] [--json]

Embeds up to three images of every third LFW person (sorted by name) with the default engine
and counts, over all pairs, how many different-person pairs fall within each threshold (a
"same face" refusal by chance) and how many same-person pairs lie beyond it (a "different
people" refusal of genuine photos). LFW pairs are of different days and ages; enrolment
photos of one sitting are closer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cunan.faces.engine import EngineConfig, EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THRESHOLDS = (0.25, 0.3, 0.43, 0.55)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw-dir", type=Path, default=DATA / "lfw" / "lfw-deepfunneled")
    parser.add_argument("--faces", type=int, default=1200, help="stop after this many faces")
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args()
    engine = FaceEngine.from_config(EngineConfig())
    vectors, owners = [], []
    people = sorted(p for p in args.lfw_dir.iterdir() if p.is_dir())
    for person in people[::3]:
        for path in sorted(person.glob("*.jpg"))[:3]:
            try:
                face = engine.enrolment_face(load_image(path))
            except EnrolmentPhotoError:
                continue
            vectors.append(face.embedding)
            owners.append(person.name)
        if len(vectors) >= args.faces:
            break
    stack = np.vstack(vectors)
    names = np.array(owners)
    upper = np.triu_indices(len(stack), 1)
    distances = np.linalg.norm(stack[upper[0]] - stack[upper[1]], axis=1)
    same = names[upper[0]] == names[upper[1]]
    result = {
        "faces": len(stack),
        "different_pairs": int((~same).sum()),
        "same_pairs": int(same.sum()),
        "different_within": {t: int((distances[~same] <= t).sum()) for t in THRESHOLDS},
        "same_beyond": {t: int((distances[same] > t).sum()) for t in THRESHOLDS},
        "same_median": round(float(np.median(distances[same])), 3),
    }
    for t in THRESHOLDS:
        print(
            f"{t:.2f}: different-person pairs within {result['different_within'][t]} of "
            f"{result['different_pairs']}; same-person pairs beyond {result['same_beyond'][t]} "
            f"of {result['same_pairs']}"
        )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
