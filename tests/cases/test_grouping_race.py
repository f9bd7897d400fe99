"""A sighting grouped while staff close its case follows the outcome, never joins it as open.

PostgreSQL only: grouping reads the open cases without locks, so a staff member's outcome can
commit between that read and the attach. SQLite admits one writer at a time, so there the
grouping simply runs before or after the outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text

from cunan.cases.views import SightingOutcome
from cunan.registry.records import ConsentInput, NewPerson
from cunan.storage.audit_tables import AUDIT_APPEND_LOCK_KEY
from cunan.storage.database import Database
from tests.cases.conftest import T0, Env, near, unit, wait_for_lock_waiters

STAFF = "user:8"


def _wait_for_waiters(database: Database, events: tuple[str, ...]) -> None:
    """Block until another session of this database waits for a lock of one of ``events``
    (``advisory``: the audit append lock; ``transactionid`` / ``tuple``: a row lock)."""
    failure = f"no transaction ever waited for a {'/'.join(events)} lock"
    wait_for_lock_waiters(database, events, failure=failure)


def race(env: Env, staff: Callable[[], object], sighting_id: int) -> SightingOutcome | None:
    """Run ``staff`` (an outcome on a case) and the grouping of ``sighting_id`` so that the
    grouping reads the case as open, then has to wait for the outcome to commit.

    The outcome locks its case first and takes the audit append lock last; the test holds
    that lock, so the outcome stops halfway with its case locked. Grouping then starts,
    reads the case (still open to it), and waits for the case's row lock. Releasing the
    audit lock lets the outcome commit, then grouping goes on."""
    errors: list[BaseException] = []
    outcomes: list[SightingOutcome | None] = []

    def run(work: Callable[[], object], sink: list[SightingOutcome | None] | None) -> None:
        try:
            result = work()
            if sink is not None:
                assert result is None or isinstance(result, SightingOutcome)
                sink.append(result)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
            errors.append(exc)

    outcome_thread = threading.Thread(target=run, args=(staff, None))
    grouping_thread = threading.Thread(
        target=run, args=(lambda: env.cases.handle_sighting(sighting_id), outcomes)
    )
    with env.database.engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_APPEND_LOCK_KEY})
        outcome_thread.start()
        _wait_for_waiters(env.database, ("advisory",))
        grouping_thread.start()
        _wait_for_waiters(env.database, ("transactionid", "tuple"))
        holder.rollback()  # releases the audit lock: the outcome commits
    outcome_thread.join()
    grouping_thread.join()
    assert errors == []
    [outcome] = outcomes
    return outcome


@pytest.fixture
def postgres(env: Env) -> Env:
    if env.database.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite's single writer never lets the two overlap")
    return env


def _open_case(env: Env) -> tuple[int, int]:
    """A case of face 1 opened at the gate; and a later sighting of that face at the market,
    not yet grouped (it would alert: another camera, no cooldown)."""
    opened = env.cases.handle_sighting(env.sighting(unit(1), camera="gate"))
    assert opened is not None and opened.opened
    later = env.sighting(near(unit(1), 2), camera="market", at=T0 + timedelta(hours=1))
    return opened.case_id, later


@pytest.mark.parametrize(
    ("outcome", "quiet"),
    [("false_alarm", "negative"), ("visitor", "visitor"), ("person", "known")],
)
def test_a_sighting_of_a_case_closed_meanwhile_stays_quiet_by_its_outcome(
    postgres: Env, outcome: str, quiet: str
) -> None:
    env = postgres
    case_id, later = _open_case(env)
    staff: Callable[[], object]
    if outcome == "false_alarm":
        staff = lambda: env.cases.false_alarm(case_id, actor=STAFF)  # noqa: E731
    elif outcome == "visitor":
        staff = lambda: env.cases.visitor(case_id, T0 + timedelta(days=5), actor=STAFF)  # noqa: E731
    else:
        x = env.registry.add_person(
            NewPerson(name="老住户", village_id=env.village),
            consent=ConsentInput(collected_by="网格员 王", collected_at=T0),
        )
        staff = lambda: env.cases.registered_person(case_id, x, actor=STAFF)  # noqa: E731
    alerts = len(env.channel.sent)

    result = race(env, staff, later)

    assert result is not None
    assert (result.case_id, result.alerted, result.suppressed_by) == (case_id, False, quiet)
    assert len(env.channel.sent) == alerts  # no "case seen again" for a closed case
    view = env.cases.get(case_id)
    assert (view.status, view.outcome, view.sightings) == ("closed", outcome, 2)
    [member] = [m for m in env.cases.members(case_id) if m.sighting_id == later]
    assert (member.alerted, member.suppressed_by) == (False, quiet)


@pytest.mark.parametrize("outcome", ["escalate", "visitor_expired"])
def test_a_sighting_of_a_case_closed_meanwhile_without_quiet_opens_a_new_case(
    postgres: Env, outcome: str
) -> None:
    """Escalated, or a visitor whose date is already past at the sighting: the face is not
    quiet, so the sighting opens a new case (closed cases are never joined) and alerts."""
    env = postgres
    case_id, later = _open_case(env)
    if outcome == "escalate":
        staff: Callable[[], object] = lambda: env.cases.escalate(  # noqa: E731
            case_id, "wanted", actor=STAFF
        )
    else:
        staff = lambda: env.cases.visitor(  # noqa: E731
            case_id, T0 + timedelta(minutes=30), actor=STAFF
        )

    result = race(env, staff, later)

    assert result is not None and result.opened and result.alerted
    assert result.case_id != case_id and result.suppressed_by is None
    assert [n.kind for n in env.channel.sent][-1] == "case.opened"
    assert env.cases.get(case_id).sightings == 1
    assert env.cases.get(result.case_id).status == "open"


def test_a_sighting_of_a_case_merged_meanwhile_joins_the_merge_target(postgres: Env) -> None:
    env = postgres
    face = unit(1)
    first = env.cases.handle_sighting(env.sighting(face, camera="gate"))
    second = env.cases.handle_sighting(
        env.sighting(near(face, 2, scale=0.02), camera="gate", at=T0 + timedelta(minutes=5))
    )
    assert first is not None and second is not None and second.case_id == first.case_id
    # Two cases of one face (staff split one off, then decide to merge them back).
    source = first.case_id
    target = env.cases.split(source, [second.sighting_id], actor=STAFF).id
    later = env.sighting(near(face, 3), camera="market", at=T0 + timedelta(hours=1))

    result = race(env, lambda: env.cases.merge(target, source, actor=STAFF), later)

    assert result is not None and result.case_id == target and result.alerted
    assert env.cases.get(source).status == "merged" and env.cases.get(source).sightings == 0
    assert {m.sighting_id for m in env.cases.members(target)} == {
        first.sighting_id,
        second.sighting_id,
        later,
    }


def test_a_sighting_quiet_by_a_false_alarm_reopened_meanwhile_joins_the_open_case(
    postgres: Env,
) -> None:
    """The quiet face matched, but staff reopened its case (which deletes the quiet faces)
    before the sighting was attached: it joins the reopened case and alerts."""
    env = postgres
    case_id, later = _open_case(env)
    env.cases.false_alarm(case_id, actor=STAFF)

    result = race(env, lambda: env.cases.reopen(case_id, actor=STAFF), later)

    assert result is not None and result.case_id == case_id
    assert (result.alerted, result.suppressed_by) == (True, None)
    assert env.cases.get(case_id).status == "open"
    assert [n.kind for n in env.channel.sent][-1] == "case.sighted"
