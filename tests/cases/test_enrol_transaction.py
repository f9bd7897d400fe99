"""补录 and "is registered person X" are one transaction: registry part, case close, audit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import numpy as np
import pytest
from sqlalchemy import update

from cunan.audit.chain import verify_chain
from cunan.cases.service import CaseStateError
from cunan.cases.views import EnrolResult
from cunan.matching.live import LiveGallery
from cunan.registry.errors import ConsentRequiredError, DuplicateIdNumberError, RoomCapacityError
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput, Vector
from cunan.registry.service import NewTenancy
from cunan.storage.case_tables import Case
from cunan.storage.database import Database
from cunan.storage.errors import ConstraintViolationError
from tests.cases.conftest import MODEL, T0, Env, near, unit, wait_for_lock_waiters
from tests.registry.tables import REGISTRY_TABLES, row_counts

STAFF = "user:7"
ID_NUMBER = "330102199001011234"
#: What the 补录 / person-X outcomes write, besides the registry's tables.
TABLES = (*REGISTRY_TABLES, "cases", "case_sightings", "case_quiet_faces")


class Recorder:
    """A template listener that remembers every call it gets."""

    def __init__(self) -> None:
        self.added: list[tuple[int, int]] = []
        self.removed: list[int] = []

    def on_added(self, template_id: int, person_id: int, vector: Vector, model_id: str) -> None:
        self.added.append((template_id, person_id))

    def on_removed(self, template_ids: list[int]) -> None:
        self.removed.extend(template_ids)


@dataclass
class Scene:
    env: Env
    live: LiveGallery
    recorder: Recorder
    face: np.ndarray
    case_id: int
    landlord: int
    room: int


@pytest.fixture
def scene(env: Env) -> Scene:
    """Five registered people, the live gallery following the registry, and an open case
    of a stranger seen twice."""
    for seed in range(10, 15):
        env.registry.add_person(
            NewPerson(name=f"村民{seed}", village_id=env.village),
            consent=_consent(),
            templates=[_template(unit(seed))],
        )
    live = LiveGallery.load(env.registry, model_id=MODEL, dim=128)
    recorder = Recorder()
    env.registry.add_listener(live)
    env.registry.add_listener(recorder)
    face = unit(1)
    opened = env.cases.handle_sighting(env.sighting(face))
    assert opened is not None
    env.cases.handle_sighting(env.sighting(near(face, 2), camera="market"))
    landlord = env.registry.add_landlord(env.village, "房东 李")
    house = env.registry.add_house(env.village, "桃源路 1号", landlord_id=landlord)
    room = env.registry.add_room(house, "101", capacity=1)
    return Scene(env, live, recorder, face, opened.case_id, landlord, room)


def _consent() -> ConsentInput:
    return ConsentInput(collected_by="网格员 王", collected_at=T0)


def _template(vector: np.ndarray) -> TemplateInput:
    return TemplateInput(vector=vector, model_id=MODEL)


def _enrol(s: Scene, *, room: int | None = None, id_number: str | None = None) -> EnrolResult:
    return s.env.cases.enrol(
        s.case_id,
        actor=STAFF,
        person=NewPerson(name="新租客", village_id=s.env.village, id_number=id_number),
        consent=_consent(),
        tenancy=NewTenancy(
            room_id=room if room is not None else s.room,
            move_in=date(2025, 6, 1),
            reported_by=STAFF,
        ),
    )


def case_row(database: Database, case_id: int) -> dict[str, object]:
    with database.transaction() as session:
        row = session.get(Case, case_id)
        assert row is not None
        return {c.key: getattr(row, c.key) for c in Case.__table__.columns}


@contextmanager
def refuse_closing_a_case_whose_person_has_templates(database: Database) -> Iterator[None]:
    """A real database refusal at the very last step of both outcomes.

    The trigger refuses to close a case once its person has face templates, so it can only
    fire after the registry part has written them (before that, the close would succeed and
    the test would fail). Dropped again afterwards: the database outlives the test.
    """
    if database.is_sqlite:
        create = [
            "CREATE TRIGGER test_refuse_close BEFORE UPDATE ON cases "
            "WHEN NEW.status = 'closed' AND NEW.person_id IN (SELECT person_id FROM "
            "face_templates) BEGIN SELECT RAISE(ABORT, 'test trigger: closing refused'); END"
        ]
        drop = ["DROP TRIGGER test_refuse_close"]
    else:
        create = [
            "CREATE FUNCTION test_refuse_close() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.status = 'closed' AND EXISTS (SELECT 1 FROM face_templates "
            "WHERE person_id = NEW.person_id) THEN RAISE EXCEPTION "
            "'test trigger: closing refused' USING ERRCODE = 'check_violation'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER test_refuse_close BEFORE UPDATE ON cases FOR EACH ROW "
            "EXECUTE FUNCTION test_refuse_close()",
        ]
        drop = ["DROP TRIGGER test_refuse_close ON cases", "DROP FUNCTION test_refuse_close()"]
    with database.engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with database.engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


def assert_untouched(s: Scene, before: dict[str, int], case: dict[str, object]) -> None:
    """No row written anywhere (people, tenancies, consents, templates, photos, change feed,
    audit, cases), the case as it was, and the index never told."""
    assert row_counts(s.env.database, TABLES) == before
    assert case_row(s.env.database, s.case_id) == case
    assert s.recorder.added == [] and s.recorder.removed == []
    assert len(s.live) == 5 and s.live.people == 5
    # Nor is there anything in the change feed for the index to catch up on later.
    assert s.live.catch_up(s.env.registry) == 0


# -- (1) the case part fails after the registry part wrote --------------------------------


def test_enrol_refused_at_the_case_close_leaves_no_person_behind(scene: Scene) -> None:
    before = row_counts(scene.env.database, TABLES)
    case = case_row(scene.env.database, scene.case_id)
    with (
        refuse_closing_a_case_whose_person_has_templates(scene.env.database),
        pytest.raises(ConstraintViolationError, match="closing refused"),
    ):
        _enrol(scene)
    assert_untouched(scene, before, case)


def test_person_x_refused_at_the_case_close_adds_no_template(scene: Scene) -> None:
    env = scene.env
    x = env.registry.add_person(
        NewPerson(name="老住户", village_id=env.village), consent=_consent()
    )
    before, case = row_counts(env.database, TABLES), case_row(env.database, scene.case_id)
    with (
        refuse_closing_a_case_whose_person_has_templates(env.database),
        pytest.raises(ConstraintViolationError, match="closing refused"),
    ):
        env.cases.registered_person(scene.case_id, x, actor=STAFF)
    assert_untouched(scene, before, case)
    assert env.registry.templates_of(x) == []


def test_a_case_closed_by_someone_else_first_enrols_nobody(scene: Scene) -> None:
    env = scene.env
    env.cases.false_alarm(scene.case_id, actor="user:8")
    before, case = row_counts(env.database, TABLES), case_row(env.database, scene.case_id)
    with pytest.raises(CaseStateError, match="is closed"):
        _enrol(scene)
    with pytest.raises(CaseStateError, match="is closed"):
        env.cases.registered_person(scene.case_id, 1, actor=STAFF)
    assert_untouched(scene, before, case)


def _wait_until_a_transaction_waits_for_a_lock(database: Database) -> None:
    """PostgreSQL: block until another session of this database waits for a row lock."""
    failure = "the enrolment never waited for the other staff member's transaction"
    wait_for_lock_waiters(database, failure=failure)


def test_a_case_closed_concurrently_enrols_nobody_and_keeps_the_other_outcome(
    scene: Scene,
) -> None:
    """Another staff member's close commits while the 补录 is under way. On PostgreSQL the
    enrolment is made to wait for it (a row lock), then finds the case closed; without the
    lock it would enrol and overwrite the other outcome. On SQLite writers never overlap, so
    the enrolment simply runs after the other close."""
    env = scene.env
    before = row_counts(env.database, TABLES)
    errors: list[BaseException] = []

    def enrol() -> None:
        try:
            _enrol(scene)
        except Exception as exc:  # noqa: BLE001 - handed to the test's thread below
            errors.append(exc)

    worker = threading.Thread(target=enrol)
    with env.database.transaction() as other:
        other.execute(
            update(Case)
            .where(Case.id == scene.case_id)
            .values(status="closed", outcome="false_alarm", outcome_by="user:8", closed_at=T0)
        )
        worker.start()
        if not env.database.is_sqlite:
            _wait_until_a_transaction_waits_for_a_lock(env.database)
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], CaseStateError), errors
    after = case_row(env.database, scene.case_id)
    assert (after["outcome"], after["outcome_by"], after["person_id"]) == (
        "false_alarm",
        "user:8",
        None,
    )
    assert row_counts(env.database, TABLES) == before
    assert scene.recorder.added == [] and len(scene.live) == 5


# -- (2) the registry part fails: the case stays open and unchanged ----------------------


@pytest.mark.parametrize("refusal", ["room over capacity", "duplicate ID number"])
def test_a_registry_refusal_leaves_the_case_open_and_unchanged(scene: Scene, refusal: str) -> None:
    env = scene.env
    if refusal == "room over capacity":
        tenant = env.registry.add_person(NewPerson(name="先住", village_id=env.village))
        env.registry.add_tenancy(tenant, scene.room, move_in=date(2025, 5, 1), reported_by="房东")
        expected: type[Exception] = RoomCapacityError
    else:
        env.registry.add_person(NewPerson(name="同号", village_id=env.village, id_number=ID_NUMBER))
        expected = DuplicateIdNumberError
    before, case = row_counts(env.database, TABLES), case_row(env.database, scene.case_id)
    with pytest.raises(expected):
        _enrol(scene, id_number=ID_NUMBER if expected is DuplicateIdNumberError else None)
    assert_untouched(scene, before, case)
    assert case["status"] == "open"


def test_person_x_without_consent_leaves_the_case_open_and_unchanged(scene: Scene) -> None:
    env = scene.env
    bare = env.registry.add_person(NewPerson(name="无同意", village_id=env.village))
    before, case = row_counts(env.database, TABLES), case_row(env.database, scene.case_id)
    with pytest.raises(ConsentRequiredError):
        env.cases.registered_person(scene.case_id, bare, actor=STAFF)
    assert_untouched(scene, before, case)


# -- (3) success -----------------------------------------------------------------------------


def test_enrolled_person_is_recognised_as_soon_as_enrol_returns(scene: Scene) -> None:
    env = scene.env
    start = max((e.seq for e in env.audit.recent(limit=1)), default=0)
    result = _enrol(scene)
    # No catch-up, no reload: the listener delivery at commit is all the index needed.
    [found] = scene.live.identify(near(scene.face, 77))
    assert found.person_id == result.person_id
    assert scene.recorder.added == [(t, result.person_id) for t in result.template_ids]
    assert len(result.template_ids) == 2 and scene.recorder.removed == []
    view = env.cases.get(scene.case_id)
    assert (view.status, view.outcome, view.person_id) == ("closed", "enrol", result.person_id)
    [tenancy] = env.registry.tenancies_of(result.person_id)
    assert (tenancy.room_id, tenancy.landlord_id) == (scene.room, scene.landlord)
    # The registry's and the case's audit entries, one after the other, one transaction.
    entries = [e for e in reversed(env.audit.recent(limit=100)) if e.seq > start]
    assert [(e.action, e.actor) for e in entries] == [
        ("person.create", "system"),
        ("case.transition", STAFF),
    ]
    assert entries[1].details["person_id"] == result.person_id
    assert verify_chain(env.database).ok


def test_person_x_is_recognised_from_the_case_faces_as_soon_as_it_returns(scene: Scene) -> None:
    env = scene.env
    x = env.registry.add_person(
        NewPerson(name="老住户", village_id=env.village),
        consent=_consent(),
        templates=[_template(unit(99))],  # an old photo that no longer matches
    )
    probe = near(scene.face, 77)
    [missed] = scene.live.identify(probe)
    assert missed.person_id is None  # a stranger to the matcher: the miss this outcome fixes
    scene.recorder.added.clear()
    ids = env.cases.registered_person(scene.case_id, x, actor=STAFF)
    [found] = scene.live.identify(probe)
    assert found.candidates[0].person_id == x
    before = {c.person_id: c.distance for c in missed.candidates}
    assert found.candidates[0].distance < before.get(x, float("inf"))
    assert scene.recorder.added == [(t, x) for t in ids] and len(ids) == 2
    assert env.cases.get(scene.case_id).person_id == x
