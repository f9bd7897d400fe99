"""Roster import throughput: photos per second for LFW photos into a fresh SQLite data dir."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cunan.config import Settings
from cunan.registry.datadir import initialise
from cunan.registry.identity import resident_id_check_char
from cunan.registry.importer import ImportOptions, RowStatus, import_roster

logger = logging.getLogger(__name__)

ADMIN_PASSWORD_ENV = "CUNAN_ADMIN_PASSWORD"
#: Rooms per synthetic house; one tenant per room.
ROOMS_PER_HOUSE = 20


@dataclass(frozen=True, slots=True)
class ImportBenchResult:
    photos: int
    rows: int
    imported: int
    failed: int
    workers: int
    seconds: float
    photos_per_s: float


def lfw_photos(lfw_dir: Path, limit: int) -> list[Path]:
    """The first ``limit`` LFW images sorted by path (``<Name>/<Name>_NNNN.jpg``)."""
    photos = sorted(lfw_dir.glob("*/*.jpg"))[:limit]
    if not photos:
        raise FileNotFoundError(f"{lfw_dir}: no LFW images (<Name>/<Name>_NNNN.jpg) found")
    return photos


def write_synthetic_roster(path: Path, photos: list[Path], lfw_dir: Path) -> None:
    """One tenant per image (an LFW identity with several images becomes several people),
    each with a unique synthetic adult ID number and a room of their own."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                *("姓名", "身份证号", "类别", "门牌地址", "房间", "入住日期", "照片"),
                *("同意采集人", "同意方式", "同意日期"),
            ]
        )
        for i, photo in enumerate(photos):
            writer.writerow(
                [
                    photo.stem,
                    synthetic_id_number(i),
                    "外来租住",
                    f"测试村{i // ROOMS_PER_HOUSE}号",
                    str(i % ROOMS_PER_HOUSE + 1),
                    "2024-03-01",
                    photo.relative_to(lfw_dir).as_posix(),
                    "bench",
                    "纸质",
                    "2024-03-01",
                ]
            )


def synthetic_id_number(i: int) -> str:
    """A valid adult resident ID number, unique for i < 336,000."""
    first = f"1101011990{(i // 28) % 12 + 1:02d}{i % 28 + 1:02d}{(i // 336) % 1000:03d}"
    return first + resident_id_check_char(first)


def run_import_bench(
    lfw_dir: Path, *, limit: int = 5000, workers: int | None = None
) -> ImportBenchResult:
    """Import ``limit`` LFW photos into a fresh data dir made by ``cunan init``'s code path."""
    workers = workers or os.cpu_count() or 1
    photos = lfw_photos(lfw_dir, limit)
    password = os.environ.get(ADMIN_PASSWORD_ENV) or secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="cunan-import-bench-") as tmp:
        root = Path(tmp)
        roster = root / "roster.csv"
        write_synthetic_roster(roster, photos, lfw_dir)
        settings = Settings(data_dir=root / "data")
        registry = initialise(
            root / "data",
            settings,
            admin_username="admin",
            admin_password=password,
            village_name="bench",
        )
        try:
            options = ImportOptions(photos_dir=lfw_dir, create_places=True, workers=workers)
            start = time.perf_counter()
            report = import_roster(roster, registry.service, options)
            seconds = time.perf_counter() - start
        finally:
            registry.close()
    return ImportBenchResult(
        photos=report.photos_checked,
        rows=len(report.roster.rows),
        imported=report.count(RowStatus.IMPORTED),
        failed=report.count(RowStatus.FAILED),
        workers=workers,
        seconds=round(seconds, 2),
        photos_per_s=round(report.photos_checked / seconds, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw-dir", type=Path, required=True, help="lfw-deepfunneled folder")
    parser.add_argument("--limit", type=int, default=5000, help="photos to import")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args(argv)
    result = run_import_bench(args.lfw_dir, limit=args.limit, workers=args.workers)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"{result.photos} photos ({result.imported} imported, {result.failed} rejected) "
            f"in {result.seconds:.1f} s with {result.workers} workers: "
            f"{result.photos_per_s:.1f} photos/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
