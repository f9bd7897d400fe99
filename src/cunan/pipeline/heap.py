"""Gives the C heap's free pages back to the OS (glibc ``malloc_trim``): RSS tracks live memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys

logger = logging.getLogger(__name__)


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library when it is glibc on Linux (the only one with ``malloc_trim``)."""
    name = ctypes.util.find_library("c")
    if name is None or not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return lib if hasattr(lib, "malloc_trim") else None


def trim_heap() -> bool:
    """Release free heap pages in every malloc arena; False where that is not available.

    Decoded 1080p frames are ~6 MB each. Once such buffers are freed, glibc raises its mmap
    threshold and serves the next ones from its arenas, keeping the freed pages resident: RSS
    then steps up at every new peak (a burst of faces, a larger detector batch) and never
    comes down, which a soak run reads as growth. Trimming returns those pages; it takes a
    few milliseconds, so the camera loop calls it about once a minute.
    """
    lib = libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
