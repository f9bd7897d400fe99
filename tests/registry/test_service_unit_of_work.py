"""Units of work: several registry calls and the caller's own writes in one transaction."""

from __future__ import annotations

import contextlib
import threading
from datetime import date

import pytest

from cunan.audit.chain import verify_chain
from cunan.audit.log import AuditLog
from cunan.registry.errors import RoomCapacityError
from cunan.registry.records import NewPerson
from cunan.registry.service import NewTenancy, RegistryService, UnitOfWorkAbortedError
from cunan.storage.database import Database
from cunan.storage.tables import Village
from tests.registry.conftest import RecordingListener
from tests.registry.helpers import NOW, consent, template
from tests.registry.tables import row_counts


@pytest.fixture
def audit(database: Database) -> AuditLog:
    """The service audited, so the tests see that audit entries share the unit's fate too."""
    return AuditLog(database, clock=lambda: NOW)


@pytest.fixture
def full_room(service: RegistryService, village: int) -> int:
    """A room for one, already let."""
    room = service.add_room(service.add_house(village, "桃源路 8号"), "101", capacity=1)
    tenant = service.add_person(NewPerson(name="住户", village_id=village))
    service.add_tenancy(tenant, room, move_in=date(2025, 1, 1), reported_by="房东")
    return room


def _tenancy(room: int) -> NewTenancy:
    return NewTenancy(room_id=room, move_in=date(2025, 6, 1), reported_by="user:3")


def test_calls_and_own_writes_commit_together_and_listeners_hear_once_after_commit(
    service: RegistryService, village: int, database: Database, listener: RecordingListener
) -> None:
    start = len(AuditLog(database).recent(limit=1000))
    with service.unit_of_work() as unit:
        person = service.add_person(
            NewPerson(name="甲", village_id=village), consent=consent(), templates=[template(1)]
        )
        more = service.acting_as("user:9").add_templates(person, [template(2), template(3)])
        # Reads join the unit: they see its uncommitted rows (and do not wait for it).
        assert service.get_person(person).template_count == 3
        unit.session.add(Village(name="邻村"))  # the caller's own write
        service.record_audit("export", target_type="person", target_id=person)
        assert listener.added == []  # nothing is told before the commit
    ids = [t.template_id for t in service.templates_of(person)]
    assert ids[1:] == more
    assert listener.added == [(i, person, "dlib_resnet_v1") for i in ids]
    assert listener.removed == []
    assert {v.name for v in database_villages(database)} == {"桃源村", "邻村"}
    entries = list(reversed(AuditLog(database).recent(limit=1000)))[start:]
    assert [(e.action, e.actor) for e in entries] == [
        ("person.create", "system"),
        ("template.add", "user:9"),
        ("export", "system"),
    ]
    assert verify_chain(database).ok


def database_villages(database: Database) -> list[Village]:
    with database.transaction() as session:
        return list(session.query(Village).all())


def test_an_exception_in_the_block_rolls_everything_back_and_tells_nobody(
    service: RegistryService, village: int, database: Database, listener: RecordingListener
) -> None:
    room = service.add_room(service.add_house(village, "桃源路 9号"), "102", capacity=2)
    before, seq = row_counts(database), service.last_change_seq()
    with pytest.raises(RuntimeError, match="cancelled"), service.unit_of_work():
        service.add_person(
            NewPerson(name="乙", village_id=village),
            consent=consent(),
            templates=[template(1), template(2, photo=b"\xff\xd8jpeg")],
            tenancy=_tenancy(room),
        )
        raise RuntimeError("cancelled by the caller")
    assert row_counts(database) == before
    assert service.last_change_seq() == seq and listener.added == []


def test_a_failed_call_dooms_the_unit_even_if_the_caller_catches_the_error(
    service: RegistryService,
    village: int,
    full_room: int,
    database: Database,
    listener: RecordingListener,
) -> None:
    before = row_counts(database)
    with pytest.raises(UnitOfWorkAbortedError) as aborted, service.unit_of_work():
        # The person, consent and template rows are written before the room check refuses:
        # committing the rest of the unit would keep them.
        with pytest.raises(RoomCapacityError):
            service.add_person(
                NewPerson(name="丙", village_id=village),
                consent=consent(),
                templates=[template(4)],
                tenancy=_tenancy(full_room),
            )
        with pytest.raises(UnitOfWorkAbortedError):
            service.add_village("另一个村")
    assert isinstance(aborted.value.__cause__, RoomCapacityError)
    assert row_counts(database) == before and listener.added == []


def test_a_unit_inside_a_unit_joins_it_and_the_outermost_commits(
    service: RegistryService, village: int, database: Database, listener: RecordingListener
) -> None:
    with service.unit_of_work() as outer:
        with service.unit_of_work() as inner:
            assert inner is outer
            person = service.add_person(
                NewPerson(name="丁", village_id=village), consent=consent(), templates=[template(5)]
            )
        assert listener.added == []  # the inner block ending commits nothing
    assert [a[1] for a in listener.added] == [person]

    before = row_counts(database)
    with pytest.raises(UnitOfWorkAbortedError), service.unit_of_work():
        service.add_person(NewPerson(name="戊", village_id=village))
        # An inner unit that failed may have written half of its work: the outer one
        # cannot commit either, even though this error is swallowed.
        with contextlib.suppress(LookupError), service.unit_of_work():
            raise LookupError("inner failure")
    assert row_counts(database) == before


def test_another_threads_calls_do_not_join_the_unit(
    service: RegistryService, village: int, database: Database
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite: another thread's transaction waits for the unit to end")
    seen: list[list[int]] = []
    with service.unit_of_work():
        person = service.add_person(NewPerson(name="己", village_id=village))
        reader = threading.Thread(target=lambda: seen.append([p.id for p in service.list_people()]))
        reader.start()
        reader.join()
        assert seen == [[]]  # its own transaction: the uncommitted person is invisible
    assert [p.id for p in service.list_people()] == [person]
