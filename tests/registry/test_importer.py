from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
from PIL import Image
from sqlalchemy import text

from cunan.config import RegistrySettings
from cunan.faces.engine import EnrolmentPhotoError, FaceEngine
from cunan.faces.imageio import load_image
from cunan.registry.identity import resident_id_check_char
from cunan.registry.importer import ImportOptions, RowStatus, import_roster
from cunan.registry.records import NewPerson
from cunan.registry.roster import RowProblem
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade
from tests.conftest import require_data

pytestmark = pytest.mark.slow

HOUSE = "桃源村1号"
HEADER = "姓名,身份证号,类别,门牌地址,房间,入住日期,照片,同意采集人,同意日期\n"
CONSENT = "网格员 王,2024-03-01"
TWO_FACES = "2 faces of enrolment quality; the photo must show one person"


def id_number(n: int) -> str:
    first = f"11010119900307{n:03d}"
    return first + resident_id_check_char(first)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    examples = require_data("face_recognition_examples/examples")
    folder = tmp_path_factory.mktemp("photos")
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "two_people.jpg"):
        shutil.copy(examples / name, folder / name)
    Image.new("RGB", (300, 300), (200, 200, 200)).save(folder / "blank.png")
    return folder


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    database = Database.open(sqlite_url(tmp_path))
    upgrade(database)
    svc = RegistryService(database, FieldCipher(KeyRing.generate()))
    village = svc.add_village("桃源村")
    svc.add_house(village, HOUSE)
    yield svc
    database.dispose()


def counts(service: RegistryService) -> tuple[int, int, int, int]:
    with service.database.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("people", "consents", "face_templates", "tenancies")
        )


def options(photos: Path, **kw: object) -> ImportOptions:
    return ImportOptions(photos_dir=photos, workers=1, **kw)  # type: ignore[arg-type]


def gbk_roster(path: Path) -> Path:
    rows = [
        f"王小明,{id_number(1)},外来租住,{HOUSE},101,2024/3/1,obama.jpg,{CONSENT}",
        f"李四,{id_number(2)},外来租住,{HOUSE},102,2024-13-01,biden.jpg,{CONSENT}",
        f"张三,{id_number(1)},外来租住,{HOUSE},103,2024-03-01,biden.jpg,{CONSENT}",
        f"赵六,{id_number(3)},户籍,{HOUSE},,,blank.png,{CONSENT}",
        f"钱七,{id_number(4)},户籍,{HOUSE},,,two_people.jpg,{CONSENT}",
        f"孙八,{id_number(5)},户籍,{HOUSE},,,missing.jpg,{CONSENT}",
        f"周九,{id_number(6)},外来租住,不存在路9号,1,2024-03-01,biden.jpg,{CONSENT}",
        f"吴十,{id_number(7)},外星人,{HOUSE},,,,,",
    ]
    path.write_bytes((HEADER + "\n".join(rows) + "\n").encode("gbk"))
    return path


GBK_PROBLEMS = [
    RowProblem(3, "入住日期", "bad date '2024-13-01': no such day"),
    RowProblem(4, "身份证号", "duplicate ID number (same as row 2)"),
    RowProblem(5, "照片", "blank.png: no face found"),
    RowProblem(6, "照片", f"two_people.jpg: {TWO_FACES}"),
    RowProblem(7, "照片", "missing.jpg: missing photo (not found)"),
    RowProblem(
        8, "门牌地址", "unknown house '不存在路9号'; register it first or use --create-places"
    ),
    RowProblem(
        9,
        "类别",
        "unknown category '外星人'; use 户籍/resident, 外来租住/tenant, 工作人员/staff or "
        "访客/visitor",
    ),
    RowProblem(
        9,
        "照片",
        "missing required field: photos (or say in 非人脸核验/non_face how the person is checked "
        "without face data)",
    ),
]


