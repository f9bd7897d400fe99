"""Gas cases: a gas alarm's on-site verification, moved along its stages, with site photos."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cunan.audit.log import AuditAction, AuditLog
from cunan.authz import Permission, Principal, hidden, require
from cunan.duties.clock import Clock, system_clock
from cunan.errors import Conflict, InvalidInput
from cunan.gas.alarms import scope_rows
from cunan.gas.domain import GAS_STAGE_MOVES, GasCaseStage
from cunan.security.cipher import FieldCipher
from cunan.storage.case_tables import Case
from cunan.storage.database import Database
from cunan.storage.gas_alarm_repository import GasAlarmRepository
from cunan.storage.gas_tables import GasAlarm

#: What staff read for each stage.
STAGE_LABELS: dict[str, str] = {
    GasCaseStage.UNRESPONDED.value: "未响应",
    GasCaseStage.RESPONDED.value: "已响应",
    GasCaseStage.FALSE_ALARM.value: "误报",
    GasCaseStage.RESOLVED.value: "已处置",
    GasCaseStage.REPAIR.value: "需维修",
    GasCaseStage.IN_PROGRESS.value: "维修中",
    GasCaseStage.DONE.value: "维修完成",
}

#: Photos accepted, by their first bytes (what the content type claims is not trusted).
PHOTO_SIGNATURES: dict[str, bytes] = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n"}
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_NOTE_CHARS = 2000


def photo_context(photo_id: int, case_id: int) -> bytes:
    """What a site photo's ciphertext is bound to: it cannot be moved to another row."""
    return f"gas-case-photo:{photo_id}:{case_id}".encode()


@dataclass(frozen=True, slots=True)
class StepView:
    at: datetime
    actor: str
    from_stage: str | None
    to_stage: str
    label: str
    note: str | None


@dataclass(frozen=True, slots=True)
class PhotoView:
    id: int
    content_type: str
    size: int
    added_by: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class GasCaseView:
    id: int
    stage: str
    stage_label: str
    status: str
    village_id: int | None
    opened_at: datetime
    closed_at: datetime | None
    alarm_id: int
    business_id: int
    device_id: int
    alarm_type: str
    #: Where the case may move next (empty once it is final).
    next_stages: list[str]
    steps: list[StepView]
    photos: list[PhotoView]


