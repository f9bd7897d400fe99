"""Gas cases: opened by HIGH alarms, moved along their stages only, site photos encrypted; face
case code does not see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cunan.audit.log import AuditLog
from cunan.authz import Principal, local_principal
from cunan.cases.service import CaseNotFoundError, CaseService
from cunan.cases.settings import CaseSettings
from cunan.errors import Conflict, Forbidden, InvalidInput, NotFound
from cunan.gas.alarm_settings import GasAlarmSettings
from cunan.gas.alarms import GasAlarmService
from cunan.gas.cases import GasCaseService
from cunan.gas.domain import AlarmType
from cunan.registry.keys import reset_keys, rotate_keys, unreadable_values
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.case_tables import Case
from cunan.storage.cases_repository import CaseRepository
from cunan.storage.database import Database
from cunan.storage.enums import UserRole
from cunan.storage.gas_tables import GasCasePhoto
from cunan.storage.query_repository import Page, QueryRepository
from cunan.storage.stats_repository import StatsRepository
from tests.gas.alarm_fixtures import T0, FrozenClock, Site, alarms, ingest, readings, seed
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

JPEG = b"\xff\xd8\xff\xe0" + b"site photo of the kitchen" * 40


@pytest.fixture
def site(database: Database) -> Site:
    return seed(database)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def cases(database: Database, clock: FrozenClock) -> GasCaseService:
    return GasCaseService(
        database, AuditLog(database), FieldCipher(KeyRing.generate()), clock=clock
    )


def _case(database: Database, clock: FrozenClock, serial: str = "DET-A1") -> int:
    service = GasAlarmService(database, AuditLog(database), clock=clock)
    ingest(service, readings(serial, T0, [70, 70, 70]))
    case_id = next(a.case_id for a in alarms(database, serial) if a.alarm_type == "high")
    assert case_id is not None
    return case_id


def _owner(site: Site, key: str = "a") -> Principal:
    return Principal(username="o", role=UserRole.BUSINESS, user_id=site.users[f"owner_{key}"])


def test_a_case_moves_along_its_stages_and_closes(
    database: Database, site: Site, clock: FrozenClock, cases: GasCaseService
) -> None:
    case_id = _case(database, clock)
    maintainer = Principal(username="m", role=UserRole.MAINTAINER, user_id=site.users["maint_1"])
    view = cases.get(maintainer, case_id)
    assert (view.stage, view.stage_label, view.status) == ("unresponded", "未响应", "open")
    assert view.next_stages == ["responded"]
    clock.advance(120)
    cases.move(_owner(site), case_id, "responded", "老板已到后厨，关闭总阀")
    clock.advance(600)
    cases.move(maintainer, case_id, "repair", "探测器前管道接口漏气")
    clock.advance(60)
    cases.move(maintainer, case_id, "in_progress")
    clock.advance(3600)
    done = cases.move(maintainer, case_id, "done", "更换接口，检测合格")
    assert (done.stage, done.status, done.closed_at) == ("done", "closed", clock.now)
    assert done.next_stages == []
    assert [(s.from_stage, s.to_stage, s.actor) for s in done.steps] == [
        (None, "unresponded", "system:gas-alarms"),
        ("unresponded", "responded", f"user:{site.users['owner_a']}"),
        ("responded", "repair", f"user:{site.users['maint_1']}"),
        ("repair", "in_progress", f"user:{site.users['maint_1']}"),
        ("in_progress", "done", f"user:{site.users['maint_1']}"),
    ]
    assert done.steps[1].at == T0 + timedelta(seconds=120)
    assert done.steps[1].note == "老板已到后厨，关闭总阀"
    entries = AuditLog(database).recent(action="gas.case_stage")
    assert len(entries) == 4
    assert entries[0].details["to_stage"] == "done" and entries[0].details["closed"] is True
    # The note stays with the case; the audit log says only that there was one.
    assert "检测合格" not in repr([e.details for e in entries])


def test_moves_off_the_map_are_refused(
    database: Database, site: Site, clock: FrozenClock, cases: GasCaseService
) -> None:
    case_id = _case(database, clock)
    admin = local_principal("tests")
    with pytest.raises(Conflict, match="未响应"):
        cases.move(admin, case_id, "resolved")
    with pytest.raises(InvalidInput):
        cases.move(admin, case_id, "teleported")
    cases.move(admin, case_id, "responded")
    final = cases.move(admin, case_id, "false_alarm", "炒菜油烟")
    assert final.status == "closed"
    with pytest.raises(Conflict, match="已结案"):
        cases.move(admin, case_id, "responded")
    auditor = Principal(username="a", role=UserRole.AUDITOR, user_id=None)
    with pytest.raises(Forbidden):
        cases.move(auditor, case_id, "responded")
    assert cases.get(auditor, case_id).stage == "false_alarm"


def test_a_case_outside_the_scope_is_not_found(
    database: Database, site: Site, clock: FrozenClock, cases: GasCaseService
) -> None:
    case_id = _case(database, clock, "DET-B1")
    with pytest.raises(NotFound) as hidden:
        cases.move(_owner(site, "a"), case_id, "responded")
    with pytest.raises(NotFound) as missing:
        cases.move(_owner(site, "a"), 987654, "responded")
    assert type(hidden.value) is type(missing.value)
    with pytest.raises(NotFound):
        cases.add_photo(_owner(site, "a"), case_id, JPEG, "image/jpeg")
    assert cases.move(_owner(site, "b"), case_id, "responded").stage == "responded"


def test_site_photos_are_encrypted_at_rest(
    database: Database, site: Site, clock: FrozenClock, cases: GasCaseService
) -> None:
    case_id = _case(database, clock)
    photo = cases.add_photo(_owner(site), case_id, JPEG, "image/jpeg")
    with database.read() as session:
        stored = session.scalars(select(GasCasePhoto)).one().ciphertext
    assert b"site photo" not in stored
    assert cases.photo(_owner(site), case_id, photo.id) == (JPEG, "image/jpeg")
    assert [p.id for p in cases.get(_owner(site), case_id).photos] == [photo.id]
    with pytest.raises(InvalidInput):
        cases.add_photo(_owner(site), case_id, b"GIF89a...", "image/png")
    with pytest.raises(NotFound):
        cases.photo(_owner(site, "b"), case_id, photo.id)
    with pytest.raises(NotFound):
        cases.photo(_owner(site), case_id, photo.id + 1000)
    entry = AuditLog(database).recent(action="gas.case_photo_add")[0]
    assert entry.details == {"photo_id": photo.id, "size": len(JPEG)}


def test_face_case_code_ignores_gas_cases(
    database: Database, site: Site, clock: FrozenClock
) -> None:
    case_id = _case(database, clock)
    face = datetime(2026, 3, 1, tzinfo=UTC)
    with database.transaction() as session:
        face_case = CaseRepository(session).open_case(
            model_id="dlib",
            village_id=site.village_id,
            opened_at=face,
            first_seen_at=face,
            last_seen_at=face,
        )
        face_id = face_case.id
    with database.read() as session:
        repo = CaseRepository(session)
        assert repo.case(case_id) is None and repo.case(face_id) is not None
        assert [c.id for c in repo.cases(["open"])] == [face_id]
        assert repo.case_versions(model_id="gas", statuses=["open"]) == []
        assert [c.id for c in repo.cases_by_ids([case_id, face_id])] == [face_id]
        rows, total = QueryRepository(session).cases(
            Page(0, 50), statuses=None, camera=None, since=None, until=None
        )
        assert ([c.id for c in rows], total) == ([face_id], 1)
        stats = StatsRepository(session)
        times = stats.case_times(["open", "assigned"])
        assert times is not None and times.open_cases == 1
        flow = stats.case_flow([T0 - timedelta(days=2), T0 + timedelta(days=1)])
        assert flow == [(1, 0)]
        assert session.get(Case, case_id) is not None  # it is there, just not a face case
    service = CaseService(database, FieldCipher(KeyRing.generate()), None, CaseSettings())  # type: ignore[arg-type]
    with pytest.raises(CaseNotFoundError):
        service.get(case_id)
    assert [v.id for v in service.list_cases()] == [face_id]


def test_which_alarm_types_open_cases_is_a_setting(
    database: Database, site: Site, clock: FrozenClock
) -> None:
    settings = GasAlarmSettings(case_types=[AlarmType.HIGH, AlarmType.LOW])
    service = GasAlarmService(database, AuditLog(database), settings, clock=clock)
    ingest(service, readings("DET-A1", T0, [30, 30, 30]))
    assert [a.case_id is not None for a in alarms(database)] == [True]


def test_key_rotation_reencrypts_site_photos_and_a_reset_discards_them(
    database: Database, site: Site, clock: FrozenClock, tmp_path: Path
) -> None:
    key_file = tmp_path / "cunan.key"
    ring = KeyRing.generate()
    ring.save(key_file)
    before = GasCaseService(database, AuditLog(database), FieldCipher(ring), clock=clock)
    case_id = _case(database, clock)
    photo = before.add_photo(_owner(site), case_id, JPEG, "image/jpeg")
    report = rotate_keys(database, key_file, audit=AuditLog(database), actor="cli:test")
    rotated = GasCaseService(
        database, AuditLog(database), FieldCipher(KeyRing.load(key_file)), clock=clock
    )
    assert rotated.photo(_owner(site), case_id, photo.id) == (JPEG, "image/jpeg")
    with database.read() as session:
        assert session.scalars(select(GasCasePhoto.key_id)).one() == report.new_key_id
    entry = AuditLog(database).recent(action="key.rotate")[0]
    assert entry.details["gas_case_photos"] == 1
    assert unreadable_values(database, FieldCipher(KeyRing.load(key_file))) == []
    key_file.unlink()
    reset = reset_keys(database, key_file)
    assert reset.discarded.gas_case_photos == 1
    assert rotated.get(_owner(site), case_id).photos == []
