"""What the hardening checks cost as a village grows: opening a data dir, and people add's
quick check of the templates table (SQLite).

Usage: python benchmarks/integrity_check.py [--people 2000] [--templates-per-person 5]
       [--repeat 5] [--json]

Builds a temporary data dir with ``people x templates-per-person`` random templates, then
times (CPU and wall, median of ``--repeat``): ``open_registry`` (migration check, key binding,
camera-password sealing, file-mode check), ``Database.damage("face_templates")`` (what
``cunan people add`` runs) and ``Database.damage()`` (what ``cunan audit verify`` adds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

try:
    from cunan.config import Settings
except ImportError:  # running from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cunan.config import Settings

from cunan.registry.datadir import initialise, open_registry
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput

MODEL = "dlib_resnet_v1"


def _timed(action: Callable[[], object], repeat: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "wall_ms": round(statistics.median(walls) * 1000, 2),
        "cpu_ms": round(statistics.median(cpus) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--templates-per-person", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="cunan-bench-integrity-") as tmp:
        data = Path(tmp) / "data"
        registry = initialise(
            data,
            settings,
            admin_username="admin",
            admin_password="Correct-horse-battery-9",
            village_name="bench",
        )
        service = registry.service
        village = service.default_village_id()
        consent = ConsentInput(collected_by="bench", collected_at=datetime.now(UTC))
        for n in range(args.people):
            vectors = rng.standard_normal((args.templates_per_person, 128)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            service.add_person(
                NewPerson(name=f"P{n}", village_id=village),
                consent=consent,
                templates=[TemplateInput(vector=v, model_id=MODEL) for v in vectors],
            )
        database = registry.database
        size_mb = (data / "cunan.db").stat().st_size / 1e6
        results = {
            "templates": service.count_templates(),
            "db_mb": round(size_mb, 1),
            "open_registry": _timed(lambda: open_registry(data, settings).close(), args.repeat),
            "quick_check_templates": _timed(lambda: database.damage("face_templates"), args.repeat),
            "quick_check_all": _timed(database.damage, args.repeat),
            "load_average": [round(v, 2) for v in os.getloadavg()],
        }
        registry.close()
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
