"""Channels added from the web: encrypted under the data key, merged with the file's, carried
through key rotation, listed by the key check, deleted by a key reset (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cunan.audit import AuditLog
from cunan.errors import Conflict, InvalidInput
from cunan.notify.channels import ChannelStore, parse
from cunan.notify.settings import NotifySettings, WeComSettings
from cunan.registry.keybinding import bind_key_ring
from cunan.registry.keys import reset_keys, rotate_keys, unreadable_values
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database
from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]

KEY = "wecom-robot-key-0001"


def _wecom(name: str = "村委会群") -> WeComSettings:
    channel = parse("wecom", {"name": name, "key": KEY, "msgtype": "text"})
    assert isinstance(channel, WeComSettings)
    return channel


def test_stored_encrypted_and_merged_after_the_file(database: Database) -> None:
    ring = KeyRing.generate()
    store = ChannelStore(database, FieldCipher(ring))
    audit = AuditLog(database)
    file = NotifySettings.model_validate(
        {"webhooks": [{"name": "ops", "url": "http://127.0.0.1:9/h", "secret": "s"}]}
    )
    channel_id = store.add(_wecom(), reserved=set(file.names()), audit=audit, actor="user:1")
    with database.engine.connect() as conn:
        blob = conn.execute(text("SELECT config_ciphertext FROM notify_channels")).scalar_one()
    assert KEY.encode() not in bytes(blob)
    merged = store.merged(file)
    assert [c.name for c in merged.wecom] == ["村委会群"] and merged.webhooks == file.webhooks
    assert merged.wecom[0].key.get_secret_value() == KEY
    # A name the file uses is refused; a web channel the file later names too is left out.
    with pytest.raises(Conflict, match="ops"):
        store.add(_wecom("ops"), reserved={"ops"}, audit=audit, actor="user:1")
    clash = NotifySettings.model_validate({"wecom": [{"name": "村委会群", "key": "file-key"}]})
    assert [c.key.get_secret_value() for c in store.merged(clash).wecom] == ["file-key"]
    with pytest.raises(InvalidInput, match=r"channel x: .*must be http"):
        parse("wecom", {"name": "x", "key": KEY, "base_url": "ftp://nowhere"})
    # Another key file cannot read it: listed as unreadable, never sent with garbage.
    other = ChannelStore(database, FieldCipher(KeyRing.generate()))
    assert [(row.id, settings) for row, settings in other.rows()] == [(channel_id, None)]
    assert other.merged(NotifySettings()).wecom == []


def test_rotation_reencrypts_channels_and_a_reset_deletes_them(
    database: Database, tmp_path: Path
) -> None:
    key_file = tmp_path / "cunan.key"
    old = KeyRing.generate()
    old.save(key_file)
    bind_key_ring(database, old, key_file)
    audit = AuditLog(database)
    ChannelStore(database, FieldCipher(old)).add(
        _wecom(), reserved=set(), audit=audit, actor="user:1"
    )
    assert unreadable_values(database, FieldCipher(old)) == []
    report = rotate_keys(database, key_file, audit=audit, actor="cli:tester")
    new = KeyRing.load(key_file)
    with database.engine.connect() as conn:
        used = set(conn.execute(text("SELECT key_id FROM notify_channels")).scalars())
    assert used == {report.new_key_id}
    [(_, channel)] = ChannelStore(database, FieldCipher(new)).rows()
    assert isinstance(channel, WeComSettings) and channel.key.get_secret_value() == KEY
    entry = audit.recent(limit=1, action="key.rotate")[0]
    assert entry.details["notify_channels"] == 1
    # The key check names a channel the key file cannot read.
    [bad] = unreadable_values(database, FieldCipher(old))
    assert bad.kind == "notification channel"

    key_file.unlink()
    reset = reset_keys(database, key_file)
    assert reset.discarded.notify_channels == 1
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notify_channels")).scalar_one() == 0
