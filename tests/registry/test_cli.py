from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cunan.audit import AuditLog, verify_chain
from cunan.registry import cli as registry_cli
from cunan.storage.database import Database, sqlite_url

ID = "330102199001011234"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("CUNAN_ADMIN_PASSWORD", "correct horse battery")
    # Keep photos so that key rotation has photos to re-encrypt as well as templates.
    monkeypatch.setenv("CUNAN_REGISTRY__KEEP_ENROLMENT_PHOTOS", "true")
    for var in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_KEY_FILE", "CUNAN_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    root = typer.Typer()
    root.command("init")(registry_cli.init_command)
    root.add_typer(registry_cli.people_app, name="people")
    root.add_typer(registry_cli.keys_app, name="keys")
    root.add_typer(registry_cli.registry_app, name="registry")
    return root


@pytest.fixture
def photo(examples: Path) -> Path:
    """A real, enrolment-quality portrait."""
    return examples / "obama.jpg"


@pytest.fixture
def bad_photo(tmp_path: Path) -> Path:
    """A picture of a wall: no face."""
    from PIL import Image

    path = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (120, 100, 90)).save(path)
    return path


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_init_add_list_show_export_rotate(app: typer.Typer, tmp_path: Path, photo: Path) -> None:
    data = tmp_path / "data"
    code, out, err = run(app, "init", "--data-dir", str(data), "--village", "桃源村")
    assert code == 0, err
    assert (data / "cunan.key").stat().st_mode & 0o777 == 0o600
    assert data.stat().st_mode & 0o777 == 0o700
    code, _, err = run(app, "init", "--data-dir", str(data))
    assert code == 4 and "already initialised" in err  # a conflict

    code, out, err = run(
        app,
        "people",
        "add",
        "--data-dir",
        str(data),
        "--name",
        "李四",
        "--photo",
        str(photo),
        "--consent-by",
        "王",
        "--id-number",
        ID,
    )
    assert code == 0, err
    person_id = int(out.strip())

    code, out, _ = run(app, "people", "list", "--data-dir", str(data))
    assert code == 0 and "3301**********1234" in out and ID not in out
    code, out, _ = run(app, "people", "show", str(person_id), "--data-dir", str(data))
    assert code == 0 and "3301**********1234" in out and "face templates: 1" in out

    export = tmp_path / "people.csv"
    code, _, err = run(app, "registry", "export", str(export), "--data-dir", str(data))
    assert code == 0, err
    rows = list(csv.DictReader(export.open(encoding="utf-8-sig")))
    assert rows[0]["id_number_masked"] == "3301**********1234"
    assert ID not in export.read_text(encoding="utf-8-sig")
    assert rows[0]["face_templates"] == "1"

    code, out, err = run(app, "keys", "rotate", "--data-dir", str(data))
    assert code == 0 and "re-encrypted 1 template(s), 1 photo(s)" in out, err
    code, out, _ = run(app, "people", "show", str(person_id), "--data-dir", str(data))
    assert code == 0

    code, out, _ = run(app, "people", "remove", str(person_id), "--yes", "--data-dir", str(data))
    assert code == 0 and "1 template(s)" in out

    # Every command above is in the audit log, by the OS account, with ids and counts only.
    database = Database.open(sqlite_url(data))
    try:
        entries = list(reversed(AuditLog(database).recent(limit=100)))
        report = verify_chain(database)
    finally:
        database.dispose()
    assert report.ok and report.entries == len(entries)
    # The gallery that enrolment checks the same-face rule on records its calibrations as the
    # system (docs/calibration.md); everything the commands did is the account's.
    entries = [e for e in entries if e.action != "matching.calibrate"]
    assert [e.action for e in entries] == [
        "place.create",  # init: the village
        "user.create",  # init: the admin
        "person.create",
        "registry.export",
        "key.rotate",
        "person.remove",
    ]
    assert all(e.actor.startswith("cli:") for e in entries)
    created, exported, rotated, removed = entries[2:]
    assert created.target_id == str(person_id) and created.details["templates"] == 1
    assert exported.details["rows"] == 1
    assert rotated.details["templates"] == 1 and rotated.details["photos"] == 1
    assert removed.target_id == str(person_id) and removed.details["templates"] == 1
    for entry in entries:
        flat = json.dumps(dict(entry.details), ensure_ascii=False)
        assert "李四" not in flat and ID not in flat and "1234" not in flat


def test_people_add_refuses_without_consent_or_with_a_bad_photo(
    app: typer.Typer, tmp_path: Path, photo: Path, bad_photo: Path
) -> None:
    data = tmp_path / "data"
    assert run(app, "init", "--data-dir", str(data))[0] == 0
    code, _, err = run(
        app, "people", "add", "--data-dir", str(data), "--name", "A", "--photo", str(photo)
    )
    assert code == 2 and "without consent" in err
    bad = bad_photo
    code, _, err = run(
        app,
        "people",
        "add",
        "--data-dir",
        str(data),
        "--name",
        "A",
        "--photo",
        str(photo),
        "--photo",
        str(bad),
        "--consent-by",
        "王",
    )
    # The photo named, the reason in plain words (Chinese first) and as measured.
    assert code == 2 and f"{bad}: " in err and "[no face found]" in err
    assert "找不到人脸" in err and "nothing was stored" in err
    code, _, err = run(
        app,
        "people",
        "add",
        "--data-dir",
        str(data),
        "--name",
        "小明",
        "--photo",
        str(photo),
        "--consent-by",
        "王",
        "--minor",
    )
    assert code == 2 and "guardian" in err
    code, out, _ = run(app, "people", "list", "--data-dir", str(data))
    assert "0 people" in out