def test_gbk_roster_reports_every_problem_and_stores_nothing_partial(
    service: RegistryService, photos: Path, tmp_path: Path
) -> None:
    roster = gbk_roster(tmp_path / "roster.csv")
    report = import_roster(roster, service, options(photos))
    assert report.problems == GBK_PROBLEMS
    assert [(o.row, o.status) for o in report.outcomes] == [
        (2, RowStatus.IMPORTED),
        *[(n, RowStatus.FAILED) for n in range(3, 10)],
    ]
    assert report.exit_code == 1
    assert counts(service) == (1, 1, 1, 1)  # people, consents, templates, tenancies

    again = import_roster(roster, service, options(photos))
    assert again.outcomes[0].status is RowStatus.UNCHANGED
    assert again.problems == GBK_PROBLEMS
    assert counts(service) == (1, 1, 1, 1)


def test_dry_run_writes_nothing(service: RegistryService, photos: Path, tmp_path: Path) -> None:
    roster = gbk_roster(tmp_path / "roster.csv")
    report = import_roster(roster, service, options(photos, dry_run=True, create_places=True))
    assert report.outcomes[0].status is RowStatus.VALID
    assert report.problems == [p for p in GBK_PROBLEMS if p.row != 8]
    assert counts(service) == (0, 0, 0, 0)
    assert len(service.list_people()) == 0


def test_xlsx_merged_house_empty_rows_and_registry_duplicate(
    service: RegistryService, photos: Path, tmp_path: Path
) -> None:
    village = service.default_village_id()
    service.add_person(
        NewPerson(name="老住户", village_id=village, id_number=id_number(9), non_face_note="身份证")
    )
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(
        [
            "姓名",
            "身份证号",
            "类别",
            "门牌地址",
            "房间",
            "入住日期",
            "照片",
            "同意采集人",
            "同意日期",
        ]
    )
    consent = ["网格员 王", datetime(2024, 3, 1, tzinfo=None)]
    ws.append(
        ["甲", id_number(1), "外来租住", HOUSE, "101", datetime(2024, 3, 1), "obama.jpg", *consent]
    )
    ws.append([None] * 9)
    ws.append(["乙", id_number(2), "tenant", None, "102", "2024年3月2日", "biden.jpg", *consent])
    ws.append(["丙", id_number(9), "户籍", None, None, None, "biden.jpg", *consent])
    ws.merge_cells("D2:D5")
    ws.append([None] * 9)
    wb.save(tmp_path / "roster.xlsx")
    report = import_roster(tmp_path / "roster.xlsx", service, options(photos))
    assert report.problems == [
        RowProblem(
            5,
            "身份证号",
            "duplicate ID number: already registered for another name (person 1)",
        )
    ]
    assert [(o.row, o.status) for o in report.outcomes] == [
        (2, RowStatus.IMPORTED),
        (4, RowStatus.IMPORTED),
        (5, RowStatus.FAILED),
    ]
    assert counts(service) == (3, 2, 2, 2)
    people = {p.name: p for p in service.list_people()}
    assert service.tenancies_of(people["乙"].id)[0].move_in.isoformat() == "2024-03-02"


def test_utf8_bom_csv_with_worker_processes(
    service: RegistryService, photos: Path, tmp_path: Path
) -> None:
    rows = [
        f"王小明,{id_number(1)},外来租住,{HOUSE},101,2024-03-01,obama.jpg;obama2.jpg,{CONSENT}",
        f"无证人员,,外来租住,{HOUSE},102,2024-03-01,biden.jpg,{CONSENT}",
    ]
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8-sig")
    report = import_roster(roster, service, ImportOptions(photos_dir=photos, workers=2))
    assert report.problems == [] and report.exit_code == 0
    assert report.photos_checked == 3
    assert counts(service) == (2, 2, 3, 2)
    # Without an ID number, the same name, house and room is the same person.
    again = import_roster(roster, service, options(photos))
    assert [o.status for o in again.outcomes] == [RowStatus.UNCHANGED] * 2
    assert counts(service) == (2, 2, 3, 2)
    consent = service.consents_of(report.outcomes[0].person_id or 0)[0]
    assert consent.collected_at.astimezone(UTC).date().isoformat() == "2024-03-01"


