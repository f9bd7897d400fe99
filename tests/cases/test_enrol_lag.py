"""A sighting decided "unknown" before a 补录 / person X, grouped after it: known, no new case."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from cunan.cases.consumer import CaseConsumer
from cunan.matching.live import LiveGallery
from cunan.pipeline.store import EventOutbox
from cunan.registry.records import ConsentInput, NewPerson, TemplateInput
from cunan.registry.service import NewTenancy
from tests.cases.conftest import MODEL, T0, Env, near, unit

STAFF = "user:7"


def _close_as_known(env: Env, case_id: int, outcome: str) -> int:
    """Record 补录 (``enrol``) or "is registered person X" (``person``); the person's id."""
    consent = ConsentInput(collected_by="网格员 王", collected_at=T0)
    if outcome == "enrol":
        landlord = env.registry.add_landlord(env.village, "房东 李")
        house = env.registry.add_house(env.village, "桃源路 1号", landlord_id=landlord)
        room = env.registry.add_room(house, "101")
        return env.cases.enrol(
            case_id,
            actor=STAFF,
            person=NewPerson(name="新租客", village_id=env.village),
            consent=consent,
            tenancy=NewTenancy(room_id=room, move_in=date(2025, 6, 1), reported_by=STAFF),
        ).person_id
    x = env.registry.add_person(
        NewPerson(name="老住户", village_id=env.village),
        consent=consent,
        # An old photo the camera no longer matches: the miss this outcome fixes.
        templates=[TemplateInput(vector=unit(99), model_id=MODEL)],
    )
    env.cases.registered_person(case_id, x, actor=STAFF)
    return x


@pytest.mark.parametrize("outcome", ["enrol", "person"])
def test_a_sighting_decided_before_the_outcome_and_grouped_after_it_raises_no_case(
    env: Env, outcome: str
) -> None:
    live = LiveGallery.load(env.registry, model_id=MODEL, dim=128)
    env.registry.add_listener(live)  # the camera's matcher, told at commit
    consumer = CaseConsumer(env.cases, EventOutbox(env.database))
    face = unit(1)
    env.sighting(face, camera="gate")
    [opened] = consumer.poll()
    assert opened.opened and opened.alerted

    # 20 minutes later the face passes the market camera; its matcher does not know the
    # person yet, so the track is decided and stored "unknown". The consumer lags behind.
    env.clock.advance(minutes=20)
    probe = near(face, 2)
    [decided] = live.identify(probe)
    assert decided.person_id is None
    second = env.sighting(probe, camera="market")
    env.clock.advance(minutes=1)
    person_id = _close_as_known(env, opened.case_id, outcome)
    [now] = live.identify(probe)
    # Decided now, the face would be the person's (known after 补录; X's nearest template
    # now, where X's old photo alone was far off).
    assert now.candidates[0].person_id == person_id
    assert outcome != "enrol" or now.person_id == person_id
    alerts = len(env.channel.sent)

    [grouped] = consumer.poll()

    assert (grouped.sighting_id, grouped.case_id) == (second, opened.case_id)
    assert (grouped.opened, grouped.alerted, grouped.suppressed_by) == (False, False, "known")
    assert env.cases.list_cases() == []  # no case for a registered person
    assert len(env.channel.sent) == alerts
    view = env.cases.get(opened.case_id)
    assert (view.status, view.outcome, view.person_id, view.sightings) == (
        "closed",
        outcome,
        person_id,
        2,
    )
    [member] = [m for m in env.cases.members(opened.case_id) if m.sighting_id == second]
    assert (member.alerted, member.suppressed_by) == (False, "known")


def _closed_by_enrol(env: Env, face: np.ndarray) -> tuple[int, datetime]:
    """A case of ``face`` closed by 补录 at T0 + 1 h; the case id and when it closed."""
    opened = env.cases.handle_sighting(env.sighting(face, camera="gate"))
    assert opened is not None
    env.clock.advance(hours=1)
    _close_as_known(env, opened.case_id, "enrol")
    closed_at = env.cases.get(opened.case_id).closed_at
    assert closed_at is not None
    return opened.case_id, closed_at


@pytest.mark.parametrize(
    "after_close",
    [
        # Seen in the morning, grouped after the 补录 at noon (the consumer was down).
        timedelta(hours=-3),
        # Seen just after the close by a camera process that had not polled the change yet.
        timedelta(minutes=5),
    ],
)
def test_a_sighting_seen_before_every_camera_knew_the_person_stays_quiet_as_known(
    env: Env, after_close: timedelta
) -> None:
    face = unit(1)
    case_id, closed_at = _closed_by_enrol(env, face)
    alerts = len(env.channel.sent)

    late = env.cases.handle_sighting(env.sighting(near(face, 2), at=closed_at + after_close))

    assert late is not None and (late.case_id, late.opened, late.alerted) == (case_id, False, False)
    assert late.suppressed_by == "known"
    assert env.cases.list_cases() == [] and len(env.channel.sent) == alerts


def test_a_sighting_decided_unknown_well_after_the_outcome_opens_a_case(env: Env) -> None:
    """The cameras had the person for longer than ``known_lag_minutes`` and still said
    unknown: a miss (or someone else) that staff should see, as a new case."""
    face = unit(1)
    case_id, closed_at = _closed_by_enrol(env, face)
    lag = timedelta(minutes=env.cases.settings.known_lag_minutes)

    later = env.cases.handle_sighting(
        env.sighting(near(face, 2), at=closed_at + lag + timedelta(minutes=1))
    )

    assert later is not None and later.opened and later.alerted and later.case_id != case_id
    assert env.cases.get(case_id).sightings == 1


def test_another_face_seen_before_the_outcome_still_opens_its_own_case(env: Env) -> None:
    case_id, closed_at = _closed_by_enrol(env, unit(1))

    stranger = env.cases.handle_sighting(
        env.sighting(unit(2), at=closed_at - timedelta(minutes=30))
    )

    assert stranger is not None and stranger.opened and stranger.case_id != case_id
