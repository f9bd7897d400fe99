"""Renaming and deleting places (villages, grid areas, landlords, houses, rooms, households)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.exc import IntegrityError

from cunan.audit.log import AuditAction, DetailValue
from cunan.registry.errors import (
    DuplicateRecordError,
    InvalidRecordError,
    NotFoundError,
    PlaceInUseError,
)
from cunan.registry.validation import check_row_lengths
from cunan.storage.place_repository import MODELS, PlaceRepository, PlaceRow
from cunan.storage.tables import Household, Room

#: The kinds of place, as the API and the audit log name them.
PLACE_KINDS = tuple(MODELS)
#: Each kind in words (Chinese first), for the messages.
KIND_WORDS: dict[str, str] = {
    "village": "村 (village)",
    "grid_area": "网格 (grid area)",
    "landlord": "房东 (landlord)",
    "house": "房屋 (house)",
    "room": "房间 (room)",
    "household": "户 (household)",
}
#: What may still refer to a place, in words.
REFERENCE_WORDS: dict[str, str] = {
    "grid_areas": "个网格 (grid areas)",
    "landlords": "个房东 (landlords)",
    "houses": "处房屋 (houses)",
    "people": "个人员 (people)",
    "cameras": "个摄像头 (cameras)",
    "users": "个账号 (accounts)",
    "api_tokens": "个 API 令牌 (API tokens)",
    "cases": "个案件 (cases)",
    "tenancies": "条租住记录 (tenancies, past ones included)",
    "tasks": "个核实任务 (confirmation tasks)",
    "accounts": "个房东账号 (landlord account)",
    "rooms": "个房间 (rooms)",
    "households": "户 (households)",
    "gas_businesses": "家用气商户 (gas businesses)",
}

Audit = Callable[..., None]


def _kind(kind: str) -> str:
    if kind not in MODELS:
        raise InvalidRecordError(f"place kind {kind!r}: one of {', '.join(PLACE_KINDS)}")
    return kind


def _row(repo: PlaceRepository, kind: str, record_id: int, village_id: int | None) -> PlaceRow:
    row = repo.get(kind, record_id, for_update=True)
    # A place of another village is as good as missing to this caller.
    if row is None or (village_id is not None and repo.village_of(kind, row) != village_id):
        raise NotFoundError(kind.replace("_", " "), record_id)
    return row


def _parent(row: PlaceRow) -> dict[str, DetailValue]:
    """The ids the audit entry keeps (never a name: landlords are people)."""
    if isinstance(row, Room | Household):
        return {"house_id": row.house_id}
    village = getattr(row, "village_id", None)
    return {"village_id": village} if isinstance(village, int) else {}


def rename(
    repo: PlaceRepository,
    kind: str,
    record_id: int,
    name: str,
    *,
    village_id: int | None,
    audit: Audit,
) -> None:
    """Give a place a new name (a house a new address, a room a new label); refused when
    another place of the same parent has it already. Audited as ``place.update``."""
    _kind(kind)
    cleaned = (name or "").strip()
    words = KIND_WORDS[kind]
    if not cleaned:
        raise InvalidRecordError(f"{words} {record_id}: 新名称不能为空 (the new name is required)")
    row = _row(repo, kind, record_id, village_id)
    _, column = MODELS[kind]
    if getattr(row, column) == cleaned:
        return
    if repo.name_taken(kind, row, cleaned):
        raise DuplicateRecordError(
            f"{words} {record_id}: 已有同名的{words.split(' ')[0]} “{cleaned}” "
            "(another one of the same place already has this name)"
        )
    setattr(row, column, cleaned)
    check_row_lengths(row, f"{kind} {record_id}")
    try:
        repo.session.flush()
    except IntegrityError as exc:  # a concurrent rename took the name first
        raise DuplicateRecordError(
            f"{words} {record_id}: 已有同名的{words.split(' ')[0]} “{cleaned}” "
            "(another one of the same place already has this name)"
        ) from exc
    audit(
        AuditAction.PLACE_UPDATE,
        target_type=kind,
        target_id=record_id,
        details={"renamed": column, **_parent(row)},
    )


def remove(
    repo: PlaceRepository,
    kind: str,
    record_id: int,
    *,
    village_id: int | None,
    audit: Audit,
) -> None:
    """Delete a place nothing refers to any more; otherwise :class:`PlaceInUseError`, naming
    the place and what still refers to it (never a cascade: people, tenancies and their
    history stay). Audited as ``place.remove``."""
    _kind(kind)
    row = _row(repo, kind, record_id, village_id)
    refs = repo.references(kind, record_id)
    if refs:
        raise PlaceInUseError(
            f"{KIND_WORDS[kind]} {record_id} 不能删除：还有 " + describe_references(refs)
        )
    parent = _parent(row)
    repo.remove(row)
    audit(AuditAction.PLACE_REMOVE, target_type=kind, target_id=record_id, details=parent)


def describe_references(refs: Mapping[str, int]) -> str:
    """``{"rooms": 2, "households": 1}`` in words: "2 个房间 (rooms)、1 户 (households)"."""
    return "、".join(f"{n} {REFERENCE_WORDS.get(what, what)}" for what, n in refs.items())
