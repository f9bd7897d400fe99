"""Cases on a real database: grouping, lifecycle and audit, outcomes, suppression, alerts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cunan.cases.consumer import CaseConsumer
from cunan.cases.service import CaseStateError
from cunan.pipeline.store import EventOutbox
from cunan.registry.errors import ConsentRequiredError
from cunan.registry.records import ConsentInput, NewPerson
from cunan.registry.service import NewTenancy
from tests.cases.conftest import T0, Env, near, unit
from tests.cli_helpers import staff_account

STAFF = "user:7"


def transitions(env: Env, case_id: int) -> list[tuple[str, str]]:
    entries = env.audit.recent(limit=500, action="case.transition")
    return [
        (str(e.details["event"]), e.actor) for e in reversed(entries) if e.target_id == str(case_id)
    ]


def test_same_face_groups_across_cameras_and_days_and_ranks_first(env: Env) -> None:
    face, other = unit(1), unit(2)
    first = env.cases.handle_sighting(env.sighting(face, camera="gate"))
    assert first is not None and first.opened and first.alerted
    for day in (1, 2):
        out = env.cases.handle_sighting(
            env.sighting(near(face, day), camera="market", at=T0 + timedelta(days=day))
        )
        assert out is not None and out.case_id == first.case_id and not out.opened
    stranger = env.cases.handle_sighting(env.sighting(other))
    assert stranger is not None and stranger.opened and stranger.case_id != first.case_id
    env.cases.handle_sighting(env.sighting(near(other, 9), at=T0 + timedelta(hours=2)))
    ranked = env.cases.list_cases()
    assert [v.id for v in ranked] == [first.case_id, stranger.case_id]
    view = ranked[0]
    assert (view.sightings, view.distinct_days, view.cameras) == (3, 3, ("gate", "market"))
    assert view.first_seen_at == T0 and view.last_seen_at == T0 + timedelta(days=2)
    crops = env.cases.best_crops(view.id)
    assert crops and all(jpeg.startswith(b"\xff\xd8") for _, jpeg in crops)


def test_known_and_undecided_never_raise_a_case(env: Env) -> None:
    assert env.cases.handle_sighting(env.sighting(None, decision="known")) is None
    assert env.cases.handle_sighting(env.sighting(None, decision="undecided")) is None
    assert env.cases.list_cases() == [] and env.channel.sent == []


def test_consumer_groups_outbox_events_once(env: Env) -> None:
    ids = [
        env.sighting(unit(1)),
        env.sighting(near(unit(1), 3)),
        env.sighting(None, decision="known"),
    ]
    consumer = CaseConsumer(env.cases, EventOutbox(env.database))
    outcomes = consumer.poll()
    assert [o.sighting_id for o in outcomes] == ids[:2]
    assert consumer.poll() == []  # acknowledged
    assert env.cases.handle_sighting(ids[0]) is None  # a redelivery is a no-op


def test_lifecycle_is_audited_with_who_and_ids_only(env: Env) -> None:
    case_id = env.cases.handle_sighting(env.sighting(unit(1)))
    assert case_id is not None
    staff = staff_account(env.database, "wang")
    view = env.cases.assign(case_id.case_id, staff, actor="user:1")
    assert view.status == "assigned" and view.deadline_at == T0 + timedelta(days=3)
    assert not view.overdue
    env.clock.advance(days=4)
    assert env.cases.get(view.id).overdue
    env.cases.escalate(view.id, "张三 may be wanted, ID 330102199001011234", actor=STAFF)
    closed = env.cases.get(view.id)
    assert closed.status == "closed" and closed.outcome == "escalate"
    with pytest.raises(CaseStateError):
        env.cases.assign(view.id, staff, actor=STAFF)
    assert env.cases.reopen(view.id, actor="user:1").status == "open"
    assert transitions(env, view.id)[-4:] == [
        ("open", "system"),
        ("assign", "user:1"),
        ("outcome", STAFF),
        ("reopen", "user:1"),
    ]
    text = " ".join(str(e.details) for e in env.audit.recent(limit=50))
    assert "张三" not in text and "330102" not in text


def test_merge_and_split(env: Env) -> None:
    a = env.cases.handle_sighting(env.sighting(unit(1)))
    b = env.cases.handle_sighting(env.sighting(unit(2)))
    assert a is not None and b is not None
    merged = env.cases.merge(a.case_id, b.case_id, actor=STAFF)
    assert merged.sightings == 2 and env.cases.get(b.case_id).status == "merged"
    new = env.cases.split(a.case_id, [b.sighting_id], actor=STAFF)
    assert new.sightings == 1 and env.cases.get(a.case_id).sightings == 1
    # The split-off face now links to its new case, not the old one.
    again = env.cases.handle_sighting(env.sighting(near(unit(2), 5)))
    assert again is not None and again.case_id == new.id
    events = [e for e, _ in transitions(env, a.case_id)]
    assert "merge_in" in events and "split" in events


def _landlord_room(env: Env) -> tuple[int, int]:
    landlord = env.registry.add_landlord(env.village, "房东 李")
    house = env.registry.add_house(env.village, "1号", landlord_id=landlord)
    return landlord, env.registry.add_room(house, "101")


class Listener:
    def __init__(self) -> None:
        self.added: list[int] = []

    def on_added(self, template_id: int, person_id: int, vector: object, model_id: str) -> None:
        self.added.append(person_id)

    def on_removed(self, template_ids: list[int]) -> None:
        pass


def test_enrol_creates_person_tenancy_consent_templates_in_one_go(env: Env) -> None:
    listener = Listener()
    env.registry.add_listener(listener)
    face = unit(1)
    case = env.cases.handle_sighting(env.sighting(face))
    assert case is not None
    env.cases.handle_sighting(env.sighting(near(face, 2), camera="market"))
    landlord, room = _landlord_room(env)
    result = env.cases.enrol(
        case.case_id,
        actor=STAFF,
        person=NewPerson(name="新租客", village_id=env.village),
        consent=ConsentInput(collected_by="网格员 王", collected_at=T0),
        tenancy=NewTenancy(room_id=room, move_in=date(2025, 6, 1), reported_by=STAFF),
    )
    assert len(result.template_ids) == 2 and listener.added == [result.person_id] * 2
    [tenancy] = env.registry.tenancies_of(result.person_id)
    assert tenancy.room_id == room and tenancy.landlord_id == landlord
    assert env.registry.get_person(result.person_id).has_valid_consent
    view = env.cases.get(case.case_id)
    assert view.status == "closed" and view.outcome == "enrol"
    assert view.person_id == result.person_id
    with pytest.raises(CaseStateError):  # closed: a second outcome is refused
        env.cases.false_alarm(case.case_id, actor=STAFF)


def test_registered_person_needs_valid_consent(env: Env) -> None:
    case = env.cases.handle_sighting(env.sighting(unit(1)))
    assert case is not None
    bare = env.registry.add_person(NewPerson(name="无同意", village_id=env.village))
    with pytest.raises(ConsentRequiredError):
        env.cases.registered_person(case.case_id, bare, actor=STAFF)
    assert env.cases.get(case.case_id).status == "open"
    env.registry.record_consent(bare, ConsentInput(collected_by="网格员 王", collected_at=T0))
    ids = env.cases.registered_person(case.case_id, bare, actor=STAFF)
    assert [t.template_id for t in env.registry.templates_of(bare)] == ids


def test_visitor_quiet_until_expiry_then_purged(env: Env) -> None:
    face = unit(1)
    case = env.cases.handle_sighting(env.sighting(face))
    assert case is not None
    until = T0 + timedelta(days=5)
    env.cases.visitor(case.case_id, until, actor=STAFF)
    sent = len(env.channel.sent)
    quiet = env.cases.handle_sighting(env.sighting(near(face, 3), at=T0 + timedelta(days=2)))
    assert quiet is not None and quiet.suppressed_by == "visitor" and not quiet.alerted
    assert quiet.case_id == case.case_id and len(env.channel.sent) == sent
    env.clock.advance(days=6)
    assert env.cases.purge_expired_visitors() == 1
    back = env.cases.handle_sighting(env.sighting(near(face, 4), at=T0 + timedelta(days=6)))
    assert back is not None and back.opened and back.alerted
    assert env.audit.recent(limit=1, action="purge")[0].details["deleted"] == 1


def test_false_alarm_is_a_negative_example(env: Env) -> None:
    poster = unit(1)
    case = env.cases.handle_sighting(env.sighting(poster))
    assert case is not None
    env.cases.false_alarm(case.case_id, actor=STAFF)
    sent = len(env.channel.sent)
    again = env.cases.handle_sighting(env.sighting(near(poster, 2), at=T0 + timedelta(days=9)))
    assert again is not None and again.suppressed_by == "negative" and not again.alerted
    assert len(env.channel.sent) == sent and env.cases.list_cases() == []
    other = env.cases.handle_sighting(env.sighting(unit(5)))
    assert other is not None and other.opened  # only that face is quiet


def test_per_camera_cooldown_attaches_quietly(env: Env) -> None:
    face = unit(1)
    opened = env.cases.handle_sighting(env.sighting(face, camera="gate"))
    assert opened is not None
    soon = env.cases.handle_sighting(
        env.sighting(near(face, 2), camera="gate", at=T0 + timedelta(minutes=10))
    )
    assert soon is not None and soon.suppressed_by == "cooldown" and not soon.alerted
    elsewhere = env.cases.handle_sighting(
        env.sighting(near(face, 3), camera="market", at=T0 + timedelta(minutes=12))
    )
    assert elsewhere is not None and elsewhere.alerted
    later = env.cases.handle_sighting(
        env.sighting(near(face, 4), camera="gate", at=T0 + timedelta(minutes=45))
    )
    assert later is not None and later.alerted
    assert env.cases.get(opened.case_id).sightings == 4
    kinds = [n.kind for n in env.channel.sent]
    assert kinds == ["case.opened", "case.sighted", "case.sighted"]
    for n in env.channel.sent:  # ids and counts only, no face data
        assert set(n.data) == {"case_id", "sighting_id", "camera", "sightings"}
