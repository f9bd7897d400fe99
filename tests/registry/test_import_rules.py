"""Roster import rules that need no face model, on both engines: photo folder guard, checks
the dry run shares with the import, places, and the identity of people without ID numbers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from cunan.registry.errors import RoomCapacityError
from cunan.registry.identity import resident_id_check_char
from cunan.registry.importer import ImportOptions, ImportReport, RowStatus, import_roster
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.conftest import require_data
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


def village_of(service: RegistryService) -> int:
    return service.default_village_id()


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


TENANTS = "姓名,类别,门牌地址,房间,入住日期,非人脸核验"


def test_dry_run_and_import_agree_on_room_capacity(
    service: RegistryService, house: int, tmp_path: Path, database: Database
) -> None:
    full = service.add_room(house, "101", capacity=1)
    old = service.add_person(
        NewPerson(name="老租客", village_id=village_of(service), non_face_note="x")
    )
    service.add_tenancy(old, full, move_in=date(2024, 1, 1), reported_by="网格员")
    service.add_room(house, "102", capacity=1)
    lines = [
        TENANTS,
        f"甲,外来租住,{HOUSE},101,2024-03-01,身份证核验",  # the room is full
        f"乙,外来租住,{HOUSE},102,2024-03-01,身份证核验",  # takes the last place
        f"丙,外来租住,{HOUSE},102,2024-03-01,身份证核验",  # ... so this one does not fit
    ]
    dry = run(service, tmp_path, lines, dry_run=True)
    assert [o.status for o in dry.outcomes] == [RowStatus.FAILED, RowStatus.VALID, RowStatus.FAILED]
    real = run(service, tmp_path, lines)
    assert [o.status for o in real.outcomes] == [
        RowStatus.FAILED,
        RowStatus.IMPORTED,
        RowStatus.FAILED,
    ]
    assert dry.problems == real.problems
    assert [(p.row, p.column) for p in real.problems] == [(2, "房间"), (4, "房间")]
    assert real.problems[0].reason.startswith("房间已满 (room full): room '101'")


def test_rooms_an_import_creates_have_room_for_later_tenants(
    service: RegistryService, village: int, tmp_path: Path
) -> None:
    lines = [
        TENANTS + ",房间容量",
        "甲,外来租住,新村1号,1,2024-03-01,身份证核验,",
        "乙,外来租住,新村1号,2,2024-03-01,身份证核验,2",
    ]
    report = run(service, tmp_path, lines, create_places=True)
    assert report.problems == []
    people = {p.name: p.id for p in service.list_people()}
    room_1 = service.tenancies_of(people["甲"])[0].room_id
    room_2 = service.tenancies_of(people["乙"])[0].room_id
    # A room sized to the file's head count (1) would refuse the next tenant.
    for n in range(3):
        pid = service.add_person(NewPerson(name=f"后来{n}", village_id=village, non_face_note="x"))
        service.add_tenancy(pid, room_1, move_in=date(2024, 5, 1), reported_by="网格员")
    late = service.add_person(NewPerson(name="满员", village_id=village, non_face_note="x"))
    with pytest.raises(RoomCapacityError):
        service.add_tenancy(late, room_1, move_in=date(2024, 5, 1), reported_by="网格员")
    service.add_tenancy(late, room_2, move_in=date(2024, 5, 1), reported_by="网格员")
    with pytest.raises(RoomCapacityError):  # the roster said 2
        service.add_tenancy(
            service.add_person(NewPerson(name="第三", village_id=village, non_face_note="x")),
            room_2,
            move_in=date(2024, 5, 1),
            reported_by="网格员",
        )


def test_a_house_created_by_a_resident_row_gets_its_landlord(
    service: RegistryService, village: int, tmp_path: Path, database: Database
) -> None:
    service.add_house(village, "旧村1号")  # registered before, without a landlord
    lines = [
        "姓名,类别,门牌地址,户,房间,入住日期,房东,非人脸核验",
        "户主,户籍,新村2号,王家,,,,身份证核验",  # creates the house, names no landlord
        "租客,外来租住,新村2号,,201,2024-03-01,王房东,身份证核验",
        "转租,外来租住,旧村1号,,1,2024-03-01,二房东,身份证核验",
    ]
    assert run(service, tmp_path, lines, create_places=True).problems == []
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT h.address, l.name FROM houses h "
                "LEFT JOIN landlords l ON l.id = h.landlord_id"
            )
        ).all()
    # The house the import created gets its landlord; a registered house is not changed
    # (a tenancy's landlord may be a sub-landlord).
    assert dict(tuple(r) for r in rows) == {"新村2号": "王房东", "旧村1号": None}
    tenant = next(p.id for p in service.list_people() if p.name == "租客")
    assert service.tenancies_of(tenant)[0].landlord_id is not None


ROSTER_WITHOUT_IDS = [
    "姓名,类别,门牌地址,房间,户,入住日期,非人脸核验",
    *[f"租客{n},外来租住,{HOUSE},{n},,2024-03-01,身份证核验" for n in range(1, 6)],
    f"户主,户籍,{HOUSE},,李家,,身份证核验",
    "访客甲,访客,,,,,身份证核验",
    f"住户乙,户籍,{HOUSE},,,,身份证核验",  # a house but no room or household: name alone
]


def test_an_import_that_raced_another_adds_nobody_twice(
    service: RegistryService, house: int, tmp_path: Path, database: Database
) -> None:
    from cunan.registry import importer
    from cunan.registry.places import VillageDirectory
    from cunan.registry.roster import read_roster

    roster_path = tmp_path / "roster.csv"
    roster_path.write_text("\n".join(ROSTER_WITHOUT_IDS) + "\n", encoding="utf-8")
    (tmp_path / "photos").mkdir()
    opts = ImportOptions(photos_dir=tmp_path / "photos", workers=1, create_places=True)
    village_id = service.default_village_id()
    # Run A reads the registry, then run B imports the whole file, then A writes: A's
    # snapshot is stale, which is what two concurrent runs see.
    stale = VillageDirectory.load(service, village_id)
    first = import_roster(roster_path, service, opts)
    assert first.count(RowStatus.IMPORTED) == 8
    roster = read_roster(roster_path)
    second = importer._import_rows(
        roster, importer.ImportReport(roster=roster), service, stale, opts, None
    )
    assert second.problems == []
    assert [o.status for o in second.outcomes] == [RowStatus.UNCHANGED] * 8
    assert row_counts(database)["people"] == 8
    # A re-run with a fresh snapshot finds them all too (the identity rule is the same).
    assert import_roster(roster_path, service, opts).count(RowStatus.UNCHANGED) == 8


def test_concurrent_imports_with_and_without_id_numbers(
    service: RegistryService,
    house: int,
    tmp_path: Path,
    database: Database,
    db_url: str,
    keyring: KeyRing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from cunan.registry import importer
    from cunan.security.cipher import FieldCipher

    # Both runs read the registry before either writes anything: each one's snapshot is
    # missing every person the other adds, every time (left to the thread scheduler, one
    # run often finished before the other started, and the test passed without the fix).
    # The real load runs; the barrier only holds each run after it.
    both_loaded = threading.Barrier(2, timeout=120)
    load = importer.VillageDirectory.load

    def load_then_wait(service: RegistryService, village_id: int) -> object:
        directory = load(service, village_id)
        both_loaded.wait()
        return directory

    monkeypatch.setattr(importer.VillageDirectory, "load", load_then_wait)

    lines = ["姓名,身份证号,类别,门牌地址,房间,入住日期,非人脸核验"]
    for n in range(1, 31):
        first = f"11010119900307{n:03d}"
        number = first + resident_id_check_char(first) if n % 2 else ""
        lines.append(f"人{n},{number},外来租住,新村{n % 3}号,{n},2024-03-01,身份证核验")
    roster = tmp_path / "roster.csv"
    roster.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "photos").mkdir()

    def one_run(_: int) -> ImportReport:
        # Each run has its own connection pool, like a second `cunan registry import`.
        db = Database.open(db_url, connect_timeout_s=3)
        try:
            other = RegistryService(db, FieldCipher(keyring))
            options = ImportOptions(photos_dir=tmp_path / "photos", workers=1, create_places=True)
            return import_roster(roster, other, options)
        finally:
            db.dispose()

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(one_run, range(2)))
    for report in reports:
        assert report.problems == [] and report.count(RowStatus.FAILED) == 0
    assert sum(r.count(RowStatus.IMPORTED) for r in reports) == 30
    assert row_counts(database)["people"] == 30
    with database.engine.connect() as conn:
        houses = conn.execute(text("SELECT count(*) FROM houses")).scalar_one()
    assert houses == 4  # 桃源村1号 and 新村0-2号, each once


def test_a_tenant_who_moved_out_is_still_recognised(
    service: RegistryService, house: int, tmp_path: Path, database: Database
) -> None:
    lines = [TENANTS, f"甲,外来租住,{HOUSE},101,2024-03-01,身份证核验"]
    first = run(service, tmp_path, lines, create_places=True)
    [tenancy] = service.tenancies_of(first.outcomes[0].person_id or 0)
    service.record_move_out(tenancy.id, move_out=date(2024, 9, 1), reported_by="房东")
    again = run(service, tmp_path, lines, create_places=True)
    assert [o.status for o in again.outcomes] == [RowStatus.UNCHANGED]
    assert row_counts(database)["people"] == 1


def test_problem_report_cells_are_never_formulas(
    service: RegistryService, house: int, tmp_path: Path
) -> None:
    import csv

    from cunan.registry.importer import write_problem_report

    lines = [
        "姓名,类别,照片,同意采集人,同意日期,=备注",
        "甲,访客,=HYPERLINK(x).jpg,网格员 王,2024-03-01,",
    ]
    report = run(service, tmp_path, lines)
    target = tmp_path / "problems.csv"
    write_problem_report(report, target)
    rows = list(csv.reader(target.open(encoding="utf-8-sig", newline="")))
    assert rows[1] == ["2", "照片", "'=HYPERLINK(x).jpg: missing photo (not found)"]


def test_dry_run_refuses_overlong_fields_bad_ids_and_implausible_consent_dates(
    service: RegistryService, house: int, tmp_path: Path, database: Database
) -> None:
    lines = [
        "姓名,身份证号,类别,同意日期,非人脸核验",
        f"{'张' * 5000},,访客,,身份证核验",
        "乙,110101201513010019,访客,,身份证核验",
        "丙,,访客,2099-01-01,身份证核验",
        "丁,,访客,1900-01-01,身份证核验",
    ]
    for dry_run in (True, False):
        report = run(service, tmp_path, lines, dry_run=dry_run)
        assert [o.status for o in report.outcomes] == [RowStatus.FAILED] * 4
        assert [(p.row, p.column) for p in report.problems] == [
            (2, "姓名"),
            (3, "身份证号"),
            (4, "同意日期"),
            (5, "同意日期"),
        ]
        assert report.problems[0].reason == "过长 (too long): 5000 characters, at most 200"
    assert row_counts(database)["people"] == 0


def _face(name: str) -> bytes:
    return require_data(f"face_recognition_examples/examples/{name}").read_bytes()


def test_a_photo_swapped_for_a_link_after_the_check_is_not_followed(
    service: RegistryService, village: int, tmp_path: Path, database: Database
) -> None:
    """The folder check and the worker's read are apart in time: a photo replaced by a link
    to an outside picture in between is refused, not decoded (the worker opens the name
    inside the folder itself, without following links out)."""
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "face.jpg").write_bytes(_face("obama.jpg"))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "face.jpg").write_bytes(_face("biden.jpg"))

    def swap(_: int) -> None:
        # Called for row 3 (refused as a duplicate of row 2) after row 2's photo passed
        # the folder check and before any worker opened it.
        if (photos / "face.jpg").is_symlink():
            return
        (photos / "face.jpg").unlink()
        (photos / "face.jpg").symlink_to(outside / "face.jpg")

    roster = tmp_path / "roster.csv"
    roster.write_text(
        "姓名,类别,照片,同意采集人,同意日期,非人脸核验\n"
        "甲,访客,face.jpg,网格员 王,2024-03-01,\n"
        "甲,访客,,,,身份证核验\n",
        encoding="utf-8",
    )
    before = row_counts(database)
    report = import_roster(
        roster, service, ImportOptions(photos_dir=photos, workers=1), progress=swap
    )
    assert (photos / "face.jpg").is_symlink()  # the swap happened in between
    assert [o.status for o in report.outcomes] == [RowStatus.FAILED, RowStatus.FAILED]
    assert reasons(report)[2] == [f"face.jpg: {OUTSIDE}"]
    assert row_counts(database) == before


def test_a_kept_photo_is_the_photo_that_was_checked(
    service: RegistryService, village: int, tmp_path: Path
) -> None:
    """A photo rewritten between its face check and the write is not stored: the row fails
    and says so (the kept bytes must be the bytes whose face was checked)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(_face("obama.jpg"))
    (photos / "b.jpg").write_bytes(_face("biden.jpg"))

    def rewrite(_: int) -> None:
        # Row 2 was written; row 3's photo was checked with the rest of the chunk.
        (photos / "b.jpg").write_bytes(_face("obama2.jpg"))

    roster = tmp_path / "roster.csv"
    roster.write_text(
        "姓名,类别,照片,同意采集人,同意日期\n"
        "甲,访客,a.jpg,网格员 王,2024-03-01\n"
        "乙,访客,b.jpg,网格员 王,2024-03-01\n",
        encoding="utf-8",
    )
    assert service.settings.keep_enrolment_photos  # as the registry tests' service has it
    report = import_roster(
        roster, service, ImportOptions(photos_dir=photos, workers=1), progress=rewrite
    )
    assert [o.status for o in report.outcomes] == [RowStatus.IMPORTED, RowStatus.FAILED]
    [why] = reasons(report)[3]
    assert why.startswith("b.jpg: photo could not be read") and "changed after" in why