def test_photo_gone_after_the_check_fails_only_its_row(
    database_with_photos: tuple[RegistryService, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cunan.registry import importer

    service, folder = database_with_photos
    real_check = importer._check_photos

    def check_then_lose(jobs: list[importer._PhotoJob]) -> list[importer._PhotoResult]:
        results = real_check(jobs)
        (folder / "moved.jpg").unlink(missing_ok=True)  # moved away after the check
        return results

    monkeypatch.setattr(importer, "_check_photos", check_then_lose)
    rows = [
        f"王小明,{id_number(1)},户籍,{HOUSE},,,moved.jpg,{CONSENT}",
        f"李四,{id_number(2)},户籍,{HOUSE},,,biden.jpg,{CONSENT}",
    ]
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    report = import_roster(roster, service, options(folder))
    assert [o.status for o in report.outcomes] == [RowStatus.FAILED, RowStatus.IMPORTED]
    [problem] = report.problems
    assert (problem.row, problem.column) == (2, "照片")
    assert problem.reason.startswith("moved.jpg: photo could not be read")
    assert [p.name for p in service.list_people()] == ["李四"]


@pytest.fixture
def database_with_photos(photos: Path, tmp_path: Path) -> Iterator[tuple[RegistryService, Path]]:
    """A service that keeps enrolment photos (so the import reads them) and its own folder."""
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    shutil.copy(folder / "obama.jpg", folder / "moved.jpg")
    database = Database.open(sqlite_url(tmp_path))
    upgrade(database)
    svc = RegistryService(
        database,
        FieldCipher(KeyRing.generate()),
        settings=RegistrySettings(keep_enrolment_photos=True),
    )
    svc.add_house(svc.add_village("桃源村"), HOUSE)
    yield svc, folder
    database.dispose()


def test_one_unusable_photo_is_skipped_when_another_is_good(
    service: RegistryService, photos: Path, tmp_path: Path
) -> None:
    village = service.default_village_id()
    occupied = service.add_room(_house_id(service), "101", capacity=1)
    old = service.add_person(NewPerson(name="老租客", village_id=village, non_face_note="x"))
    service.add_tenancy(old, occupied, move_in=date(2024, 1, 1), reported_by="网格员")
    rows = [
        f"王小明,{id_number(1)},户籍,{HOUSE},,,obama.jpg;blank.png;gone.jpg,{CONSENT}",
        f"李四,{id_number(2)},户籍,{HOUSE},,,blank.png;gone.jpg,{CONSENT}",
        f"张三,{id_number(3)},外来租住,{HOUSE},101,2024-03-01,biden.jpg;gone.jpg,{CONSENT}",
    ]
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    skipped = " (photo skipped; the row's other photo(s) were used)"
    # The same rule in the dry run and the import: the row with a good photo goes in with
    # it, its bad photos are reported; a row with no usable photo fails, and so does a row
    # failing for another reason (the room is full), with its bad photo as a plain problem.
    expected = [
        RowProblem(2, "照片", "gone.jpg: missing photo (not found)" + skipped),
        RowProblem(2, "照片", "blank.png: no face found" + skipped),
        RowProblem(3, "照片", "gone.jpg: missing photo (not found)"),
        RowProblem(3, "照片", "blank.png: no face found"),
        RowProblem(4, "房间", FULL_101),
        RowProblem(4, "照片", "gone.jpg: missing photo (not found)"),
    ]
    dry = import_roster(roster, service, options(photos, dry_run=True))
    assert [o.status for o in dry.outcomes] == [RowStatus.VALID] + [RowStatus.FAILED] * 2
    assert dry.problems == expected
    real = import_roster(roster, service, options(photos))
    assert [o.status for o in real.outcomes] == [RowStatus.IMPORTED] + [RowStatus.FAILED] * 2
    assert real.problems == expected
    assert counts(service) == (2, 1, 1, 1)  # + the old tenant; one consent, one template


FULL_101 = (
    "房间已满 (room full): room '101' of '桃源村1号' holds 1 and already has 1 tenant(s) from "
    "2024-03-01; record a move-out first"
)


def _house_id(service: RegistryService) -> int:
    from cunan.registry.places import VillageDirectory

    return VillageDirectory.load(service, service.default_village_id()).houses[HOUSE]


def test_face_consistency_rule(service: RegistryService, photos: Path, tmp_path: Path) -> None:
    rows = [
        f"奥巴马,{id_number(1)},户籍,{HOUSE},,,obama.jpg,{CONSENT}",
        f"两个人,{id_number(2)},户籍,{HOUSE},,,obama2.jpg;biden.jpg,{CONSENT}",
        f"又一个名字,{id_number(3)},户籍,{HOUSE},,,obama.jpg,{CONSENT}",
    ]
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    dry = import_roster(roster, service, options(photos, dry_run=True))
    assert [o.status for o in dry.outcomes] == [RowStatus.VALID] + [RowStatus.FAILED] * 2
    different, same = dry.problems
    assert different.row == 3 and different.reason.startswith(
        "照片不是同一个人 (the photos show different people): obama2.jpg and biden.jpg are"
    )
    assert same.row == 4 and same.reason.startswith("人脸重复 (same face as row 2, distance")
    real = import_roster(roster, service, options(photos))
    assert [o.status for o in real.outcomes] == [RowStatus.IMPORTED] + [RowStatus.FAILED] * 2
    first = real.outcomes[0].person_id
    assert real.problems[1].reason.startswith(f"人脸重复 (same face as person {first}")
    # Against people registered before this run too, unless the user says they are twins.
    again = import_roster(roster, service, options(photos, allow_same_face=True))
    assert [o.status for o in again.outcomes] == [
        RowStatus.UNCHANGED,
        RowStatus.FAILED,  # two people in one row is never allowed
        RowStatus.IMPORTED,
    ]
    assert counts(service) == (2, 2, 2, 0)


def test_a_small_face_in_a_large_photo_gets_a_second_look(
    service: RegistryService, tmp_path: Path, engine: FaceEngine
) -> None:
    from cunan.registry.enrolment import ENROLMENT_DECODE_PIXELS
    from cunan.registry.importer import enrolment_face_of_file

    lfw = require_data("lfw/lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
    folder = tmp_path / "phone"
    folder.mkdir()
    # A 12 MP photo (made at run time) whose face is ~260 px: ~48 px at the first check's
    # 0.4 MP (under the 80 px minimum), ~95 px at the second look's four times the pixels.
    canvas = Image.new("RGB", (4000, 3000), (90, 110, 120))
    canvas.paste(Image.open(lfw).convert("RGB").resize((600, 600)), (1700, 1200))
    canvas.save(folder / "far.jpg", quality=90)
    with pytest.raises(EnrolmentPhotoError):  # the first look alone refuses it
        engine.enrolment_face(load_image(folder / "far.jpg", reduce_to=ENROLMENT_DECODE_PIXELS))
    face = enrolment_face_of_file(folder / "far.jpg", engine, engine, source="far.jpg")
    assert face.quality.face_width_px is not None and face.quality.face_width_px >= 80
    row = f"远景,{id_number(1)},户籍,{HOUSE},,,far.jpg,{CONSENT}"
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + row + "\n", encoding="utf-8")
    report = import_roster(roster, service, options(folder))
    assert report.problems == [] and report.count(RowStatus.IMPORTED) == 1