class GasCaseService:
    """Moves gas cases along :data:`GAS_STAGE_MOVES` and keeps their site photos.

    A case is seen by whoever sees its alarm's business (business and maintainer accounts:
    their own businesses; elsewhere it is "not found", like a missing case). Every move
    records who, when and the note, is audited, and a final stage closes the case.
    """

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        cipher: FieldCipher,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self.database = database
        self.audit = audit
        self.cipher = cipher
        self.clock = clock

    @staticmethod
    def _find(
        repo: GasAlarmRepository, principal: Principal, case_id: int, *, lock: bool = False
    ) -> tuple[Case, GasAlarm]:
        alarm = repo.case_alarm(case_id, scope_rows(principal))
        case = repo.gas_case(case_id, for_update=lock) if alarm is not None else None
        if case is None or alarm is None:
            raise hidden("gas case", case_id)
        return case, alarm

    @staticmethod
    def _view(repo: GasAlarmRepository, case: Case, alarm: GasAlarm) -> GasCaseView:
        stage = case.gas_stage or GasCaseStage.UNRESPONDED.value
        return GasCaseView(
            id=case.id,
            stage=stage,
            stage_label=STAGE_LABELS.get(stage, stage),
            status=case.status,
            village_id=case.village_id,
            opened_at=case.opened_at,
            closed_at=case.closed_at,
            alarm_id=alarm.id,
            business_id=alarm.business_id,
            device_id=alarm.device_id,
            alarm_type=alarm.alarm_type,
            next_stages=sorted(s.value for s in GAS_STAGE_MOVES[GasCaseStage(stage)]),
            steps=[
                StepView(
                    at=s.at,
                    actor=s.actor,
                    from_stage=s.from_stage,
                    to_stage=s.to_stage,
                    label=STAGE_LABELS.get(s.to_stage, s.to_stage),
                    note=s.note,
                )
                for s in repo.steps(case.id)
            ],
            photos=[PhotoView(*row) for row in repo.photos(case.id)],
        )

    def get(self, principal: Principal, case_id: int) -> GasCaseView:
        require(principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasAlarmRepository(session)
            case, alarm = self._find(repo, principal, case_id)
            return self._view(repo, case, alarm)

    def move(
        self, principal: Principal, case_id: int, stage: str, note: str | None = None
    ) -> GasCaseView:
        """Move the case to ``stage`` (only along the allowed moves), with a note."""
        require(principal, Permission.HANDLE_GAS)
        try:
            target = GasCaseStage(stage)
        except ValueError:
            raise InvalidInput(
                f"燃气案件 {case_id}：没有 “{stage}” 这个阶段 (no gas case stage {stage!r})"
            ) from None
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise InvalidInput(f"燃气案件 {case_id}：备注过长 (note longer than {MAX_NOTE_CHARS})")
        now = self.clock()
        with self.database.transaction() as session:
            repo = GasAlarmRepository(session)
            case, alarm = self._find(repo, principal, case_id, lock=True)
            current = GasCaseStage(case.gas_stage or GasCaseStage.UNRESPONDED.value)
            if target not in GAS_STAGE_MOVES[current]:
                allowed = "、".join(STAGE_LABELS[s.value] for s in GAS_STAGE_MOVES[current])
                raise Conflict(
                    f"燃气案件 {case_id} 处于“{STAGE_LABELS[current.value]}”，不能改为"
                    f"“{STAGE_LABELS[target.value]}”（可改为：{allowed or '无，已结案'}） "
                    f"(gas case {case_id}: {current.value} -> {target.value} not allowed)"
                )
            case.gas_stage = target.value
            case.updated_at = now
            final = not GAS_STAGE_MOVES[target]
            if final:
                case.status = "closed"
                case.closed_at = now
            repo.add_step(
                case_id,
                at=now,
                actor=principal.actor,
                from_stage=current.value,
                to_stage=target.value,
                note=note or None,
            )
            self.audit.record(
                AuditAction.GAS_CASE_STAGE,
                actor=principal.actor,
                target_type="case",
                target_id=case_id,
                details={
                    "from_stage": current.value,
                    "to_stage": target.value,
                    "alarm_id": alarm.id,
                    "closed": final,
                    "note_given": bool(note),
                },
                session=session,
            )
            session.flush()
            return self._view(repo, case, alarm)

    def add_photo(
        self, principal: Principal, case_id: int, data: bytes, content_type: str
    ) -> PhotoView:
        """Attach a photo of the site (JPEG or PNG), encrypted at rest."""
        require(principal, Permission.HANDLE_GAS)
        signature = PHOTO_SIGNATURES.get(content_type)
        if signature is None or not data.startswith(signature):
            raise InvalidInput(
                f"燃气案件 {case_id}：照片须为 JPEG 或 PNG 图片 (photo must be JPEG or PNG)"
            )
        if len(data) > MAX_PHOTO_BYTES:
            raise InvalidInput(
                f"燃气案件 {case_id}：照片超过 {MAX_PHOTO_BYTES // (1024 * 1024)} MB "
                "(photo too large)"
            )
        now = self.clock()
        with self.database.transaction() as session:
            repo = GasAlarmRepository(session)
            self._find(repo, principal, case_id, lock=True)
            photo = repo.add_photo(
                case_id,
                content_type=content_type,
                size=len(data),
                key_id=self.cipher.active_key_id,
                added_by=principal.actor,
                added_at=now,
            )
            photo.ciphertext = self.cipher.encrypt(data, photo_context(photo.id, case_id))
            self.audit.record(
                AuditAction.GAS_CASE_PHOTO_ADD,
                actor=principal.actor,
                target_type="case",
                target_id=case_id,
                details={"photo_id": photo.id, "size": len(data)},
                session=session,
            )
            return PhotoView(photo.id, content_type, len(data), principal.actor, now)

    def photo(self, principal: Principal, case_id: int, photo_id: int) -> tuple[bytes, str]:
        """A site photo, decrypted, and its content type."""
        require(principal, Permission.READ_GAS)
        with self.database.read() as session:
            repo = GasAlarmRepository(session)
            self._find(repo, principal, case_id)
            row = repo.photo(case_id, photo_id)
            if row is None:
                raise hidden("gas case photo", photo_id)
            plain = self.cipher.decrypt(
                row.ciphertext, photo_context(row.id, case_id), what=f"gas case photo {row.id}"
            )
            return plain, row.content_type
