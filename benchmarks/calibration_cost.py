"""Cost of one adaptive calibration of the live gallery, by gallery size (one thread).

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/calibration_cost.py
[--sizes 1000,20000,100000] [--json]

Random unit vectors, one template per person; the calibration scores up to 1,000 enrolled
people as stand-in strangers (cunan.matching.adaptive). Prints CPU and wall seconds with
the load average, since other jobs may share the machine.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cunan.bench.lfw_embeddings import machine_load
from cunan.matching.live import LiveGallery
from cunan.matching.openset import AdaptiveConfig, OpenSetConfig


def measure(people: int, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((people, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = OpenSetConfig(adaptive=AdaptiveConfig())
    live = LiveGallery(model_id="dlib_resnet_v1", dim=128, config=config)
    live._deferred = True  # load in one go, calibrate once below, as LiveGallery.load does
    live._add_many([(i, i, vectors[i]) for i in range(people)])
    live._deferred = False
    cpu, wall = time.process_time(), time.perf_counter()
    calibration = live.recalibrate(force=True)
    assert calibration is not None
    return {
        "people": people,
        "stand_ins": calibration.stand_ins,
        "cpu_s": round(time.process_time() - cpu, 3),
        "wall_s": round(time.perf_counter() - wall, 3),
        "load": machine_load(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,20000,100000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [measure(int(n)) for n in args.sizes.split(",")]
    for row in rows:
        if not args.json:
            print(row)
    if args.json:
        print(json.dumps({"benchmark": "calibration_cost", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
