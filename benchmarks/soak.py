"""Soak run: one camera watched over real RTSP for N minutes, memory of `cunan watch` sampled.

Usage (from the repository root, with ../shared/data and Debian's rtsp-server-perl + ffmpeg):

    python benchmarks/soak.py --minutes 30 [--video PATH] [--json]

The street video is served in an endless real-time loop (``ffmpeg -re -stream_loop -1``) by a
real RTSP server on 127.0.0.1, and ``cunan watch`` analyses it against an empty registry in a
temporary data dir, exactly as a village camera would run. Every 15 s the script records the
resident memory (RSS) of the watch process; "flat" means no growth trend after warm-up: a
backlog of frames or a leak would show as a steady slope.
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

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.capture.rtsp_server import PerlRtspServer

DATA = Path(os.environ.get("CUNAN_SHARED_DATA", "../shared/data"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--video", type=Path, default=DATA / "street_video" / "street_1080p.mp4")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    samples: list[tuple[float, float, float]] = []  # (seconds, rss MB, cpu seconds)
    sightings = 0
    with tempfile.TemporaryDirectory() as tmp, PerlRtspServer(args.video) as server:
        env = {**os.environ, "CUNAN_DATA_DIR": tmp, "CUNAN_ADMIN_PASSWORD": "soak-only-pass"}
        subprocess.run([sys.executable, "-m", "cunan", "init"], env=env, check=True)
        watch = subprocess.Popen(
            [sys.executable, "-m", "cunan", "watch", server.url, "--json", "--notice-posted",
             "--transport", "udp"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        # Drain stdout as it comes: a full pipe would block the watcher's prints and stall
        # the whole pipeline (the first soak runs measured exactly that, not CunAn).
        lines: list[str] = []
        assert watch.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(watch.stdout), daemon=True)
        reader.start()
        proc = psutil.Process(watch.pid)
        start = time.monotonic()
        end = start + args.minutes * 60
        try:
            while time.monotonic() < end and watch.poll() is None:
                time.sleep(args.interval)
                tree = [proc, *proc.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in tree if p.is_running()) / 1e6
                cpu = sum(sum(p.cpu_times()[:2]) for p in tree if p.is_running())
                samples.append((time.monotonic() - start, rss, cpu))
                print(f"{samples[-1][0]:7.0f} s  rss {rss:7.1f} MB  cpu {cpu:7.1f} s", flush=True)
        finally:
            watch.terminate()
            watch.wait(timeout=60)
            reader.join(timeout=10)
            sightings = sum(1 for line in lines if line.startswith("{"))
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    warm = t >= min(120.0, t.max() / 4) if len(t) else t
    slope = float(np.polyfit(t[warm], rss[warm], 1)[0] * 60) if warm.sum() >= 3 else None
    result = {
        "minutes": round(float(t.max()) / 60, 1) if len(t) else 0,
        "rss_first_mb": round(float(rss[0]), 1) if len(rss) else None,
        "rss_last_mb": round(float(rss[-1]), 1) if len(rss) else None,
        "rss_max_mb": round(float(rss.max()), 1) if len(rss) else None,
        "rss_slope_mb_per_min_after_warmup": None if slope is None else round(slope, 3),
        "cpu_percent_of_core": round(100 * samples[-1][2] / samples[-1][0], 1) if samples else None,
        "sightings": sightings,
        "load": os.getloadavg(),
    }
    print(json.dumps(result) if args.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
