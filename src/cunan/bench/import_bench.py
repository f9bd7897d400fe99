"""Roster import throughput: photos per second (LFW, or 12 MP phone-size JPEGs made from LFW)."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cunan.config import Settings
from cunan.registry.datadir import initialise
from cunan.registry.enrolment import ENROLMENT_DECODE_PIXELS
from cunan.registry.identity import resident_id_check_char
from cunan.registry.importer import ImportOptions, RowStatus, import_roster

logger = logging.getLogger(__name__)

ADMIN_PASSWORD_ENV = "CUNAN_ADMIN_PASSWORD"
#: Rooms per synthetic house; one tenant per room.
ROOMS_PER_HOUSE = 20


#: A 12-megapixel phone photo (4:3).
PHONE_SIZE = (4000, 3000)


@dataclass(frozen=True, slots=True)
class ImportBenchResult:
    photos: int
    rows: int
    imported: int
    failed: int
    workers: int
    seconds: float
    photos_per_s: float
    #: "lfw" (250x250 as published) or "phone" (12 MP JPEGs made from them at run time).
    kind: str = "lfw"
    #: Pixels photos were checked at (None: full size).
    decode_pixels: int | None = None
    #: CPU seconds of the import (this process and its workers, user + system), and the
    #: rate two fully available cores would give: photos / (cpu_seconds / 2). Under load
    #: from other jobs the wall-clock rate says little; this one does not depend on it.
    cpu_seconds: float = 0.0
    photos_per_s_2_cores_cpu: float = 0.0
    #: Largest resident memory of one photo-checking worker process, in MB.
    worker_max_rss_mb: float = 0.0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)


def make_phone_photos(photos: list[Path], lfw_dir: Path, out: Path) -> list[Path]:
    """12 MP JPEGs (4000x3000, quality 90) made by upscaling each LFW image, face centred
    and about 1,300 px wide as in a phone portrait; written at run time, never kept."""
    from PIL import Image

    width, height = PHONE_SIZE
    made: list[Path] = []
    for photo in photos:
        target = out / photo.relative_to(lfw_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(photo) as img:
            rgb = img.convert("RGB")
            square = rgb.resize((height, height), Image.Resampling.BICUBIC)
            # The background: the photo's own edge colour, stretched (cheap, no hard seam).
            canvas = rgb.resize((8, 6), Image.Resampling.BOX).resize(
                PHONE_SIZE, Image.Resampling.BILINEAR
            )
            canvas.paste(square, ((width - height) // 2, 0))
            canvas.save(target, "JPEG", quality=90)
        made.append(target)
    return made


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
    lfw_dir: Path,
    *,
    limit: int = 5000,
    workers: int | None = None,
    phone: bool = False,
    decode_pixels: int | None = ENROLMENT_DECODE_PIXELS,
) -> ImportBenchResult:
    """Import ``limit`` LFW photos (``phone``: as 12 MP JPEGs) into a fresh data dir made by
    ``cunan init``'s code path. Making the phone photos is not timed."""
    workers = workers or os.cpu_count() or 1
    photos = lfw_photos(lfw_dir, limit)
    password = os.environ.get(ADMIN_PASSWORD_ENV) or secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="cunan-import-bench-") as tmp:
        root = Path(tmp)
        photo_dir = lfw_dir
        if phone:
            photo_dir = root / "phone"
            photos = make_phone_photos(photos, lfw_dir, photo_dir)
        roster = root / "roster.csv"
        write_synthetic_roster(roster, photos, photo_dir)
        settings = Settings(data_dir=root / "data")
        registry = initialise(
            root / "data",
            settings,
            admin_username="admin",
            admin_password=password,
            village_name="bench",
        )
        try:
            options = ImportOptions(
                photos_dir=photo_dir,
                create_places=True,
                workers=workers,
                decode_pixels=decode_pixels,
            )
            cpu_before = _cpu_seconds()
            start = time.perf_counter()
            report = import_roster(roster, registry.service, options)
            seconds = time.perf_counter() - start
            cpu = _cpu_seconds() - cpu_before
        finally:
            registry.close()
    # ru_maxrss of children: the largest worker (KiB on Linux). With workers=1 the check
    # runs in this process, whose own peak is reported instead.
    usage = resource.RUSAGE_CHILDREN if workers > 1 else resource.RUSAGE_SELF
    return ImportBenchResult(
        photos=report.photos_checked,
        rows=len(report.roster.rows),
        imported=report.count(RowStatus.IMPORTED),
        failed=report.count(RowStatus.FAILED),
        workers=workers,
        seconds=round(seconds, 2),
        photos_per_s=round(report.photos_checked / seconds, 1),
        kind="phone" if phone else "lfw",
        decode_pixels=decode_pixels,
        cpu_seconds=round(cpu, 2),
        photos_per_s_2_cores_cpu=round(report.photos_checked / (cpu / 2), 1) if cpu else 0.0,
        worker_max_rss_mb=round(resource.getrusage(usage).ru_maxrss / 1024, 1),
        load_average=os.getloadavg(),
    )


def _cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfw-dir", type=Path, required=True, help="lfw-deepfunneled folder")
    parser.add_argument("--limit", type=int, default=5000, help="photos to import")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument(
        "--phone",
        action="store_true",
        help="import 12 MP JPEGs made from the LFW images at run time (phone photos)",
    )
    parser.add_argument(
        "--full-decode",
        action="store_true",
        help="check photos at full size (the code before reduced decoding), for comparison",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args(argv)
    result = run_import_bench(
        args.lfw_dir,
        limit=args.limit,
        workers=args.workers,
        phone=args.phone,
        decode_pixels=None if args.full_decode else ENROLMENT_DECODE_PIXELS,
    )
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"{result.photos} photos ({result.imported} imported, {result.failed} rejected) "
            f"in {result.seconds:.1f} s with {result.workers} workers: "
            f"{result.photos_per_s:.1f} photos/s; {result.cpu_seconds:.1f} CPU s = "
            f"{result.photos_per_s_2_cores_cpu:.1f} photos/s on 2 free cores ({result.kind} "
            "photos, worker peak "
            f"{result.worker_max_rss_mb:.0f} MB, load {result.load_average[0]:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
