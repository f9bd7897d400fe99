"""Retention purges: exactly the expired rows of each kind, dry runs, audit and the gallery."""

from __future__ import annotations

from datetime import date, timedelta
from types import ModuleType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cunan.audit.log import AuditLog
from cunan.duties.daily import Duties
from cunan.registry.service import RegistryService
from cunan.storage import case_tables
from cunan.storage.database import Database
from cunan.storage.enums import PersonStatus, TemplateChangeKind
from cunan.storage.pipeline_tables import OutboxEvent, Sighting
from tests.duties.helpers import (
    NOW,
    TODAY,
    FrozenClock,
    RecordingListener,
    Sightings,
    add_tenant,
    seed_village,
)


def _sightings(database: Database) -> dict[int, bool]:
    """Sighting id -> whether it still has its crop."""
    with database.transaction() as session:
        return {
            row.id: row.crop_ciphertext is not None and row.embedding_ciphertext is not None
            for row in session.scalars(select(Sighting))
        }


def _audit_seq(audit: AuditLog) -> int:
    newest = audit.recent(limit=1)
    return newest[0].seq if newest else 0


def test_purge_deletes_exactly_the_expired_rows_of_each_kind(
    database: Database,
    service: RegistryService,
    duties: Duties,
    clock: FrozenClock,
    sightings: Sightings,
    listener: RecordingListener,
    audit: AuditLog,
) -> None:
    village = seed_village(service, houses=2)
    leaving = add_tenant(service, village, village.rooms[0], templates=2, seed=1)
    later = add_tenant(service, village, village.rooms[1], seed=3)
    staying = add_tenant(service, village, village.rooms[2], seed=4)
    unreported = add_tenant(service, village, village.rooms[3], seed=5)
    day = timedelta(days=1)
    second = timedelta(seconds=1)
    s = sightings.add
    expired = {
        s(NOW - 30 * day - second),  # unknown, one second past 30 days
        s(NOW - 31 * day, decision="undecided"),
        s(NOW - 90 * day - second, decision="known", person_id=staying),
    }
    crop_cleared = {
        s(NOW - 90 * day, decision="known", person_id=staying),  # exactly 90 days: kept
        s(NOW - 45 * day, decision="known", person_id=staying),
    }
    untouched = {
        s(NOW - 30 * day),  # exactly 30 days: kept
        s(NOW - 10 * day, decision="undecided"),
        s(NOW - 29 * day, decision="known", person_id=staying),
    }
    no_crop = s(NOW - 60 * day, decision="known", person_id=staying, crop=False)

    # Departures: one reported for today (retention 0: due now), one reported for tomorrow,
    # one recorded through the registry without a report (the purge marks it departed first).
    departures = duties.departures
    departures.report(
        service.tenancies_of(leaving)[0].id, move_out=TODAY, reported_by="x", actor="a"
    )
    departures.report(
        service.tenancies_of(later)[0].id,
        move_out=TODAY + timedelta(days=1),
        reported_by="x",
        actor="a",
    )
    service.record_move_out(
        service.tenancies_of(unreported)[0].id, move_out=date(2025, 5, 20), reported_by="x"
    )
    leaving_templates = [t.template_id for t in service.templates_of(leaving)]
    unreported_templates = [t.template_id for t in service.templates_of(unreported)]
    templates_before = service.count_templates()
    # Outbox rows take the wall clock; put one event beyond the known-sightings retention.
    with database.transaction() as session:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == session.scalar(select(func.min(OutboxEvent.id))))
            .values(created_at=NOW - 91 * day)
        )
    before = _sightings(database)
    seq = _audit_seq(audit)
    feed = service.last_change_seq()

    dry = duties.purger.purge(dry_run=True, actor="cli:test")
    assert (dry.unknown_sightings, dry.known_sightings, dry.crops) == (2, 1, 2)
    assert (dry.templates, dry.people_archived) == (3, 2)
    assert dry.sighting_events == 1  # the event backdated above
    assert _sightings(database) == before
    assert service.count_templates() == templates_before
    assert service.get_person(unreported).status == PersonStatus.ACTIVE
    assert listener.removed == []
    assert _audit_seq(audit) == seq  # a dry run changes nothing, not even the audit log

    report = duties.purger.purge(actor="cli:test")
    assert report.as_dict() | {"cutoffs": None} == dry.as_dict() | {
        "dry_run": False,
        "people_marked_departed": 1,
        "cutoffs": None,
    }
    after = _sightings(database)
    assert set(after) == crop_cleared | untouched | {no_crop}
    assert not expired & set(after)
    assert {i for i, has_crop in after.items() if has_crop} == untouched

    # Templates of the departed gone, the gallery told at once and through the change feed.
    assert sorted(listener.removed) == sorted(leaving_templates + unreported_templates)
    removed = [c for c in service.changes_since(feed) if c.kind == TemplateChangeKind.REMOVED]
    assert sorted(c.template_id for c in removed) == sorted(listener.removed)
    assert service.get_person(leaving).status == PersonStatus.ARCHIVED
    assert service.get_person(unreported).status == PersonStatus.ARCHIVED
    assert service.get_person(later).status == PersonStatus.ACTIVE
    assert service.templates_of(later) and service.templates_of(staying)

    # Audited with counts only.
    purges = [e for e in audit.recent(limit=20, action="purge") if e.seq > seq]
    by_target = {e.target_type: dict(e.details) for e in purges}
    assert by_target["sighting"]["unknown_sightings"] == 2
    assert by_target["sighting"]["known_sightings"] == 1
    assert by_target["sighting"]["crops"] == 2
    assert by_target["sighting"]["sighting_events"] == 1
    assert by_target["face_template"]["templates"] == 3
    assert by_target["face_template"]["people_archived"] == 2
    archives = [e for e in audit.recent(limit=20, action="person.archive") if e.seq > seq]
    assert {e.target_id for e in archives} == {str(leaving), str(unreported)}

    # Nothing left to do on a second run.
    again = duties.purger.purge()
    assert (again.unknown_sightings, again.known_sightings, again.crops, again.templates) == (
        0,
        0,
        0,
        0,
    )
    # The next day the tenant who left "tomorrow" is due.
    clock.advance(days=1)
    assert duties.purger.purge().templates == 1
    assert service.get_person(later).status == PersonStatus.ARCHIVED