def test_key_file_readable_by_others_is_refused(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(app, "init", "--data-dir", str(data))[0] == 0
    (data / "cunan.key").chmod(0o644)
    code, _, err = run(app, "people", "list", "--data-dir", str(data))
    assert code == 6 and "chmod 600" in err  # the key is unavailable


def test_uninitialised_data_dir(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = run(app, "people", "list", "--data-dir", str(tmp_path / "none"))
    assert code == 2 and "cunan init" in err


def test_identify_names_registered_people_and_leaves_strangers_unknown(
    app: typer.Typer, tmp_path: Path, examples: Path
) -> None:
    import json

    app.command("identify")(registry_cli.identify_command)
    data = tmp_path / "data"
    assert run(app, "init", "--data-dir", str(data))[0] == 0
    ids = {}
    for name, photo in (("Obama", "obama.jpg"), ("Biden", "biden.jpg")):
        code, out, err = run(
            app, "people", "add", "--data-dir", str(data), "--name", name,
            "--photo", str(examples / photo), "--consent-by", "王",
        )  # fmt: skip
        assert code == 0, err
        ids[name] = int(out.strip())
    code, out, err = run(
        app, "identify", "--json", "--data-dir", str(data),
        str(examples / "knn_examples" / "test" / "obama_and_biden.jpg"),
    )  # fmt: skip
    assert code == 0, err
    faces = [json.loads(line) for line in out.splitlines()]
    assert len(faces) == 3
    known = {f["person_id"] for f in faces if f["decision"] == "known"}
    assert known == {ids["Obama"], ids["Biden"]}
    stranger = [f for f in faces if f["decision"] == "unknown"]
    assert len(stranger) == 1 and stranger[0]["reasons"]
    # The 1:N search is audited: ids and counts, never a name or a face.
    database = Database.open(sqlite_url(data))
    try:
        [entry] = AuditLog(database).recent(action="search")
    finally:
        database.dispose()
    assert entry.details["faces"] == 3
    assert entry.details["matched_person_ids"] == sorted(ids.values())


def test_enrolment_engine_takes_the_jitter_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from cunan.config import load_settings

    monkeypatch.setenv("CUNAN_FACES__ENROL_JITTER", "3")
    from cunan.faces.engine import EngineConfig, FaceEngine

    engine = FaceEngine.from_config(EngineConfig.from_settings(load_settings().faces))
    assert engine.enrol_jitter == 3


def test_outputs_are_checked_before_any_work(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(app, "init", "--data-dir", str(data))[0] == 0
    roster = tmp_path / "roster.csv"
    roster.write_text("姓名,类别,非人脸核验\n甲,访客,身份证核验\n", encoding="utf-8")
    photos = tmp_path / "photos"
    photos.mkdir()
    code, out, err = run(
        app, "registry", "import", str(roster), "--photos", str(photos),
        "--report", str(tmp_path), "--data-dir", str(data),
    )  # fmt: skip
    assert code == 2 and "is a directory" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(app, "people", "list", "--data-dir", str(data))
    assert "0 people" in out  # refused before the import wrote its row
    code, out, err = run(
        app, "registry", "import", str(roster), "--photos", str(photos),
        "--report", str(tmp_path / "problems.csv"), "--data-dir", str(data),
    )  # fmt: skip
    assert code == 0 and "1 imported" in out
    assert "rows 1/1 (100 %)" in err  # progress, also when stderr is not a terminal
    code, _, err = run(app, "registry", "export", str(tmp_path), "--data-dir", str(data))
    assert code == 2 and "is a directory" in err
    code, _, err = run(app, "registry", "export", str(tmp_path / "x.xlsx"), "--data-dir", str(data))
    assert code == 0, err
    assert (tmp_path / "x.xlsx").read_bytes()[:2] == b"PK"  # a workbook, not CSV text


def test_people_add_face_consistency(app: typer.Typer, tmp_path: Path, examples: Path) -> None:
    data = tmp_path / "data"
    assert run(app, "init", "--data-dir", str(data))[0] == 0
    base = ["people", "add", "--data-dir", str(data), "--consent-by", "王"]
    obama, biden = str(examples / "obama.jpg"), str(examples / "biden.jpg")
    code, _, err = run(app, *base, "--name", "甲", "--photo", obama, "--photo", biden)
    assert code == 2 and "the photos show different people" in err and "nothing was stored" in err
    code, out, err = run(app, *base, "--name", "甲", "--photo", obama)
    assert code == 0, err
    code, _, err = run(app, *base, "--name", "乙", "--photo", obama)
    assert code == 2 and f"same face as person {int(out)}" in err
    code, _, err = run(app, *base, "--name", "乙", "--photo", obama, "--allow-same-face")
    assert code == 0, err
