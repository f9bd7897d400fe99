"""Registry, account and export changes are audited in their own transaction, ids only."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from cunan.audit import AuditLog, verify_chain
from cunan.auth.service import AuthService
from cunan.authz import local_principal
from cunan.config import WebSettings
from cunan.errors import Unauthenticated
from cunan.registry import export as export_module
from cunan.registry.export import write_export
from cunan.registry.records import NewPerson
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from cunan.storage.enums import PersonStatus, UserRole
from tests.registry.helpers import NOW, consent, template

NAME = "王小明"
ID_NUMBER = "330102199001011234"
PHONE = "13800138000"


@pytest.fixture
def audited(database: Database) -> RegistryService:
    return RegistryService(
        database,
        FieldCipher(KeyRing.generate()),
        clock=lambda: NOW,
        audit=AuditLog(database, clock=lambda: NOW),
        actor="cli:tester",
    )


def actions(database: Database) -> list[str]:
    return [e.action for e in reversed(AuditLog(database).recent(limit=1000))]


def no_personal_data(database: Database) -> None:
    for entry in AuditLog(database).recent(limit=1000):
        text = json.dumps(dict(entry.details), ensure_ascii=False)
        for secret in (NAME, ID_NUMBER, PHONE, "桃源"):
            assert secret not in text and secret not in (entry.target_id or "")


def test_every_registry_change_is_audited_with_ids_and_counts(
    audited: RegistryService, database: Database
) -> None:
    village = audited.add_village("桃源村")
    house = audited.add_house(village, "桃源村1号")
    room = audited.add_room(house, "101")
    pid = audited.add_person(
        NewPerson(name=NAME, village_id=village, id_number=ID_NUMBER, phone=PHONE),
        consent=consent(),
        templates=[template(1), template(2)],
    )
    audited.set_status(pid, PersonStatus.DEPARTED)
    audited.record_consent(pid, consent())
    [extra] = audited.add_templates(pid, [template(3)])
    audited.delete_templates([extra])
    tenancy = audited.add_tenancy(pid, room, move_in=date(2025, 1, 1), reported_by="房东")
    audited.record_move_out(tenancy, move_out=date(2025, 5, 1), reported_by="房东")
    audited.purge_face_data(pid)
    audited.record_consent(pid, consent())
    audited.withdraw_consent(pid, recorded_by="王", alternative_note="人工核验")
    audited.remove_person(pid)
    assert actions(database) == [
        "place.create",
        "place.create",
        "place.create",
        "person.create",
        "person.status",
        "consent.record",
        "template.add",
        "template.delete",
        "tenancy.add",
        "tenancy.move_out",
        "template.purge",
        "consent.record",
        "consent.withdraw",
        "person.remove",
    ]
    log = AuditLog(database)
    created = log.recent(limit=1, action="person.create")[0]
    assert created.actor == "cli:tester" and created.target_id == str(pid)
    assert created.details["templates"] == 2
    assert log.recent(limit=1, action="template.purge")[0].details["templates"] == 2
    no_personal_data(database)
    assert verify_chain(database).ok


def test_a_refused_change_leaves_no_audit_entry(
    audited: RegistryService, database: Database
) -> None:
    village = audited.add_village("v")
    before = actions(database)
    with pytest.raises(Exception, match="consent"):
        audited.add_person(NewPerson(name=NAME, village_id=village), templates=[template(1)])
    pid = audited.add_person(NewPerson(name=NAME, village_id=village, id_number=ID_NUMBER))
    with pytest.raises(Exception, match="already registered"):
        audited.add_person(NewPerson(name="B", village_id=village, id_number=ID_NUMBER))
    assert actions(database) == [*before, "person.create"]
    assert AuditLog(database).recent(limit=1)[0].target_id == str(pid)


def test_accounts_audit_user_creation_and_logins(database: Database) -> None:
    auth = AuthService(database, AuditLog(database), WebSettings())
    uid = auth.create_user(
        local_principal("root"), "wang", "correct horse battery", UserRole.STAFF
    ).id
    assert auth.login("wang", "correct horse battery", client="test").principal.user_id == uid
    for name, password in (("wang", "wrong password!"), ("nobody", "whatever123")):
        with pytest.raises(Unauthenticated):
            auth.login(name, password, client="test")
    entries = list(reversed(AuditLog(database).recent(limit=4)))
    assert [e.action for e in entries] == ["user.create", "login", "login_failed", "login_failed"]
    assert entries[0].actor == "cli:root" and entries[0].target_id == str(uid)
    assert entries[1].actor == f"user:{uid}"
    assert entries[2].details == {"reason": "bad_password"} and entries[2].target_id == str(uid)
    assert entries[3].details == {"reason": "unknown_user"} and entries[3].target_id is None
    for entry in entries:  # neither the username tried nor the password
        assert "nobody" not in json.dumps(dict(entry.details)) and entry.actor != "nobody"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_export_is_private_audited_and_leaves_no_temp_file_on_failure(
    audited: RegistryService,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    village = audited.add_village("v")
    audited.add_person(NewPerson(name=NAME, village_id=village, phone=PHONE))
    target = tmp_path / "people.csv"
    assert write_export(audited, target) == 1
    assert target.stat().st_mode & 0o777 == 0o600
    entry = AuditLog(database).recent(limit=1)[0]
    assert entry.action == "registry.export" and entry.details["rows"] == 1
    no_personal_data(database)

    real_rows = export_module.export_rows

    def failing(service: RegistryService, *, village_id: int | None = None) -> Iterator[list[str]]:
        yield from real_rows(service, village_id=village_id)
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "export_rows", failing)
    other = tmp_path / "again.csv"
    with pytest.raises(OSError, match="disk full"):
        write_export(audited, other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.csv"]
    assert AuditLog(database).recent(limit=1)[0].seq == entry.seq  # no entry for it
