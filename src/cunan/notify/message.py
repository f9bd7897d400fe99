"""The notification value and its JSON payload, with face data stripped unless allowed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

#: Keys (at any depth of ``data``) that hold face data: crops, photos, embeddings.
FACE_DATA_KEYS = frozenset(
    {
        "crop",
        "crops",
        "best_crops",
        "crop_jpeg",
        "crop_b64",
        "photo",
        "photos",
        "image",
        "images",
        "face_image",
        "embedding",
        "embeddings",
        "vector",
        "template",
        "templates",
    }
)
_FACE_DATA_SUFFIXES = ("_crop", "_crops", "_jpeg", "_png", "_image", "_embedding", "_photo")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Notification:
    """Something staff should know about, e.g. a new case (``kind="case.opened"``).

    ``data`` holds ids, counts and links; face data (crops, embeddings) is only sent when a
    channel is configured with ``include_face_data``. ``id`` lets receivers drop duplicates
    (a retry or a replay delivers the same id again).
    """

    kind: str
    title: str
    body: str
    data: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=_utcnow)
    id: str = field(default_factory=_new_id)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be an aware (UTC) datetime")


class Notifier(Protocol):
    """A channel: delivers one notification or raises :class:`NotificationError`."""

    def send(self, notification: Notification) -> None: ...


def is_face_data_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in FACE_DATA_KEYS or lowered.endswith(_FACE_DATA_SUFFIXES)


def strip_face_data(value: Any) -> Any:
    """A copy of ``value`` without any face-data key, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(k): strip_face_data(v) for k, v in value.items() if not is_face_data_key(str(k))
        }
    if isinstance(value, list | tuple):
        return [strip_face_data(v) for v in value]
    return value


def to_payload(notification: Notification, *, include_face_data: bool = False) -> dict[str, Any]:
    """The JSON document every channel sends."""
    data = dict(notification.data) if include_face_data else strip_face_data(notification.data)
    return {
        "id": notification.id,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "created_at": notification.created_at.astimezone(UTC).isoformat(),
        "data": data,
    }


def from_payload(payload: Mapping[str, Any]) -> Notification:
    """The notification back from :func:`to_payload` (dead letters are replayed from it)."""
    return Notification(
        kind=str(payload["kind"]),
        title=str(payload["title"]),
        body=str(payload["body"]),
        data=dict(payload.get("data") or {}),
        created_at=datetime.fromisoformat(str(payload["created_at"])),
        id=str(payload["id"]),
    )
