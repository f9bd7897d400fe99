"""Tracking stage speed: motion gate on quiet and busy frames, detector + tracker on a video.

Usage: python benchmarks/tracking.py [--video PATH] [--json]

Run it on an otherwise idle machine for per-core figures; the detector uses one thread.
Every frame is analysed (the pipeline analyses about 1 in 4 at its default cap).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cunan.tracking.bestshots import TrackShots
from cunan.tracking.motion import MotionGate
from cunan.tracking.stage import TrackingStage

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO = DATA / "street_video" / "street_1080p.mp4"


def read_frames(path: Path) -> list[tuple[float, NDArray[np.uint8]]]:
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            frames.append((float(frame.time or 0.0), image))
    return frames


def gate_us_per_frame(frames: list[NDArray[np.uint8]], repeats: int) -> float:
    """Median over ``repeats`` passes of the mean cost of MotionGate.check per frame, in µs."""
    samples = []
    for _ in range(repeats):
        gate = MotionGate()
        gate.check(frames[0])  # seeds the background
        start = time.perf_counter()
        for image in frames[1:]:
            gate.check(image)
        samples.append((time.perf_counter() - start) / (len(frames) - 1) * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    if not args.video.exists():
        print(f"video not found: {args.video}", file=sys.stderr)
        return 2

    frames = read_frames(args.video)
    height, width = frames[0][1].shape[:2]
    # A quiet lane: the first frame repeated with sensor noise (sigma 2 grey levels).
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 2, frames[0][1].shape) for _ in range(4)]
    quiet = [np.clip(frames[0][1] + noise[i % 4], 0, 255).astype(np.uint8) for i in range(50)]
    busy = [image for _, image in frames]
    quiet_us = gate_us_per_frame(quiet, repeats=5)
    busy_us = gate_us_per_frame(busy, repeats=3)

    from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler

    # Every tile on every frame, and the camera pipeline's way (TileScheduler: tiles without
    # faces every other frame): the same people should come out as tracks either way.
    runs = {}
    for name, detector in (
        ("every_tile", BlazeFaceDetector()),
        ("tile_scheduler", TileScheduler(BlazeFaceDetector())),
    ):
        stage = TrackingStage(detector)
        finished: list[TrackShots] = []
        motion_frames = whole_zone_frames = 0
        start = time.process_time()
        for timestamp, image in frames:
            result = stage.process(image, timestamp)
            motion_frames += result.motion.motion
            whole_zone_frames += result.motion.whole_zone
            finished.extend(result.finished)
        finished.extend(stage.flush())
        runs[name] = {
            "detect_track_ms_per_frame": round(
                (time.process_time() - start) / len(frames) * 1000, 1
            ),
            "confirmed_tracks": len(finished),
            "best_shots": sum(len(t.shots) for t in finished),
            "regions_run_fraction": (
                round(detector.regions_run / detector.regions_total, 3)
                if isinstance(detector, TileScheduler)
                else 1.0
            ),
        }
    payload = {
        "video": args.video.name,
        "frame_size": [width, height],
        "frames": len(frames),
        "gate_quiet_us_per_frame": round(quiet_us, 1),
        "gate_busy_us_per_frame": round(busy_us, 1),
        "motion_frames": motion_frames,
        "whole_zone_frames": whole_zone_frames,
        "runs": runs,
    }
    print(f"{'frames':28s} {len(frames)} ({width}x{height})")
    print(f"{'gate, quiet frames':28s} {quiet_us:8.1f} µs/frame")
    print(f"{'gate, busy frames':28s} {busy_us:8.1f} µs/frame")
    print(f"{'frames with motion':28s} {motion_frames} (whole zone: {whole_zone_frames})")
    for name, r in runs.items():
        print(
            f"{name:16s} gate+detect+track+shots {r['detect_track_ms_per_frame']:6.1f} ms/frame "
            f"(CPU), {r['confirmed_tracks']} confirmed tracks ({r['best_shots']} best shots), "
            f"{r['regions_run_fraction']:.0%} of detector regions run"
        )
    if args.json:
        print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
