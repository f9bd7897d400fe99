"""Soak run: one camera watched over real RTSP for N minutes, memory of `cunan watch` sampled.

Usage (from the repository root, with ../shared/data and Debian's rtsp-server-perl + ffmpeg):

    python benchmarks/soak.py --minutes 30 [--video PATH] [--json]
    python benchmarks/soak.py --minutes 6 --tracemalloc 8 --keep /tmp/soak   # attribute growth

The street video is served in an endless real-time loop (``ffmpeg -re -stream_loop -1``) by a
real RTSP server on 127.0.0.1, and ``cunan watch`` analyses it against an empty registry in a
temporary data dir, exactly as a village camera would run. Every 15 s the script records the
resident memory (RSS) of the watch process; "flat" means no growth trend after warm-up: a
backlog of frames or a leak would show as a steady slope; the summary gives the slope and
range over the last 20 minutes. The watcher also samples itself (``CUNAN_MEMSTATS``, see
``cunan.pipeline.memstats``): glibc heap in use, Python blocks, gc objects, frames dropped, and
with ``--tracemalloc`` the allocation sites that grew, by traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.capture.rtsp_server import PerlRtspServer

DATA = Path(os.environ.get("CUNAN_SHARED_DATA", "../shared/data"))


def _fit(t: NDArray[np.float64], y: NDArray[np.float64]) -> float | None:
    """Least-squares slope per minute, None with fewer than 3 points."""
    return float(np.polyfit(t, y, 1)[0] * 60) if len(t) >= 3 else None


def _window_stats(t: NDArray[np.float64], y: NDArray[np.float64], first_s: float) -> dict[str, Any]:
    """Slope (per minute) and range of ``y`` over the samples at or after ``first_s``."""
    keep = t >= first_s
    if keep.sum() < 3:
        return {"from_min": round(first_s / 60, 1), "slope_per_min": None, "range": None}
    slope = _fit(t[keep], y[keep])
    return {
        "from_min": round(first_s / 60, 1),
        "slope_per_min": None if slope is None else round(slope, 3),
        "range": [round(float(y[keep].min()), 1), round(float(y[keep].max()), 1)],
    }


def _read_memstats(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--video", type=Path, default=DATA / "street_video" / "street_1080p.mp4")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument(
        "--memstats-interval",
        type=float,
        default=60.0,
        help="seconds between the watcher's own memory samples (CUNAN_MEMSTATS)",
    )
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace Python allocations with this many frames per traceback (costs CPU)",
    )
    parser.add_argument(
        "--trim",
        action="store_true",
        help="malloc_trim(0) after each memstats sample: fragmentation vs live memory",
    )
    parser.add_argument(
        "--malloc-arena-max", type=int, default=None, help="MALLOC_ARENA_MAX for the watcher"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="directory to keep the memstats / tracemalloc files in (default: discarded)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)  # fmt: skip

    samples: list[tuple[float, float, float]] = []  # (seconds, rss MB, cpu seconds)
    sightings = 0
    with tempfile.TemporaryDirectory() as tmp, PerlRtspServer(args.video) as server:
        stats_dir = args.keep or Path(tmp)
        stats_dir.mkdir(parents=True, exist_ok=True)
        stats_path = stats_dir / "memstats.jsonl"
        for old in (stats_path, stats_path.with_name(stats_path.name + ".tracemalloc.txt")):
            old.unlink(missing_ok=True)
        env = {
            **os.environ,
            "CUNAN_DATA_DIR": tmp,
            "CUNAN_ADMIN_PASSWORD": "soak-only-pass",
            "CUNAN_MEMSTATS": str(stats_path),
            "CUNAN_MEMSTATS_INTERVAL_S": str(args.memstats_interval),
            "CUNAN_TRACEMALLOC": str(args.tracemalloc),
            "CUNAN_MEMSTATS_TRIM": "1" if args.trim else "",
        }
        if args.malloc_arena_max is not None:
            env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
        subprocess.run([sys.executable, "-m", "cunan", "init"], env=env, check=True)
        # The watcher's log (warnings and errors only, no faces or names) is kept: a watcher
        # that ends before the time is up must say why.
        log_path = stats_dir / "watch.log"
        log = log_path.open("w", encoding="utf-8")
        watch = subprocess.Popen(
            [sys.executable, "-m", "cunan", "watch", server.url, "--json", "--notice-posted",
             "--transport", "udp"],
            env=env, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        # Drain stdout as it comes: a full pipe would block the watcher's prints and stall
        # the whole pipeline (the first soak runs measured exactly that, not CunAn).
        lines: list[str] = []
        stdout = watch.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
        reader.start()
        proc = psutil.Process(watch.pid)
        start = time.monotonic()
        end = start + args.minutes * 60
        try:
            while time.monotonic() < end and watch.poll() is None:
                time.sleep(args.interval)
                if watch.poll() is not None:
                    break  # exited during the sleep: a zero sample would fake a drop
                tree = [proc, *proc.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in tree if p.is_running()) / 1e6
                cpu = sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())
                samples.append((time.monotonic() - start, rss, cpu))
                print(f"{samples[-1][0]:7.0f} s  rss {rss:7.1f} MB  cpu {cpu:7.1f} s", flush=True)
        finally:
            early_exit = watch.poll()
            watch.terminate()
            watch.wait(timeout=60)
            reader.join(timeout=10)
            log.close()
            sightings = sum(1 for line in lines if line.startswith("{"))
            if early_exit is not None:
                tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
                print(
                    f"the watcher ended early (exit code {early_exit}); last lines of its log:",
                    *tail,
                    sep="\n",
                    file=sys.stderr,
                )
        memstats = _read_memstats(stats_path)
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    warm = t >= min(120.0, t.max() / 4) if len(t) else t
    slope = _fit(t[warm], rss[warm]) if len(t) else None
    span = float(t.max()) if len(t) else 0.0
    result: dict[str, Any] = {
        "minutes": round(span / 60, 1),
        "rss_first_mb": round(float(rss[0]), 1) if len(rss) else None,
        "rss_last_mb": round(float(rss[-1]), 1) if len(rss) else None,
        "rss_max_mb": round(float(rss.max()), 1) if len(rss) else None,
        "rss_slope_mb_per_min_after_warmup": None if slope is None else round(slope, 3),
        # The target's "flat over 30 minutes" judged on the last 20 (the first ~10 warm up).
        "rss_last_20_min_mb": _window_stats(t, rss, max(0.0, span - 20 * 60)) if len(t) else None,
        "cpu_percent_of_core": round(100 * samples[-1][2] / samples[-1][0], 1) if samples else None,
        "sightings": sightings,
        "watcher_exit_code": early_exit,
        "load": os.getloadavg(),
    }
    if memstats:
        last, mt = memstats[-1], np.array([m["t_s"] for m in memstats], dtype=np.float64)
        result["watcher"] = {
            k: last.get(k)
            for k in ("frames_decoded", "frames_dropped", "frames_analysed", "sightings_stored",
                      "history", "open_tracks", "frames_failed")
        }  # fmt: skip
        for key in (
            "malloc_in_use_mb",
            "traced_mb",
            "py_blocks",
            "gc_objects",
            "rss_after_trim_mb",
        ):
            if all(m.get(key) is not None for m in memstats):
                y = np.array([m[key] for m in memstats], dtype=np.float64)
                result["watcher"][key] = {
                    "first": memstats[0][key],
                    "last": last[key],
                    "last_20_min": _window_stats(mt, y, max(0.0, float(mt.max()) - 20 * 60)),
                }
    print(json.dumps(result) if args.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
