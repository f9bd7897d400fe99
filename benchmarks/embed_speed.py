"""Compare face-descriptor speed of dlib-bin with the ONNX conversion run in onnxruntime.

Usage: python benchmarks/embed_speed.py [--json] [--images DIR] [--faces-per-config N]

Timings are CPU time of this process divided by the number of faces ("ms per face per
core"): the process is pinned to a single core with os.sched_setaffinity where the OS
supports it, and onnxruntime runs with one intra-op thread, so CPU time is the cost on one
core even when other processes compete for the machine. Wall-clock medians are shown too;
they include time stolen by other processes.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

try:
    from cunan.faces.dlib_onnx import INPUT_NAME, OUTPUT_NAME, convert
except ImportError:  # running from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cunan.faces.dlib_onnx import INPUT_NAME, OUTPUT_NAME, convert

import dlib
import face_recognition_models
import onnxruntime as ort

Chips = npt.NDArray[np.uint8]
CHIP_SIZE = 150
ONNX_BATCH_SIZES = (1, 8, 32)
DLIB_BATCH = 8
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Context:
    pinning: str
    max_abs_diff: float
    chips_compared: int
    load_before: float
    load_after: float


@dataclass(frozen=True)
class Timing:
    name: str
    batch: int
    cpu_ms_per_face: float
    wall_ms_per_face: float
    faces: int


def pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (os.sched_setaffinity unavailable on this platform)"
    allowed = sorted(os.sched_getaffinity(0))
    # The last allowed core is the one least likely to also serve interrupts on Linux.
    core = allowed[-1]
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core} of {len(allowed)} allowed"


def time_calls(name: str, batch: int, calls: int, run: Callable[[], object]) -> Timing:
    run()  # warm-up: first calls allocate buffers and (onnxruntime) pick kernels
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(calls):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        run()
        cpu.append((time.process_time() - cpu_start) * 1e3 / batch)
        wall.append((time.perf_counter() - wall_start) * 1e3 / batch)
    return Timing(name, batch, statistics.median(cpu), statistics.median(wall), calls * batch)


def chips_from_images(directory: Path, count: int) -> Chips:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    chips: list[Chips] = []
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        image = dlib.load_rgb_image(str(path))
        for face in detector(image, 1):
            shape = predictor(image, face)
            chips.append(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=0.25))
        if len(chips) >= count:
            return np.stack(chips[:count])
    if not chips:
        raise SystemExit(f"no faces found in images under {directory}")
    # Speed does not depend on content, so repeating faces to fill the batch is harmless.
    return np.stack([chips[i % len(chips)] for i in range(count)])


def random_chips(count: int) -> Chips:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)


def make_session(onnx_path: Path, level: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    parser.add_argument("--images", type=Path, help="make real face chips from images here")
    parser.add_argument(
        "--faces-per-config", type=int, default=128, help="faces timed per onnx batch size"
    )
    parser.add_argument("--dlib-faces", type=int, default=32, help="faces timed for dlib")
    parser.add_argument(
        "--compare-opt-levels",
        action="store_true",
        help="also time onnxruntime with basic/extended graph optimisation",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    pinning = pin_to_one_core()
    n_chips = max(*ONNX_BATCH_SIZES, args.dlib_faces)
    chips = chips_from_images(args.images, n_chips) if args.images else random_chips(n_chips)
    dat_path = Path(face_recognition_models.face_recognition_model_location())

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "dlib_face_recognition_resnet_model_v1.onnx"
        convert(dat_path, onnx_path)
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        if args.compare_opt_levels:
            levels["extended"] = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            levels["basic"] = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        sessions = {name: make_session(onnx_path, level) for name, level in levels.items()}

    model = dlib.face_recognition_model_v1(str(dat_path))
    dlib_chips = chips[: args.dlib_faces]
    reference = np.stack([np.asarray(model.compute_face_descriptor(c)) for c in dlib_chips])
    onnx_out = sessions["all"].run([OUTPUT_NAME], {INPUT_NAME: dlib_chips})[0]
    max_abs_diff = float(np.abs(onnx_out - reference).max())

    load_before = os.getloadavg()[0]
    timings: list[Timing] = []
    chip_cycle = itertools.cycle(dlib_chips)
    timings.append(
        time_calls(
            "dlib-bin", 1, args.dlib_faces, lambda: model.compute_face_descriptor(next(chip_cycle))
        )
    )
    dlib_batch = list(dlib_chips[:DLIB_BATCH])
    timings.append(
        time_calls(
            "dlib-bin",
            DLIB_BATCH,
            max(1, args.dlib_faces // DLIB_BATCH),
            functools.partial(model.compute_face_descriptor, dlib_batch),
        )
    )
    for name, session in sessions.items():
        for batch in ONNX_BATCH_SIZES:
            feed = {INPUT_NAME: chips[:batch]}
            calls = max(1, args.faces_per_config // batch)
            run = functools.partial(session.run, None, feed)
            timings.append(time_calls(f"onnxruntime ({name})", batch, calls, run))
    load_after = os.getloadavg()[0]

    dlib_ms = timings[0].cpu_ms_per_face
    context = Context(pinning, max_abs_diff, len(dlib_chips), load_before, load_after)
    report(timings, context)
    if args.json:
        by_batch = {t.batch: t for t in timings if t.name == "onnxruntime (all)"}
        summary = {
            "dlib_ms_per_face": round(dlib_ms, 3),
            "onnx_ms_per_face_batch1": round(by_batch[1].cpu_ms_per_face, 3),
            "onnx_ms_per_face_batch8": round(by_batch[8].cpu_ms_per_face, 3),
            "onnx_ms_per_face_batch32": round(by_batch[32].cpu_ms_per_face, 3),
            "dlib_ms_per_face_batch8": round(timings[1].cpu_ms_per_face, 3),
            "dlib_wall_ms_per_face": round(timings[0].wall_ms_per_face, 3),
            "onnx_wall_ms_per_face_batch32": round(by_batch[32].wall_ms_per_face, 3),
            "max_abs_diff": max_abs_diff,
            "chips_compared": len(dlib_chips),
            "chips_source": str(args.images) if args.images else "random noise",
            "timing": "median process CPU time per face, one core, 1 onnxruntime thread",
            "pinning": pinning,
            "loadavg_1min_before_after": [load_before, load_after],
            "onnxruntime": ort.__version__,
        }
        print(json.dumps(summary))


def report(timings: list[Timing], context: Context) -> None:
    dlib_ms = timings[0].cpu_ms_per_face
    table = Table(title="Face descriptor cost per face, single core")
    for column in ("runtime", "batch", "CPU ms/face", "wall ms/face", "faces", "speed-up"):
        if column == "runtime":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    for t in timings:
        table.add_row(
            t.name,
            str(t.batch),
            f"{t.cpu_ms_per_face:.2f}",
            f"{t.wall_ms_per_face:.2f}",
            str(t.faces),
            f"{dlib_ms / t.cpu_ms_per_face:.1f}x",
        )
    console = Console()
    console.print(table)
    console.print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, onnxruntime {ort.__version__}, "
        f"{context.pinning}; load average (1 min) {context.load_before:.2f} before, "
        f"{context.load_after:.2f} after"
    )
    console.print(
        f"max |onnx - dlib| over {context.chips_compared} chips x 128 dims: "
        f"{context.max_abs_diff:.3g}"
    )


if __name__ == "__main__":
    main()
