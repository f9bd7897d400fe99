"""Worker processes end with the process that started them, even after its kill -9."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

#: prctl(2) option: the signal this process gets when its parent thread dies.
_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> bool:
    """Ask Linux to send this process SIGKILL when its parent dies (``PR_SET_PDEATHSIG``).

    A pool worker's parent killed by ``kill -9`` or ended by SIGTERM runs no cleanup: without
    this its workers (and, holding its pipe open, multiprocessing's resource tracker) live on
    under PID 1 for ever. ``expected_parent``: the parent's pid, checked after the call, since
    a parent that died just before it would never deliver the signal. Returns whether the
    request was made (False where the platform has no such call).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:  # pragma: no cover - every glibc/musl Linux has one
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover
        logger.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # the parent is already gone: nobody is waiting for this worker
    return True


def _init_bound_worker(parent: int, initializer: Callable[..., None] | None, args: Any) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*args)


def bound_process_pool(
    max_workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A spawn-started process pool whose workers die with this process (see
    :func:`die_with_parent`); spawn, not fork, because callers hold database connections
    and threads that a forked child must not inherit."""
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_bound_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
