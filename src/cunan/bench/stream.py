"""Stream pipeline speed: per-core real-time factor, CPU per camera, frame-to-sighting latency.

Usage: cunan bench stream [--json] [--fps-cap N] [--repeat N] [--data DIR]
(or python -m cunan.bench.stream)

Runs the whole camera chain (decode -> motion gate -> BlazeFace -> tracker -> best shots ->
dlib embedding -> open-set match -> track decision -> encrypted sighting in SQLite) on:

- the 1080p 25 fps street video (busy: nearly every frame has motion and faces), decoded as
  fast as possible (``--fast``): real-time factor per core = video seconds / process CPU
  seconds, at the default analysis cap and with every frame analysed;
- the same video played in real time like a camera: CPU per camera (% of one core), frames
  the analysis could not take (dropped) and the reader's buffer (never more than one frame);
- the same street video scaled to 1280x720 (a 720p camera on the same scene);
- the 640x360 30 fps Hamilton clip (busy) and a generated quiet 1080p stream (a still street
  frame with sensor noise: the motion gate keeps the detector off).

Latency is measured from the decode of the frame that ended a track (the tracker's end
rule) to the committed sighting row. ``callable``: :func:`run` returns the result dict (the
lead wires it into ``cunan bench stream``); the last line of ``--json`` output is the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cunan.capture.sources import SourceConfig
from cunan.config import Settings
from cunan.faces.embed import Embedder
from cunan.faces.video_detector import TileScheduler
from cunan.pipeline.build import build_embedder, build_runner, limit_threads
from cunan.pipeline.runner import CameraTarget
from cunan.registry.datadir import KEY_FILENAME, Registry
from cunan.registry.service import RegistryService
from cunan.security.cipher import FieldCipher
from cunan.security.keys import KeyRing
from cunan.storage.database import Database, sqlite_url
from cunan.storage.migrate import upgrade

#: The shared test videos: ``../shared/data`` seen from the repository root by default.
DATA = Path(os.environ.get("CUNAN_SHARED_DATA", "../shared/data"))
STREET = "street_video/street_1080p.mp4"
HAMILTON = "face_recognition_examples/examples/short_hamilton_clip.mp4"


def temp_registry(directory: Path) -> Registry:
    """An empty registry in ``directory`` (a stranger-only gallery: every face is embedded
    and matched; the gallery size does not matter at village scale)."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / KEY_FILENAME
    KeyRing.generate().save(key_file, overwrite=False)
    database = Database.open(sqlite_url(directory))
    upgrade(database)
    service = RegistryService(database, FieldCipher(KeyRing.load(key_file)))
    service.add_village("bench")
    return Registry(directory, key_file, database, service)


