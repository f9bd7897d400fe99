"""The enrolment same-face rule on a synthetic gallery: every template decrypted per check
(the command line's fallback) against the application's live gallery.

Usage: python benchmarks/same_face_lookup.py [--templates 5000] [--checks 20] [--json]

Registers ``--templates`` people with one random 128-d template each in a fresh SQLite data
dir (encrypted as always), then times ``--checks`` same-face look-ups both ways: loading
``KnownFaces`` (decrypt every template) and asking a ``LiveGallery`` built once (what
``cunan serve`` and the API hold anyway). Wall time per check on this machine; the build of
the live gallery is reported apart (it happens once per server start).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cunan.matching.live import LiveGallery
from cunan.registry.consistency import KnownFaces, LiveFaces
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade

MODEL = "dlib_resnet_v1"
DIM = 128


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--templates", type=int, default=5000)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(13)
    with tempfile.TemporaryDirectory() as tmp:
        database = Database.open(sqlite_url(Path(tmp)))
        upgrade(database)
        service = RegistryService(database, FieldCipher(KeyRing.generate()))
        village = service.add_village("基准村")
        started = time.perf_counter()
        for number, vector in enumerate(_unit(rng, args.templates)):
            service.add_person(
                NewPerson(name=f"人{number}", village_id=village),
                consent=ConsentInput(collected_by="基准", collected_at=datetime.now(UTC)),
                templates=[TemplateInput(vector=vector, model_id=MODEL)],
            )
        seed_s = time.perf_counter() - started
        probes = _unit(rng, args.checks)

        started = time.perf_counter()
        for probe in probes:
            KnownFaces.load(service, MODEL, DIM).nearest([probe])
        before_s = (time.perf_counter() - started) / args.checks

        started = time.perf_counter()
        gallery = LiveGallery.load(service, model_id=MODEL, dim=DIM)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        for probe in probes:
            LiveFaces.over(gallery).nearest([probe])
        after_s = (time.perf_counter() - started) / args.checks
        database.dispose()
    result = {
        "templates": args.templates,
        "checks": args.checks,
        "seed_s": round(seed_s, 1),
        "decrypt_all_ms_per_check": round(1000 * before_s, 2),
        "live_gallery_build_ms_once": round(1000 * build_s, 1),
        "live_gallery_ms_per_check": round(1000 * after_s, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
