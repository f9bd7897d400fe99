"""Settings administrators may change from the web, stored in the database over the TOML file."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

from pydantic import ValidationError

from cunan.audit.log import AuditLog
from cunan.config import Settings
from cunan.errors import InvalidInput
from cunan.storage.auth_repository import SettingsRepository
from cunan.storage.database import Database

logger = logging.getLogger(__name__)

#: The judging gate for poor camera faces (``[faces.sighting_quality]``): read when the
#: pipeline is built, so a change applies after the next start.
SIGHTING_QUALITY: tuple[str, ...] = tuple(
    f"faces.sighting_quality.{name}"
    for name in (
        "min_face_px",
        "min_interocular_px",
        "min_sharpness",
        "min_frontalness",
        "min_brightness",
        "max_brightness",
        "min_contrast",
    )
)
#: What the web may change: decision thresholds, retention periods, deadlines and the
#: sighting quality gate. Each is "section.field" (or "section.group.field") of
#: :class:`cunan.config.Settings`; the value is validated by that model.
EDITABLE: frozenset[str] = frozenset(
    {
        *SIGHTING_QUALITY,
        "faces.match_threshold",
        "matching.min_score",
        "matching.max_distance",
        "matching.fallback_max_distance",
        "matching.min_margin",
        "matching.adaptive",
        "matching.adaptive_target",
        "cases.link_threshold",
        "cases.cooldown_minutes",
        "cases.deadline_days",
        "duties.departure_deadline_days",
        "duties.not_seen_days",
        "duties.late_report_window_days",
        "duties.unknown_sightings_days",
        "duties.crops_days",
        "duties.known_sightings_days",
        "duties.departed_templates_days",
    }
)
#: Changes that take effect at once (the live gallery's decision); the rest at the next start
#: (the services holding them are built once).
LIVE: frozenset[str] = frozenset(
    {
        "matching.min_score",
        "matching.max_distance",
        "matching.fallback_max_distance",
        "matching.min_margin",
        "matching.adaptive",
        "matching.adaptive_target",
    }
)


def env_name(key: str) -> str:
    return "CUNAN_" + "__".join(key.split(".")).upper()


def current_value(settings: Settings, key: str) -> object:
    """The value in force of an editable "section.field" or "section.group.field" key."""
    value: object = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _nest(values: dict[str, object], path: list[str], value: object) -> None:
    for part in path[:-1]:
        values = cast(dict[str, object], values.setdefault(part, {}))
    values[path[-1]] = value


def _merge(base: dict[str, object], changes: Mapping[str, object]) -> dict[str, object]:
    merged = dict(base)
    for name, value in changes.items():
        current = merged.get(name)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[name] = _merge(current, value)
        else:
            merged[name] = value
    return merged


def set_by_environment(key: str) -> bool:
    """The environment wins over the database: an operator's explicit override."""
    wanted = env_name(key)
    return any(name.upper() == wanted for name in os.environ)


def with_changes(settings: Settings, changes: Mapping[str, object]) -> Settings:
    """``settings`` with ``changes`` applied, each validated by its section's model."""
    sections: dict[str, dict[str, object]] = {}
    for key, value in changes.items():
        if key not in EDITABLE:
            raise InvalidInput(f"setting {key!r} cannot be changed from the web")
        section, *path = key.split(".")
        _nest(sections.setdefault(section, {}), path, value)
    updates: dict[str, object] = {}
    for section, values in sections.items():
        current = getattr(settings, section)
        try:
            updates[section] = type(current).model_validate(_merge(current.model_dump(), values))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise InvalidInput(f"{section}.{where}: {first.get('msg', 'invalid')}") from None
    return settings.model_copy(update=updates)


def load_overrides(database: Database) -> dict[str, object]:
    with database.read() as session:
        rows = SettingsRepository(session).overrides()
        return {r.key: json.loads(r.value_json) for r in rows if r.key in EDITABLE}


def apply_stored(settings: Settings, database: Database) -> Settings:
    """The settings in force: TOML and defaults, then the web's changes, then the
    environment (set-by-environment keys keep their value)."""
    stored = {k: v for k, v in load_overrides(database).items() if not set_by_environment(k)}
    if not stored:
        return settings
    try:
        return with_changes(settings, stored)
    except InvalidInput as exc:
        # A stored value the current version no longer accepts: keep the file's settings.
        logger.warning("ignoring the settings changed from the web: %s", exc)
        return settings


def store(database: Database, audit: AuditLog, changes: Mapping[str, object], actor: str) -> None:
    """Keep the changes (audited with the keys and values: thresholds, not personal data)."""
    now = datetime.now(UTC)
    with database.transaction() as session:
        repo = SettingsRepository(session)
        for key, value in changes.items():
            repo.put(key, json.dumps(value), actor, now)
        audit.record(
            "settings.change",
            actor=actor,
            target_type="settings",
            details={"changes": json.dumps(dict(changes), sort_keys=True)},
            session=session,
        )