def quiet_video(directory: Path, source: Path, seconds: float = 6.0) -> Path:
    """A still 1080p frame of ``source`` with sensor-like noise, 25 fps, H.264."""
    import av

    target = directory / "quiet_1080p.mp4"
    with av.open(str(source)) as container:
        still = next(container.decode(video=0)).to_ndarray(format="rgb24")
    rng = np.random.default_rng(0)
    noise = [rng.integers(-3, 4, still.shape, dtype=np.int16) for _ in range(5)]
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = still.shape[1], still.shape[0], "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(int(seconds * 25)):
            image = np.clip(still.astype(np.int16) + noise[i % 5], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return target


def scaled_video(directory: Path, source: Path, height: int = 720) -> Path:
    """``source`` scaled to ``height`` lines (width kept even, aspect kept), same fps, H.264."""
    import av

    target = directory / f"{source.stem}_{height}p.mp4"
    with av.open(str(source)) as container, av.open(str(target), "w") as out:
        src = container.streams.video[0]
        width = round(src.width * height / src.height / 2) * 2
        stream = out.add_stream("libx264", rate=src.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # crf 18: the scaled copy should lose as little detail as a camera's own encoder.
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for frame in container.decode(video=0):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            for packet in stream.encode(scaled):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return target


def video_seconds(path: Path) -> tuple[float, float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = stream.frames or sum(1 for _ in container.decode(video=0))
    return frames / fps, fps


def measure(
    registry: Registry,
    embedder: Embedder,
    path: Path,
    *,
    fps_cap: float | None,
    realtime: bool,
    repeat: int = 1,
) -> dict[str, Any]:
    """One run of ``path`` through a fresh runner; with ``repeat`` > 1, the run with the
    median real-time factor (the upper middle one for an even count), plus every run's
    factor (``realtime_factor_runs``): on a shared machine one 4-second run varies by
    +-15 %."""
    results = [
        _measure_once(registry, embedder, path, fps_cap=fps_cap, realtime=realtime)
        for _ in range(max(1, repeat))
    ]
    results.sort(key=lambda r: r["realtime_factor_per_core"] or 0.0)
    chosen = dict(results[len(results) // 2])
    chosen["realtime_factor_runs"] = [r["realtime_factor_per_core"] for r in results]
    return chosen


def _measure_once(
    registry: Registry,
    embedder: Embedder,
    path: Path,
    *,
    fps_cap: float | None,
    realtime: bool,
) -> dict[str, Any]:
    duration, fps = video_seconds(path)
    target = CameraTarget(
        name=path.stem, source=SourceConfig(str(path), realtime=realtime), fps_cap=fps_cap
    )
    runner = build_runner(registry, Settings(), target, embedder=embedder)
    cpu0, wall0 = time.process_time(), time.monotonic()
    sightings = runner.run()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    health = runner.health()
    detector = runner.stage.detector
    tiles_run = (
        round(detector.regions_run / detector.regions_total, 3)
        if isinstance(detector, TileScheduler) and detector.regions_total
        else None
    )
    latencies = sorted(s.latency_s for s in sightings if s.ended_by == "frame" and s.latency_s)
    return {
        "video": path.name,
        "video_s": round(duration, 3),
        "fps": round(fps, 2),
        "fps_cap": fps_cap,
        "realtime": realtime,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "realtime_factor_per_core": round(duration / cpu, 3) if cpu else None,
        "cpu_percent_of_core": round(100 * cpu / wall, 1) if wall else None,
        "frames_decoded": health.capture.frames_decoded,
        "frames_analysed": health.frames_analysed,
        "frames_skipped_by_cap": health.frames_skipped,
        "frames_dropped": health.capture.frames_dropped,
        "sightings": len(sightings),
        "detector_regions_run_fraction": tiles_run,
        "latencies_s": [round(x, 4) for x in latencies],
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return float(np.percentile(np.asarray(values), q))


def run(*, data: Path = DATA, fps_cap: float = 8.0, repeat: int = 5) -> dict[str, Any]:
    """Run every measurement; returns the result dict (see the module docstring)."""
    limit_threads()
    street, hamilton = data / STREET, data / HAMILTON
    for path in (street, hamilton):
        if not path.exists():
            raise FileNotFoundError(f"{path} missing (the shared data dir)")
    with tempfile.TemporaryDirectory(prefix="cunan-bench-stream-") as tmp:
        registry = temp_registry(Path(tmp) / "data")
        try:
            embedder = build_embedder(Settings())
            quiet = quiet_video(Path(tmp), street)
            street_720p = scaled_video(Path(tmp), street, 720)
            # Warm-up, not counted: first invocations (allocators, caches) are a start-up
            # cost, and a camera runs for months.
            measure(registry, embedder, street, fps_cap=fps_cap, realtime=False)
            runs = {
                "street_1080p_fast_capped": measure(
                    registry, embedder, street, fps_cap=fps_cap, realtime=False, repeat=repeat
                ),
                "street_1080p_fast_every_frame": measure(
                    registry, embedder, street, fps_cap=None, realtime=False
                ),
                "street_1080p_realtime_capped": measure(
                    registry, embedder, street, fps_cap=fps_cap, realtime=True
                ),
                "street_720p_fast_capped": measure(
                    registry, embedder, street_720p, fps_cap=fps_cap, realtime=False, repeat=repeat
                ),
                "street_720p_fast_every_frame": measure(
                    registry, embedder, street_720p, fps_cap=None, realtime=False
                ),
                "hamilton_360p_fast_capped": measure(
                    registry, embedder, hamilton, fps_cap=fps_cap, realtime=False, repeat=repeat
                ),
                "quiet_1080p_fast_capped": measure(
                    registry, embedder, quiet, fps_cap=fps_cap, realtime=False, repeat=repeat
                ),
            }
        finally:
            registry.close()
    latencies = sorted(x for name, r in runs.items() if "fast" in name for x in r["latencies_s"])
    capped = runs["street_1080p_fast_capped"]["realtime_factor_per_core"]
    return {
        "runs": runs,
        "fps_cap": fps_cap,
        "repeat": repeat,
        "realtime_factor_1080p": capped,
        "realtime_factor_1080p_runs": runs["street_1080p_fast_capped"]["realtime_factor_runs"],
        "realtime_factor_1080p_every_frame": runs["street_1080p_fast_every_frame"][
            "realtime_factor_per_core"
        ],
        "realtime_factor_720p": runs["street_720p_fast_capped"]["realtime_factor_per_core"],
        "realtime_factor_720p_every_frame": runs["street_720p_fast_every_frame"][
            "realtime_factor_per_core"
        ],
        "realtime_factor_360p": runs["hamilton_360p_fast_capped"]["realtime_factor_per_core"],
        "realtime_factor_1080p_quiet": runs["quiet_1080p_fast_capped"]["realtime_factor_per_core"],
        "cpu_percent_1080p_camera": runs["street_1080p_realtime_capped"]["cpu_percent_of_core"],
        "latency_p50_s": _percentile(latencies, 50),
        "latency_p95_s": _percentile(latencies, 95),
        "latency_samples": len(latencies),
        "busy_1080p_cameras_per_2_cores": round(2 * capped, 2) if capped else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON result last")
    parser.add_argument("--fps-cap", type=float, default=8.0, help="analysed frames per second")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data directory")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of each capped video (the median is kept)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    result = run(data=args.data, fps_cap=args.fps_cap, repeat=args.repeat)
    print(
        f"{'run':32} {'video s':>8} {'cpu s':>7} {'RTF/core':>9} {'%core':>6} "
        f"{'analysed':>9} {'dropped':>8} {'sightings':>9}"
    )
    for name, r in result["runs"].items():
        print(
            f"{name:32} {r['video_s']:8.2f} {r['cpu_s']:7.2f} "
            f"{r['realtime_factor_per_core']:9.2f} {r['cpu_percent_of_core']:6.1f} "
            f"{r['frames_analysed']:9d} {r['frames_dropped']:8d} {r['sightings']:9d}"
        )
    runs_1080p = ", ".join(f"{x:.2f}" for x in result["realtime_factor_1080p_runs"])
    print(f"busy 1080p capped, real-time factor per core of each run: {runs_1080p}")
    p50, p95 = result["latency_p50_s"], result["latency_p95_s"]
    print(
        f"frame-to-sighting latency: p50 {p50 if p50 is None else round(p50, 3)} s, "
        f"p95 {p95 if p95 is None else round(p95, 3)} s over {result['latency_samples']} tracks"
    )
    if args.json:
        summary = {k: v for k, v in result.items() if k != "runs"}
        summary["runs"] = {
            k: {f: v for f, v in r.items() if f != "latencies_s"} for k, r in result["runs"].items()
        }
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
