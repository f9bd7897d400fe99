"""Retention purges per kind: unknown and known sightings, crops, departed people's templates."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from cunan.audit.log import AuditAction, AuditLog, system_actor
from cunan.cases.service import CaseService
from cunan.duties.clock import Clock, local_date, system_clock
from cunan.duties.departures import DepartureService, tenants_gone
from cunan.duties.settings import DutySettings
from cunan.registry.service import RegistryService
from cunan.storage.database import Database
from cunan.storage.duties_repository import DutiesRepository
from cunan.storage.enums import PersonStatus
from cunan.storage.repositories import RegistryRepository
from cunan.storage.retention_repository import RetentionRepository

logger = logging.getLogger(__name__)

#: False alarms' negative examples (embeddings of a poster, a reflection ...) are deleted
#: this many days after they were recorded (None: kept until the case is reopened).
NEGATIVE_EXAMPLES_DAYS = 365


@dataclass(slots=True)
class PurgeReport:
    """What one purge deleted (or, for a dry run, would delete), per kind."""

    dry_run: bool
    unknown_sightings: int = 0
    known_sightings: int = 0
    #: Sightings kept but whose crop and embedding were cleared.
    crops: int = 0
    #: Pipeline outbox events (who was seen where, when) past the known-sightings retention.
    sighting_events: int = 0
    templates: int = 0
    people_archived: int = 0
    #: Tenants newly marked departed before the template purge (0 on a dry run).
    people_marked_departed: int = 0
    #: Visitors' temporary faces past their date (``CaseService.purge_expired_visitors``).
    visitor_faces: int = 0
    #: False alarms' negative examples older than ``negative_examples_days``.
    negative_examples: int = 0
    cutoffs: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "unknown_sightings": self.unknown_sightings,
            "known_sightings": self.known_sightings,
            "crops": self.crops,
            "sighting_events": self.sighting_events,
            "templates": self.templates,
            "people_archived": self.people_archived,
            "people_marked_departed": self.people_marked_departed,
            "visitor_faces": self.visitor_faces,
            "negative_examples": self.negative_examples,
            "cutoffs": dict(self.cutoffs),
        }


class RetentionPurger:
    """Deletes what the retention settings no longer allow keeping.

    - unknown (and undecided) sightings with ``started_at`` before now - ``unknown_sightings_days``;
    - known sightings before now - ``known_sightings_days``;
    - crops and embeddings of the sightings left, before now - ``crops_days``;
    - pipeline outbox events (they repeat a sighting) before now - ``known_sightings_days``;
    - templates and photos of departed people once move-out + ``departed_templates_days`` has
      come (local day); the person is then archived;
    - visitors' temporary faces past their date (``CaseService.purge_expired_visitors``) and
      false alarms' negative examples older than ``negative_examples_days`` (365).

    Sightings that belong to a case are purged too (privacy wins); the case keeps its counts
    and first/last-seen times but loses those sightings and their crops.
    """

    def __init__(
        self,
        database: Database,
        registry: RegistryService,
        audit: AuditLog,
        settings: DutySettings | None = None,
        *,
        clock: Clock = system_clock,
        cases: CaseService | None = None,
        negative_examples_days: int | None = NEGATIVE_EXAMPLES_DAYS,
    ) -> None:
        self.database = database
        self.registry = registry
        self.audit = audit
        self.settings = settings or DutySettings()
        self._clock = clock
        self.cases = cases or CaseService(
            database, registry.cipher, registry, audit=audit, clock=clock
        )
        self.negative_examples_days = negative_examples_days
        self.departures = DepartureService(database, audit, self.settings, clock=clock)

    def purge(self, *, dry_run: bool = False, actor: str | None = None) -> PurgeReport:
        who = actor or system_actor()
        now = self._clock()
        today = local_date(now, self.settings.zone)
        report = PurgeReport(dry_run=dry_run)
        cut_unknown = now - timedelta(days=self.settings.unknown_sightings_days)
        cut_known = now - timedelta(days=self.settings.known_sightings_days)
        cut_crops = now - timedelta(days=self.settings.crops_days)
        report.cutoffs = {
            "unknown_sightings_before": cut_unknown.isoformat(),
            "known_sightings_before": cut_known.isoformat(),
            "crops_before": cut_crops.isoformat(),
            "departed_on_or_before": (
                today - timedelta(days=self.settings.departed_templates_days)
            ).isoformat(),
        }
        self._purge_sightings(report, cut_unknown, cut_known, cut_crops, who)
        if not dry_run:
            report.people_marked_departed = len(
                self.departures.mark_departures(today=today, actor=who)
            )
        self._purge_departed(report, today, who)
        self._purge_quiet_faces(report, now, who)
        logger.info(
            "%s: %d unknown sighting(s), %d known sighting(s), %d crop(s), %d template(s), "
            "%d person(s) archived, %d visitor face(s), %d negative example(s)",
            "purge dry run, would delete" if dry_run else "purged",
            report.unknown_sightings,
            report.known_sightings,
            report.crops,
            report.templates,
            report.people_archived,
            report.visitor_faces,
            report.negative_examples,
        )
        return report

    # -- cases' quiet faces ------------------------------------------------------------------

    def _purge_quiet_faces(self, report: PurgeReport, now: datetime, actor: str) -> None:
        negative_cut: datetime | None = None
        if self.negative_examples_days is not None:
            negative_cut = now - timedelta(days=self.negative_examples_days)
            report.cutoffs["negative_examples_before"] = negative_cut.isoformat()
        if report.dry_run:
            with self.database.transaction() as session:
                repo = RetentionRepository(session)
                report.visitor_faces = repo.count_expired_visitor_faces(now)
                if negative_cut is not None:
                    report.negative_examples = repo.count_negative_examples(negative_cut)
            return
        report.visitor_faces = self.cases.purge_expired_visitors(now=now)
        if negative_cut is None:
            return
        with self.database.transaction() as session:
            report.negative_examples = RetentionRepository(session).delete_negative_examples(
                negative_cut
            )
            if report.negative_examples:
                self.audit.record(
                    AuditAction.PURGE,
                    actor=actor,
                    target_type="case_quiet_faces",
                    details={
                        "kind": "negative",
                        "deleted": report.negative_examples,
                        "negative_examples_days": self.negative_examples_days,
                    },
                    session=session,
                )

    # -- sightings ---------------------------------------------------------------------------

    def _purge_sightings(
        self,
        report: PurgeReport,
        cut_unknown: datetime,
        cut_known: datetime,
        cut_crops: datetime,
        actor: str,
    ) -> None:
        with self.database.transaction() as session:
            repo = RetentionRepository(session)
            if report.dry_run:
                report.unknown_sightings = repo.count_unknown_sightings(cut_unknown)
                report.known_sightings = repo.count_known_sightings(cut_known)
                report.crops = repo.count_crops(
                    cut_crops, unknown_before=cut_unknown, known_before=cut_known
                )
                report.sighting_events = repo.count_events(cut_known)
                return
            # An outbox event repeats a sighting's who/where/when: it must not outlive the
            # sighting. Crops are cleared last, so a sighting deleted whole is not also a crop.
            report.sighting_events = repo.delete_events(cut_known)
            report.unknown_sightings = repo.delete_unknown_sightings(cut_unknown)
            report.known_sightings = repo.delete_known_sightings(cut_known)
            report.crops = repo.clear_crops(cut_crops)
            self.audit.record(
                AuditAction.PURGE,
                actor=actor,
                target_type="sighting",
                details={
                    "unknown_sightings": report.unknown_sightings,
                    "known_sightings": report.known_sightings,
                    "crops": report.crops,
                    "sighting_events": report.sighting_events,
                    "unknown_sightings_days": self.settings.unknown_sightings_days,
                    "known_sightings_days": self.settings.known_sightings_days,
                    "crops_days": self.settings.crops_days,
                },
                session=session,
            )

    # -- departed people's face data ---------------------------------------------------------

    def due_departed(self, today: date, *, include_unmarked: bool = False) -> dict[int, int]:
        """People whose face data is due for deletion: person id -> number of templates.

        Departed people whose last move-out (else the day they were set departed) is at
        least ``departed_templates_days`` ago, and archived people who still have templates.
        ``include_unmarked`` adds active tenants the daily job would mark departed first.
        """
        last_day = today - timedelta(days=self.settings.departed_templates_days)
        with self.database.transaction() as session:
            repo = RetentionRepository(session)
            registry = RegistryRepository(session)
            people = list(repo.people_with_status(PersonStatus.DEPARTED, PersonStatus.ARCHIVED))
            if include_unmarked:
                people += tenants_gone(DutiesRepository(session), registry, today)
            ids = [p.id for p in people]
            counts = registry.template_counts(ids)
            last_move_out = repo.last_move_outs(ids)
            due: dict[int, int] = {}
            for person in people:
                if person.status == PersonStatus.ARCHIVED:
                    if counts.get(person.id, 0):
                        due[person.id] = counts[person.id]
                    continue
                departed_on = last_move_out.get(person.id) or local_date(
                    person.updated_at, self.settings.zone
                )
                if departed_on <= last_day:
                    due[person.id] = counts.get(person.id, 0)
            return due

    def _purge_departed(self, report: PurgeReport, today: date, actor: str) -> None:
        due = self.due_departed(today, include_unmarked=report.dry_run)
        if report.dry_run:
            report.templates = sum(due.values())
            report.people_archived = len(due)
            return
        archived: list[int] = []
        for person_id, _ in sorted(due.items()):
            # Through the registry, so the gallery's listeners drop the templates at once and
            # the change feed records the removals for indexes that are not running.
            removed = self.registry.purge_face_data(person_id)
            report.templates += len(removed)
            with self.database.transaction() as session:
                person = RegistryRepository(session).person(person_id, for_update=True)
                if person is None:
                    continue
                was = person.status
                person.status = PersonStatus.ARCHIVED
                self.audit.record(
                    AuditAction.PERSON_ARCHIVE,
                    actor=actor,
                    target_type="person",
                    target_id=person_id,
                    details={
                        "templates_deleted": len(removed),
                        "was": str(was),
                        "reason": "departed_retention",
                    },
                    session=session,
                )
                if was != PersonStatus.ARCHIVED:
                    archived.append(person_id)
        report.people_archived = len(archived)
        if due:
            self.audit.record(
                AuditAction.PURGE,
                actor=actor,
                target_type="face_template",
                details={
                    "templates": report.templates,
                    "people_archived": report.people_archived,
                    "departed_templates_days": self.settings.departed_templates_days,
                },
            )
