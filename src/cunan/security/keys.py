"""The key file: AES-256 keys by id, one of them active, readable only by its owner."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cunan.errors import Unavailable

logger = logging.getLogger(__name__)

#: First line of defence against feeding the wrong file to the loader.
KEYRING_FORMAT = "cunan-keyring/1"
KEY_BYTES = 32


#: What a key's check value is computed over: a fixed label, never data.
_CHECK_LABEL = b"cunan key-check/1"


class KeyFileError(RuntimeError, Unavailable):
    """The key file is missing, unreadable or malformed."""


class KeyFilePermissionError(KeyFileError):
    """The key file can be read by users other than its owner."""


def new_key_id() -> str:
    """A key id that sorts by creation date and cannot collide in practice."""
    return f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class KeyRing:
    """AES keys by id; ``active`` encrypts new values, the others only decrypt old ones."""

    active: str
    keys: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyFileError(f"active key {self.active!r} is not in the key ring")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyFileError(f"key {key_id!r} has {len(key)} bytes, expected {KEY_BYTES}")

    @classmethod
    def generate(cls) -> KeyRing:
        key_id = new_key_id()
        return cls(active=key_id, keys={key_id: secrets.token_bytes(KEY_BYTES)})

    def with_new_active_key(self) -> KeyRing:
        """A copy with a fresh key made active; the old keys stay to decrypt until retired."""
        key_id = new_key_id()
        while key_id in self.keys:
            key_id = new_key_id()
        keys = dict(self.keys)
        keys[key_id] = secrets.token_bytes(KEY_BYTES)
        return KeyRing(active=key_id, keys=keys)

    def only_active(self) -> KeyRing:
        """A copy holding only the active key (the others retired)."""
        return KeyRing(active=self.active, keys={self.active: self.keys[self.active]})

    def check_values(self) -> dict[str, str]:
        """Each key's check value: shows which key it is without revealing it."""
        return {key_id: key_check_value(key) for key_id, key in self.keys.items()}

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyFileError(
                f"key {key_id!r} is not in the key file; the data encrypted with it cannot be "
                "read (was an old key file restored, or the key retired too early?)"
            ) from None

    # -- files -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read a key file, refusing one that others could read."""
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyFileError(
                f"{path}: key file not found; run 'cunan init' or restore the key from its backup"
            ) from None
        check_private(path, st)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != KEYRING_FORMAT:
                raise KeyFileError(f"{path}: not a CunAn key file (format {doc.get('format')!r})")
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
            return cls(active=str(doc["active"]), keys=keys)
        except KeyFileError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyFileError(f"{path}: unreadable key file ({exc})") from exc

    def save(self, path: Path, *, overwrite: bool = True) -> None:
        """Write the key file atomically with mode 0600 (never briefly readable by others)."""
        doc = {
            "format": KEYRING_FORMAT,
            "active": self.active,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(self.keys.items())},
        }
        if not overwrite and path.exists():
            raise KeyFileError(f"{path}: a key file already exists; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600 before any byte is written.
        fd, tmp = tempfile.mkstemp(prefix=".cunan-key-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).chmod(0o600)
            if overwrite:
                Path(tmp).replace(path)
            else:
                # link() fails if the target exists: no race with a concurrent init.
                os.link(tmp, path)
                Path(tmp).unlink()
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
            raise
        # The rename is durable only once the directory entry is on disk: without this a
        # power cut could bring back the previous key file (e.g. one still holding a key
        # that rotation has since retired, or none at all after init).
        fsync_directory(path.parent)
        logger.info(
            "wrote key file %s (active key %s, %d key(s))", path, self.active, len(self.keys)
        )


def key_check_value(key: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the key (hex): equal only for the same key."""
    return hmac.new(key, _CHECK_LABEL, hashlib.sha256).hexdigest()


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (renames, new links) to disk; a no-op where unsupported."""
    if os.name != "posix":  # pragma: no cover - Windows cannot open a directory for fsync
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_private(path: Path, st: os.stat_result | None = None) -> None:
    """Refuse a key file that group or others may read or write, or that someone else owns."""
    if os.name != "posix":  # pragma: no cover - Windows relies on the profile's ACLs
        return
    st = st or path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyFilePermissionError(
            f"{path}: key file permissions are {mode:04o}; it must be readable only by its "
            f"owner. Fix with: chmod 600 {path}"
        )
    if st.st_uid != os.getuid():
        raise KeyFilePermissionError(
            f"{path}: key file is owned by uid {st.st_uid}, not by this user ({os.getuid()})"
        )
