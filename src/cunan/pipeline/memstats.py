"""Opt-in memory diagnostics of a camera process for soak runs: RSS, heaps, allocation diffs."""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cunan.pipeline.heap import libc, trim_heap

logger = logging.getLogger(__name__)

#: JSON-lines file to append one memory sample to per interval; unset = diagnostics off.
ENV_PATH = "CUNAN_MEMSTATS"
#: Seconds between samples (default 60).
ENV_INTERVAL = "CUNAN_MEMSTATS_INTERVAL_S"
#: Frames per traceback for tracemalloc (e.g. 8); unset or 0 = no tracemalloc. Tracing costs
#: CPU (the pipeline then analyses fewer frames), so it is for attributing growth only.
ENV_TRACEMALLOC = "CUNAN_TRACEMALLOC"
#: "1": call glibc's malloc_trim(0) after each sample and record the RSS it gives back, to
#: tell free-but-unreturned heap (fragmentation) from live memory (a leak).
ENV_TRIM = "CUNAN_MEMSTATS_TRIM"

#: Allocation sites listed per tracemalloc diff.
TOP_SITES = 15

_MB = 1e6


class _MallInfo2(ctypes.Structure):
    # glibc >= 2.33 ``struct mallinfo2``: every field a size_t.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux), None elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class MemoryStats:
    """Samples this process's memory every ``interval_s`` into ``path`` (a daemon thread).

    Each JSON line holds RSS, glibc's heap in use / free (``mallinfo2``, all arenas), Python's
    allocated block count, tracemalloc's traced total when tracing, and whatever
    ``counters`` returns (the runner's frame and sighting counts, and the gc-tracked object
    count, which the runner takes on its own thread: see :func:`count_gc_objects`).
    With tracemalloc, ``<path>.tracemalloc.txt`` gets the top allocation sites by traceback
    that grew since the first sample (taken after one interval, i.e. after warm-up). Tracing
    inflates RSS and the native heap itself (its trace table, the kept first snapshot), so a
    traced run attributes Python-level growth only; judge RSS on an untraced run.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval_s: float = 60.0,
        trace_frames: int = 0,
        trim: bool = False,
        counters: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.trace_path = path.with_name(path.name + ".tracemalloc.txt")
        self.interval_s = interval_s
        self.trace_frames = trace_frames
        self.trim = trim
        self.counters = counters
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._baseline: tracemalloc.Snapshot | None = None

    @classmethod
    def from_env(cls, counters: Callable[[], dict[str, Any]] | None = None) -> MemoryStats | None:
        """The diagnostics the environment asks for (see the ``ENV_*`` names), or None."""
        path = os.environ.get(ENV_PATH)
        if not path:
            return None
        return cls(
            Path(path),
            interval_s=float(os.environ.get(ENV_INTERVAL, "60")),
            trace_frames=int(os.environ.get(ENV_TRACEMALLOC, "0") or 0),
            trim=os.environ.get(ENV_TRIM, "") == "1",
            counters=counters,
        )

    def start(self) -> None:
        if self.trace_frames > 0 and not tracemalloc.is_tracing():
            tracemalloc.start(self.trace_frames)
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="memstats", daemon=True)
        self._thread.start()
        logger.info("memory diagnostics every %.0f s into %s", self.interval_s, self.path)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.trace_frames > 0 and tracemalloc.is_tracing():
            tracemalloc.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.write_sample()
            except Exception:  # diagnostics must never stop the camera
                logger.exception("memory sample failed")

    def malloc_info(self) -> dict[str, float] | None:
        """glibc heap totals over all arenas, in MB (None without glibc >= 2.33)."""
        lib = libc()
        if lib is None or not hasattr(lib, "mallinfo2"):
            return None
        lib.mallinfo2.restype = _MallInfo2
        info: _MallInfo2 = lib.mallinfo2()
        return {
            "malloc_in_use_mb": round((info.uordblks + info.hblkhd) / _MB, 2),
            "malloc_free_mb": round(info.fordblks / _MB, 2),
            "malloc_mmapped_mb": round(info.hblkhd / _MB, 2),
            "malloc_arena_mb": round(info.arena / _MB, 2),
        }

    def sample(self) -> dict[str, Any]:
        """One sample (also used by :meth:`write_sample`)."""
        rss = rss_bytes()
        row: dict[str, Any] = {
            "t_s": round(time.monotonic() - self._start, 1),
            "rss_mb": None if rss is None else round(rss / _MB, 2),
            "py_blocks": sys.getallocatedblocks(),
        }
        row.update(self.malloc_info() or {})
        if tracemalloc.is_tracing():
            current, _peak = tracemalloc.get_traced_memory()
            row["traced_mb"] = round(current / _MB, 2)
        if self.counters is not None:
            row.update(self.counters())
        if self.trim and trim_heap():
            after = rss_bytes()
            row["rss_after_trim_mb"] = None if after is None else round(after / _MB, 2)
        return row

    def write_sample(self) -> dict[str, Any]:
        row = self.sample()
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        if tracemalloc.is_tracing():
            self._write_trace_diff(row["t_s"])
        return row

    def _write_trace_diff(self, t_s: float) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, __file__),  # this module's own report writing
                tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
            )
        )
        if self._baseline is None:
            self._baseline = snapshot
            return
        diffs = snapshot.compare_to(self._baseline, "traceback")
        with self.trace_path.open("a", encoding="utf-8") as out:
            total = sum(d.size_diff for d in diffs) / _MB
            blocks = sum(d.count_diff for d in diffs)
            out.write(
                f"== t={t_s:.0f} s: traced {total:+.3f} MB, {blocks:+d} blocks since the "
                "first sample\n"
            )
            # By line first (small steady growth spread over many call paths adds up here),
            # then by whole traceback (which call path allocates).
            by_line = snapshot.compare_to(self._baseline, "lineno")
            by_line.sort(key=lambda d: d.count_diff, reverse=True)
            out.write("-- lines with the most new blocks\n")
            for line in by_line[:TOP_SITES]:
                frame = line.traceback[0]
                out.write(
                    f"{line.count_diff:+d} blocks  {line.size_diff / _MB:+.3f} MB  "
                    f"{frame.filename}:{frame.lineno}\n"
                )
            out.write("-- tracebacks with the most growth\n")
            for diff in diffs[:TOP_SITES]:
                out.write(
                    f"{diff.size_diff / _MB:+.3f} MB  {diff.count_diff:+d} blocks  "
                    f"(now {diff.size / _MB:.3f} MB)\n"
                )
                # File and line only, innermost first: Traceback.format() would read every
                # source file through linecache, whose cache then shows up as growth.
                for frame in reversed(diff.traceback):
                    out.write(f"    {frame.filename}:{frame.lineno}\n")
            out.write("\n")


def count_gc_objects() -> int:
    """How many objects the garbage collector tracks.

    Call it only from the thread that runs the camera's models, never from the sampling
    thread: the list ``gc.get_objects`` builds holds a reference to every object while it
    exists, and LiteRT refuses to invoke an interpreter that anything else references at
    that moment (a soak run's camera stopped after 4 and after 15 minutes with "There is at
    least 1 reference to internal data in the interpreter").
    """
    return len(gc.get_objects())
