"""End to end: a known sighting in the outbox closes that tenant's "please confirm" task.

``cunan serve`` wires ``CaseConsumer(on_known=...)`` to ``NotSeenReconciler.on_sighting``;
this drives the same wiring through the real outbox, consumer and duty service.
"""

from __future__ import annotations

from datetime import date, timedelta

from cunan.cases.consumer import CONSUMER, CaseConsumer
from cunan.duties.clock import start_of_day
from cunan.duties.daily import Duties
from cunan.duties.settings import DutySettings
from cunan.pipeline.store import EventOutbox
from tests.cases.conftest import Env, unit
from tests.duties.helpers import Village, add_tenant

MOVE_IN = date(2025, 1, 1)


def test_a_known_sighting_closes_the_tenants_task_and_no_one_elses(env: Env) -> None:
    settings = DutySettings()
    duties = Duties.build(env.database, env.registry, settings, clock=env.clock)
    landlord = env.registry.add_landlord(env.village, "房东 李")
    house = env.registry.add_house(env.village, "桃源路1号", landlord_id=landlord)
    village = Village(
        id=env.village,
        landlord=landlord,
        houses=[house],
        rooms=[env.registry.add_room(house, f"{n}01", capacity=1) for n in (1, 2)],
    )
    seen = add_tenant(env.registry, village, village.rooms[0], move_in=MOVE_IN, seed=1)
    unseen = add_tenant(env.registry, village, village.rooms[1], move_in=MOVE_IN, seed=2)

    # Nobody has seen either tenant since they moved in, N days ago: a task each.
    moved_in = start_of_day(MOVE_IN, settings.zone)
    env.clock.now = moved_in + timedelta(days=settings.not_seen_days)
    duties.reconciler.reconcile()
    tasks = {t.person_id: t for t in duties.reconciler.tasks()}
    assert set(tasks) == {seen, unseen}

    # A camera recognises one of them; a stranger passes too.
    env.clock.advance(hours=2)
    known = env.sighting(None, decision="known", person_id=seen, camera="east-gate")
    stranger = env.sighting(unit(7), camera="east-gate")
    outbox = EventOutbox(env.database)
    # Exactly as `cunan serve` wires it.
    consumer = CaseConsumer(env.cases, outbox, on_known=duties.reconciler.on_sighting)
    outcomes = consumer.poll()

    assert [o.sighting_id for o in outcomes] == [stranger] and outcomes[0].opened
    assert outbox.pending(CONSUMER) == []
    assert [t.person_id for t in duties.reconciler.tasks()] == [unseen]
    closed = {t.person_id: t for t in duties.reconciler.tasks(open_only=False)}
    assert (closed[seen].status, closed[seen].outcome) == ("closed", "sighted")
    assert closed[seen].closed_at == env.clock.now
    assert (closed[unseen].status, closed[unseen].outcome) == ("open", None)
    [entry] = [e for e in env.audit.recent(limit=5, action="task.close") if e.seq > env.audit_start]
    assert entry.target_id == str(seen) and entry.details["tasks_closed"] == 1
    assert known not in {o.sighting_id for o in outcomes}  # a known person raises no case