def test_departed_templates_kept_for_the_retention_period(
    service: RegistryService, duties: Duties, clock: FrozenClock
) -> None:
    duties.purger.settings = duties.purger.settings.model_copy(
        update={"departed_templates_days": 3}
    )
    village = seed_village(service)
    p = add_tenant(service, village, village.rooms[0], seed=9)
    duties.departures.report(
        service.tenancies_of(p)[0].id, move_out=date(2025, 5, 30), reported_by="x", actor="a"
    )
    assert duties.purger.purge().templates == 0  # 06-01: two days after the move-out
    assert service.get_person(p).status == PersonStatus.DEPARTED
    clock.advance(days=1)  # 06-02: three days
    report = duties.purger.purge()
    assert (report.templates, report.people_archived) == (1, 1)
    assert service.get_person(p).status == PersonStatus.ARCHIVED


def _add_case(session: Session, case_tables: ModuleType, *, status: str, days_ago: int) -> Any:
    """A case of one sighting, seen and opened ``days_ago`` days before NOW (flushed: it has
    its id)."""
    seen = NOW - timedelta(days=days_ago)
    case = case_tables.Case(
        status=status,
        model_id="m",
        first_seen_at=seen,
        last_seen_at=seen,
        opened_at=seen,
        updated_at=NOW,
        sightings_count=1,
    )
    session.add(case)
    session.flush()
    return case


def test_sightings_of_a_case_are_purged_too(
    database: Database, duties: Duties, sightings: Sightings
) -> None:
    old = sightings.add(NOW - timedelta(days=40))
    with database.transaction() as session:
        case = _add_case(session, case_tables, status="open", days_ago=40)
        session.add(
            case_tables.CaseSighting(
                sighting_id=old,
                case_id=case.id,
                camera_name="east-gate",
                seen_at=NOW - timedelta(days=40),
                faces_used=3,
            )
        )
    assert duties.purger.purge().unknown_sightings == 1
    with database.transaction() as session:
        links = session.scalar(select(func.count()).select_from(case_tables.CaseSighting))
        assert links == 0
        assert session.get(case_tables.Case, case.id) is not None  # the case itself stays


def test_purge_deletes_expired_visitor_faces_and_old_negative_examples(
    database: Database, duties: Duties
) -> None:
    with database.transaction() as session:
        case = _add_case(session, case_tables, status="closed", days_ago=400)

        def quiet(kind: str, created_days: int, expires_days: int | None) -> None:
            session.add(
                case_tables.CaseQuietFace(
                    case_id=case.id,
                    kind=kind,
                    model_id="m",
                    ciphertext=b"x",
                    key_id="k",
                    created_at=NOW - timedelta(days=created_days),
                    expires_at=None if expires_days is None else NOW + timedelta(days=expires_days),
                )
            )

        quiet("visitor", 10, -1)  # expired yesterday
        quiet("visitor", 10, 5)  # still a visitor
        quiet("negative", 366, None)  # older than the 365 days
        quiet("negative", 300, None)

    def left() -> list[str]:
        with database.transaction() as session:
            return sorted(session.scalars(select(case_tables.CaseQuietFace.kind)))

    dry = duties.purger.purge(dry_run=True)
    assert (dry.visitor_faces, dry.negative_examples) == (1, 1)
    assert left() == ["negative", "negative", "visitor", "visitor"]
    report = duties.purger.purge()
    assert (report.visitor_faces, report.negative_examples) == (1, 1)
    assert report.as_dict()["visitor_faces"] == 1
    assert left() == ["negative", "visitor"]
    assert duties.purger.purge().visitor_faces == 0
