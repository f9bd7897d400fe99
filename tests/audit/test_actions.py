"""The declared audit actions are the recorded ones, and docs/audit.md names the same codes."""

from __future__ import annotations

import re
from pathlib import Path

from cunan.audit.log import AuditAction, AuditLog
from cunan.pipeline.store import CameraStore
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database

ROOT = Path(__file__).resolve().parents[2]


def test_every_declared_action_is_recorded_somewhere() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "src" / "cunan").rglob("*.py")
        if p.name != "log.py" or p.parent.name != "audit"
    )
    # Recorded through the enum member, or by its code as a literal.
    unused = [
        a.name
        for a in AuditAction
        if f"AuditAction.{a.name}" not in sources and f'"{a.value}"' not in sources
    ]
    assert unused == []


def test_docs_name_exactly_the_recorded_codes() -> None:
    docs = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    table = docs.split("## What records what", 1)[1].split("\n\n", 2)[1]
    documented: set[str] = set()
    for row in table.splitlines()[2:]:
        actions = row.split("|")[2]
        # Codes are the backticked words outside the parentheses (those name target types).
        documented |= set(re.findall(r"`([a-z_.]+)`", re.sub(r"\([^)]*\)", "", actions)))
    assert documented == {a.value for a in AuditAction}


def test_camera_changes_and_the_public_notice_are_audited(database: Database) -> None:
    audit = AuditLog(database)
    cipher = FieldCipher(KeyRing.generate())
    cameras = CameraStore(database, cipher=cipher, audit=audit, actor="cli:test")
    camera_id = cameras.add("gate", "rtsp://user:secret@cam/1")
    cameras.update("gate", enabled=True, public_notice_posted=True)
    cameras.update("gate", enabled=False)
    cameras.remove("gate")
    entries = list(reversed(audit.recent(limit=10)))
    assert [e.action for e in entries] == [
        "camera.add",
        "camera.enable",
        "camera.disable",
        "camera.remove",
    ]
    assert all(e.target_id == str(camera_id) and e.actor == "cli:test" for e in entries)
    assert entries[0].details["public_notice_posted"] is False
    assert entries[1].details["public_notice_posted_before"] is False
    assert entries[1].details["public_notice_posted"] is True
    assert "secret" not in repr([e.details for e in entries])


def test_every_code_recorded_as_a_literal_is_declared() -> None:
    declared = {a.value for a in AuditAction}
    literal = re.compile(r"(?:\.record|_record|record_audit)\(\s*\"([a-z_.]+)\"")
    # ... or through a module constant named for it (ACTION_X = "...", X_ACTION = "...").
    constant = re.compile(r"^[A-Z_]*ACTION[A-Z_]* = \"([a-z_.]+)\"", re.MULTILINE)
    recorded = {
        code
        for p in (ROOT / "src" / "cunan").rglob("*.py")
        for pattern in (literal, constant)
        for code in pattern.findall(p.read_text(encoding="utf-8"))
    }
    assert recorded and recorded <= declared, recorded - declared