def test_the_same_face_rule_asks_the_live_gallery_when_there_is_one(
    service: RegistryService, village: int, tmp_path: Path
) -> None:
    """With the application's live gallery the import looks faces up there (no decryption
    of every template); this run's own rows are still compared with each other."""
    from cunan.matching.live import LiveGallery

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(_face("obama.jpg"))
    (photos / "b.jpg").write_bytes(_face("obama.jpg"))
    (photos / "c.jpg").write_bytes(_face("biden.jpg"))
    first = tmp_path / "first.csv"
    first.write_text(
        "姓名,类别,照片,同意采集人,同意日期\n甲,访客,a.jpg,网格员 王,2024-03-01\n",
        encoding="utf-8",
    )
    assert (
        import_roster(first, service, ImportOptions(photos_dir=photos, workers=1)).count(
            RowStatus.IMPORTED
        )
        == 1
    )
    [stored] = [t for batch in service.iter_templates() for t in batch]
    # The gallery says the face belongs to person 4242: only a gallery lookup can say so.
    gallery = LiveGallery(model_id=stored.model_id, dim=len(stored.vector))
    gallery._add_many([(stored.template_id, 4242, stored.vector)])
    second = tmp_path / "second.csv"
    second.write_text(
        "姓名,类别,照片,同意采集人,同意日期\n"
        "乙,访客,b.jpg,网格员 王,2024-03-01\n"
        "丙,访客,c.jpg,网格员 王,2024-03-01\n"
        "丁,访客,c.jpg,网格员 王,2024-03-01\n",
        encoding="utf-8",
    )
    report = import_roster(
        second, service, ImportOptions(photos_dir=photos, workers=1, dry_run=True, gallery=gallery)
    )
    assert [o.status for o in report.outcomes] == [
        RowStatus.FAILED,
        RowStatus.VALID,
        RowStatus.FAILED,
    ]
    got = reasons(report)
    assert "same face as person 4242" in got[2][0]
    assert "same face as row 3" in got[4][0]
