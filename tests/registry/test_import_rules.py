"""Roster import rules that need no face model, on both engines: photo folder guard, checks
the dry run shares with the import, places, and the identity of people without ID numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from cunan.registry.importer import ImportOptions, ImportReport, RowStatus, import_roster
from cunan.registry.service import RegistryService
from cunan.storage.database import Database
from tests.registry.tables import row_counts

HOUSE = "桃源村1号"
OUTSIDE = "outside the photo folder"


@pytest.fixture
def house(service: RegistryService, village: int) -> int:
    return service.add_house(village, HOUSE)


def run(
    service: RegistryService, tmp_path: Path, lines: list[str], **options: object
) -> ImportReport:
    roster = tmp_path / "roster.csv"
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    return import_roster(
        roster,
        service,
        ImportOptions(photos_dir=photos, workers=1, **options),  # type: ignore[arg-type]
    )


def reasons(report: ImportReport) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for p in report.problems:
        out.setdefault(p.row, []).append(p.reason)
    return out


def test_photo_names_never_reach_outside_files(
    service: RegistryService, house: int, tmp_path: Path, database: Database
) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    Image.new("RGB", (64, 64)).save(outside / "face.jpg")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "link.jpg").symlink_to(outside / "face.jpg")
    (photos / "host.jpg").symlink_to("/etc/hostname")
    (photos / "loop.jpg").symlink_to("loop.jpg")  # a symlink loop
    (photos / "folder.jpg").mkdir()
    names = [
        "../secret/face.jpg",  # exists outside, an image
        "../secret/none.jpg",  # does not exist outside
        str(outside / "face.jpg"),  # absolute
        "/etc/passwd",
        "link.jpg",
        "host.jpg",
        "loop.jpg",
        "folder.jpg",
    ]
    lines = ["姓名,类别,照片,同意采集人,同意日期"]
    lines += [f"人{i},访客,{name},网格员 王,2024-03-01" for i, name in enumerate(names)]
    before = row_counts(database)
    report = run(service, tmp_path, lines)
    assert report.photos_checked == 0  # nothing outside was opened, let alone decoded
    assert [o.status for o in report.outcomes] == [RowStatus.FAILED] * len(names)
    got = reasons(report)
    # The same words whether an outside file exists, is an image or not.
    for row, name in zip(range(2, 8), names[:6], strict=True):
        assert got[row] == [f"{name}: {OUTSIDE}"]
    assert got[8] == ["loop.jpg: photo path is a symlink loop (链接循环)"]
    assert got[9] == ["folder.jpg: is a folder, not a photo (是文件夹)"]
    assert not any(str(tmp_path) in r for rs in got.values() for r in rs if "secret/face" not in r)
    assert row_counts(database) == before


def test_symlink_loop_fails_only_its_row(
    service: RegistryService, house: int, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").symlink_to("b.jpg")
    (photos / "b.jpg").symlink_to("a.jpg")
    report = run(
        service,
        tmp_path,
        [
            "姓名,类别,照片,同意采集人,同意日期,非人脸核验",
            "甲,访客,a.jpg,网格员 王,2024-03-01,",
            "乙,访客,,,,身份证核验",
        ],
    )
    assert [o.status for o in report.outcomes] == [RowStatus.FAILED, RowStatus.IMPORTED]
    assert reasons(report) == {2: ["a.jpg: photo path is a symlink loop (链接循环)"]}
