"""Files holding personal data: written readable by their owner only (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

#: Group and others may do nothing with a private file.
PRIVATE_MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte (never briefly
    readable by others). The parent directory must exist: creating it silently would hide a
    mistyped path."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: directory does not exist; create it first")
    # mkstemp creates the file 0600 before any byte is written.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def others_can_access(path: Path) -> int:
    """The group/other permission bits of ``path`` (0 when private, or on Windows)."""
    if os.name != "posix":  # pragma: no cover - Windows relies on the profile's ACLs
        return 0
    return stat.S_IMODE(path.stat().st_mode) & 0o077
