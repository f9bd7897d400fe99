"""Server time per page (dashboard, case list, case page) on a village with many cases.

Usage: python benchmarks/pages.py [--cases 300] [--sightings-per-case 5] [--requests 40] [--json]

Builds a temporary SQLite data dir, stores the sightings (encrypted, as cameras do) and groups
them into cases, then asks for each page ``--requests`` times, one after another, in the
process (FastAPI's TestClient: no network), as a logged-in staff member. Times are wall
clock per request; run it on an otherwise idle machine and note the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from cunan.api.app import create_api
from cunan.app import CunanApp
from cunan.config import Settings
from cunan.pipeline.store import NewSighting, SightingStore
from cunan.registry.datadir import initialise

PASSWORD = "Bench-horse-battery-9"


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(128).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def build(data: Path, cases: int, per_case: int) -> tuple[CunanApp, int]:
    settings = Settings()
    initialise(
        data, settings, admin_username="admin", admin_password=PASSWORD, village_name="桃源村"
    ).close()
    app = CunanApp.open(settings, data)
    store = SightingStore(app.registry.database, app.registry.service.cipher)
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    first_case = 0
    for n in range(cases):
        face = _unit(rng)
        for k in range(per_case):
            noisy = face + 0.02 * _unit(rng)
            stored = store.add(
                NewSighting(
                    camera_id=None,
                    camera_name=f"gate-{n % 4}",
                    track_key=f"b{n}-{k}",
                    started_at=now - timedelta(hours=k * 20 + n % 7),
                    ended_at=now - timedelta(hours=k * 20 + n % 7) + timedelta(seconds=3),
                    decision="unknown",
                    person_id=None,
                    distance=None,
                    score=None,
                    faces_used=3,
                    details={},
                    model_id="dlib_resnet_v1",
                    crop_jpeg=b"\xff\xd8jpeg",
                    embedding=(noisy / np.linalg.norm(noisy)).astype(np.float32),
                )
            )
            outcome = app.cases.handle_sighting(stored.sighting_id)
            if outcome is not None and not first_case:
                first_case = outcome.case_id
    return app, first_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--sightings-per-case", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_CONFIG", "CUNAN_KEY_FILE"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        app, case_id = build(Path(tmp) / "data", args.cases, args.sightings_per_case)
        built_s = time.perf_counter() - started
        try:
            api = create_api(app)
            from cunan.authz import local_principal
            from cunan.storage.enums import UserRole

            api.state.auth.create_user(local_principal("bench"), "staff", PASSWORD, UserRole.STAFF)
            client = TestClient(api, headers={"origin": "http://testserver"})
            login = client.post("/login", data={"username": "staff", "password": PASSWORD})
            assert login.status_code == 200, login.status_code
            results: dict[str, dict[str, float]] = {}
            for label, path in (
                ("dashboard", "/"),
                ("case list", "/cases?status=all"),
                ("case page", f"/cases/{case_id}"),
            ):
                times = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200, (path, answer.status_code)
                times.sort()
                results[label] = {
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                    "max_ms": round(times[-1], 1),
                }
        finally:
            app.close()
    report = {
        "cases": args.cases,
        "sightings": args.cases * args.sightings_per_case,
        "requests_per_page": args.requests,
        "build_s": round(built_s, 1),
        "load_average": os.getloadavg(),
        "pages": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['cases']} cases, {report['sightings']} sightings (built in {built_s:.0f} s), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for label, r in results.items():
        p50, p95, top = r["p50_ms"], r["p95_ms"], r["max_ms"]
        print(f"{label:10s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {top:7.1f} ms")


if __name__ == "__main__":
    main()
