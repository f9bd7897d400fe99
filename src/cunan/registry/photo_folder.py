"""Photos a roster names, opened only inside its photo folder, with no check-then-open race."""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from pathlib import Path, PurePosixPath, PureWindowsPath

from cunan.faces.imageio import DEFAULT_MAX_BYTES

__all__ = [
    "FOLDER",
    "LOOP",
    "MISSING",
    "OUTSIDE",
    "PhotoRefusedError",
    "check_photo",
    "read_photo",
]

#: One message for every name that leads outside the folder, whether or not something is
#: there: the report must not tell a roster's author which outside files exist.
OUTSIDE = "outside the photo folder"
LOOP = "photo path is a symlink loop (链接循环)"
FOLDER = "is a folder, not a photo (是文件夹)"
MISSING = "missing photo (not found)"
#: Links followed for one name before it counts as a loop (Linux's own limit is 40).
_MAX_LINKS = 40


class PhotoRefusedError(Exception):
    """A photo name that cannot be used; ``reason`` says why without any absolute path."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _open_inside(root: Path, name: str) -> int:
    """A read-only descriptor of the regular file ``name`` names inside ``root``.

    Every component is opened relative to the descriptor of the directory before it with
    ``O_NOFOLLOW``, so nothing the kernel resolves can lead out of the folder, and a file
    swapped for a link after a check is never followed. A link inside the folder is followed
    by reading its text: relative targets are walked the same way (``..`` may not climb
    above the folder), an absolute target only when it names a place under the folder.
    Decided on names alone, never by looking at an outside file, so refusals do not reveal
    what exists outside. The caller closes the descriptor.
    """
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or PureWindowsPath(name).drive:
        raise PhotoRefusedError(OUTSIDE)
    root_text = os.path.realpath(root)
    try:
        root_fd = os.open(root_text, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise PhotoRefusedError(
            f"photo folder cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    stack = [root_fd]
    pending: deque[str] = deque(pure.parts)
    links = 0
    try:
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) == 1:
                    raise PhotoRefusedError(OUTSIDE)
                os.close(stack.pop())
                continue
            last = not pending
            # O_NONBLOCK: a FIFO named like a photo must not hang the import on open.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            if not last:
                flags |= os.O_DIRECTORY
            try:
                fd = os.open(part, flags, dir_fd=stack[-1])
            except OSError as exc:
                target = _link_text(part, stack[-1], exc)
                if target is None:
                    raise _refusal(exc) from None
                links += 1
                if links > _MAX_LINKS:
                    raise PhotoRefusedError(LOOP) from None
                from_root, parts = _inside_parts(target, root_text)
                if from_root:
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extendleft(reversed(parts))
                continue
            if not last:
                stack.append(fd)
                continue
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                return fd
            os.close(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PhotoRefusedError(FOLDER)
            raise PhotoRefusedError("not a regular file (不是普通文件)")
        raise PhotoRefusedError(FOLDER)  # the name was the folder itself ("." or "")
    finally:
        for fd in stack:
            os.close(fd)


def _link_text(part: str, dir_fd: int, exc: OSError) -> str | None:
    """The target of the link ``part`` when opening it failed for being one, else None."""
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return None
    try:
        info = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            return None
        return os.readlink(part, dir_fd=dir_fd)
    except OSError:
        return None


def _inside_parts(target: str, root_text: str) -> tuple[bool, list[str]]:
    """A link target as (walk from the folder itself?, components to walk): a relative
    target is walked from the link's directory; an absolute one only when it names a place
    under the folder (then from the folder); anything else is outside."""
    pure = PurePosixPath(target)
    if not pure.is_absolute():
        return False, list(pure.parts)
    root = PurePosixPath(root_text)
    if root in pure.parents:
        return True, list(pure.relative_to(root).parts)
    raise PhotoRefusedError(OUTSIDE)


def _refusal(exc: OSError) -> PhotoRefusedError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return PhotoRefusedError(MISSING)
    return PhotoRefusedError(f"photo cannot be read ({exc.strerror or type(exc).__name__})")


def check_photo(root: Path, name: str) -> None:
    """Refuse (:class:`PhotoRefusedError`) a name that is not a regular file inside ``root``;
    nothing is read."""
    os.close(_open_inside(root, name))


def read_photo(root: Path, name: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the photo ``name`` inside ``root``, read from the descriptor that was
    checked (so they are the bytes of the file that passed, whatever happens to the name)."""
    fd = _open_inside(root, name)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise PhotoRefusedError(f"file is {size} bytes, over the limit of {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > max_bytes:  # grew while read
                raise PhotoRefusedError(f"file is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
