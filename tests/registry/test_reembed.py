"""Switching the recognition model: kept enrolment photos are embedded again, resumably and
audited; people without a kept photo are listed (issue 12 item 7). Both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cunan.audit.log import AuditLog
from cunan.faces.embed import OnnxModelSpec
from cunan.faces.engine import EngineConfig, FaceEngine
from cunan.registry.enrolment import template_from_photo
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.registry.reembed import plan, reembed, words
from cunan.registry.service import RegistryService
from cunan.storage.database import Database
from tests.conftest import require_data
from tests.faces.test_onnx_embedder import DIM
from tests.faces.test_onnx_embedder import _build as build_tiny_model
from tests.registry.helpers import template

PHOTOS = "face_recognition_examples/examples/knn_examples/train"
CONSENTED = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def audit(database: Database) -> AuditLog:
    return AuditLog(database)


@pytest.fixture(scope="module")
def onnx_engine(tmp_path_factory: pytest.TempPathFactory) -> FaceEngine:
    """A site's 'licensed' ArcFace-style model: a tiny ONNX graph built here (112x112 in)."""
    path = build_tiny_model(tmp_path_factory.mktemp("model") / "licensed.onnx")
    return FaceEngine.from_config(EngineConfig(onnx_model=OnnxModelSpec(path=path)))


def person(service: RegistryService, name: str, templates: list[TemplateInput]) -> int:
    return service.add_person(
        NewPerson(name=name, village_id=service.add_village(f"村{name}")),
        consent=ConsentInput(collected_by="网格员 王", collected_at=CONSENTED),
        templates=templates,
    )


def enrolled(engine: FaceEngine, photo: str) -> TemplateInput:
    data = require_data(f"{PHOTOS}/{photo}").read_bytes()
    return template_from_photo(engine, data, source=photo, max_pixels=40_000_000)


def test_reembed_kept_photos_resumably_and_list_the_rest(
    service: RegistryService, engine: FaceEngine, onnx_engine: FaceEngine, audit: AuditLog
) -> None:
    old = engine.model_id
    new = onnx_engine.model_id
    assert new != old
    obama = person(service, "甲", [enrolled(engine, "obama/obama.jpg")])
    biden = person(
        service, "乙", [enrolled(engine, "biden/biden.jpg"), enrolled(engine, "biden/biden2.jpg")]
    )
    no_photo = person(service, "丙", [template(3)])  # photo not kept: cannot be re-embedded
    todo, stranded, done = plan(service, new)
    assert [p for _, p in todo] == [obama, biden, biden] and stranded == [no_photo] and done == 0

    # Stopped after the first photo (Ctrl-C, a crash): that photo's template is kept...
    class StopError(Exception):
        pass

    def stop_after_one(n: int, total: int) -> None:
        if n == 1:
            raise StopError

    with pytest.raises(StopError):
        reembed(service, onnx_engine, progress=stop_after_one)
    assert [t.person_id for t in service.templates_of(obama) if t.model_id == new] == [obama]

    # ... and the next run goes on with the rest only.
    seen: list[tuple[int, int]] = []
    report = reembed(service, onnx_engine, progress=lambda n, total: seen.append((n, total)))
    assert (report.embedded, report.already_done, report.failed) == (2, 1, [])
    assert seen == [(1, 2), (2, 2)]
    assert report.people_without_photos == [no_photo]
    assert any(str(no_photo) in line for line in words(report))
    new_templates = [t for batch in service.iter_templates(model_id=new) for t in batch]
    assert sorted(t.person_id for t in new_templates) == [obama, biden, biden]
    assert all(t.vector.shape == (DIM,) for t in new_templates)
    # The old model's templates stay (switching back needs no work); photos are not copied.
    assert len([b for batch in service.iter_templates(model_id=old) for b in batch]) == 4
    assert len(service.photo_ids_of(biden)) == 2
    refs = service.template_refs()
    assert {photo for _, _, photo, model in refs if model == new} == {
        photo for _, _, photo, model in refs if model == old and photo is not None
    }

    # A third run has nothing left to do.
    again = reembed(service, onnx_engine)
    assert (again.embedded, again.already_done) == (0, 3)

    runs = audit.recent(limit=50, action="template.reembed")
    assert [e.details["embedded"] for e in runs] == [0, 2]  # newest first; the stopped run
    # wrote no run entry, but each template it stored was audited as it was added:
    adds = [e for e in audit.recent(limit=50, action="template.add") if "photo_id" in e.details]
    assert len(adds) == 3 and {e.details["model_id"] for e in adds} == {new}
    assert all(e.target_type == "model" and e.target_id == new for e in runs)


def test_a_withdrawn_consent_leaves_nothing_to_reembed(
    service: RegistryService, engine: FaceEngine, onnx_engine: FaceEngine, audit: AuditLog
) -> None:
    someone = person(service, "丁", [enrolled(engine, "obama/obama.jpg")])
    service.withdraw_consent(someone, recorded_by="网格员 王", alternative_note="人工核验")
    report = reembed(service, onnx_engine)
    assert (report.photos_total, report.embedded, report.people_without_photos) == (0, 0, [])


def test_cli_reembeds_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, examples: Path
) -> None:
    """`cunan faces reembed` after switching faces.onnx_model: JSON out, nothing left after."""
    from typer.testing import CliRunner

    from cunan.cli import app

    monkeypatch.setenv("CUNAN_ADMIN_PASSWORD", "correct horse battery")
    monkeypatch.setenv("CUNAN_REGISTRY__KEEP_ENROLMENT_PHOTOS", "true")
    for var in ("CUNAN_DATABASE_URL", "CUNAN_DATA_DIR", "CUNAN_KEY_FILE", "CUNAN_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CUNAN_FACES__ONNX_MODEL", raising=False)
    data = str(tmp_path / "data")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout + result.stderr

    assert run("init", "--data-dir", data, "--village", "桃源村")[0] == 0
    add = ["people", "add", "--data-dir", data, "--consent-by", "王"]
    code, out = run(*add, "--name", "甲", "--photo", str(examples / "obama.jpg"))
    assert code == 0, out
    model = build_tiny_model(tmp_path / "licensed.onnx")
    monkeypatch.setenv("CUNAN_FACES__ONNX_MODEL", str(model))
    code, out = run("faces", "reembed", "--data-dir", data, "--json")
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["embedded"] == 1 and report["people_without_photos"] == []
    assert report["model_id"].startswith("licensed-")
    code, out = run("faces", "reembed", "--data-dir", data)
    assert code == 0 and "新提取 0 张照片, 已完成 1 张" in out, out
