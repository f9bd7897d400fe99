"""Real-data tests of the BlazeFace tiled video detector."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cunan.domain import DetectedFace, RGBImage
from cunan.faces.detect import FaceDetector
from cunan.faces.models import ModelNotAvailableError
from tests.street_faces import FACES_BY_EYE

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
VIDEO = DATA / "street_video" / "street_1080p.mp4"
OBAMA = DATA / "face_recognition_examples" / "examples" / "obama.jpg"

#: With the default 640 px tiles the detector found 7/8, 6/6 and 5/7 of these (it misses
#: the half-hidden grey-haired woman in frame 0 and the two ~30 px faces at the back in
#: frame 104). The margin of 2 below what was counted leaves room for a runtime or resize
#: change moving a borderline (score ~0.5) face, while still failing a detector that only
#: finds the 3-4 large faces, as the untiled full frame and dlib HOG do.
MISSING_ALLOWED = 2
#: Detections matching no counted face; seen: up to 1 per frame (a back of a head).
EXTRA_ALLOWED = 3


def _require(path: Path) -> Path:
    if path.exists():
        return path
    reason = f"test data {path} is absent (shared/data is not shipped with the project)"
    if os.environ.get("CUNAN_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    from cunan.faces.video_detector import BlazeFaceDetector

    try:
        return BlazeFaceDetector()
    except ModelNotAvailableError as exc:
        if os.environ.get("CUNAN_REQUIRE_DATA") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _frames(path: Path, wanted: set[int]) -> Iterator[tuple[int, RGBImage]]:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                yield index, np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            if index >= max(wanted):
                return


def _matches(face: DetectedFace, centre: tuple[int, int]) -> bool:
    box = face.box
    return box.left <= centre[0] < box.right and box.top <= centre[1] < box.bottom


@pytest.fixture(scope="module")
def street_results(detector: FaceDetector) -> dict[int, list[DetectedFace]]:
    video = _require(VIDEO)
    return {index: detector.detect(image) for index, image in _frames(video, set(FACES_BY_EYE))}


@pytest.mark.parametrize("frame_index", sorted(FACES_BY_EYE))
def test_finds_the_faces_counted_by_eye(
    street_results: dict[int, list[DetectedFace]], frame_index: int
) -> None:
    faces = street_results[frame_index]
    counted = FACES_BY_EYE[frame_index]
    found = [c for c in counted if any(_matches(f, c) for f in faces)]
    extra = [f for f in faces if not any(_matches(f, c) for c in counted)]
    assert len(found) >= len(counted) - MISSING_ALLOWED, (frame_index, faces)
    assert len(extra) <= EXTRA_ALLOWED, (frame_index, extra)


def test_street_faces_are_sorted_and_in_frame(
    street_results: dict[int, list[DetectedFace]],
) -> None:
    for faces in street_results.values():
        scores = [f.score for f in faces]
        assert scores == sorted(scores, reverse=True)
        for face in faces:
            assert 0 <= face.box.left < face.box.right <= 1920
            assert 0 <= face.box.top < face.box.bottom <= 1080
            assert face.detector == "blazeface"
            assert face.landmarks_source == "blazeface"


def test_obama_one_face_with_ordered_landmarks(detector: FaceDetector) -> None:
    cv2 = pytest.importorskip("cv2")
    bgr = cv2.imread(str(_require(OBAMA)))
    image = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    faces = detector.detect(image)
    assert len(faces) == 1
    face = faces[0]
    points = face.landmarks
    assert points.shape == (5, 2)
    assert points.dtype == np.float32
    box = face.box
    assert np.all(points[:, 0] >= box.left) and np.all(points[:, 0] <= box.right)
    assert np.all(points[:, 1] >= box.top) and np.all(points[:, 1] <= box.bottom)
    eye_left, eye_right, nose, mouth_left, mouth_right = points
    assert eye_left[0] < eye_right[0]
    assert mouth_left[0] < mouth_right[0]
    assert max(eye_left[1], eye_right[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_black_image_has_no_faces(detector: FaceDetector) -> None:
    assert detector.detect(np.zeros((1080, 1920, 3), dtype=np.uint8)) == []


@pytest.mark.parametrize("shape", [(10, 10, 3), (1, 1, 3), (10, 2000, 3)])
def test_tiny_and_odd_images_do_not_crash(
    detector: FaceDetector, shape: tuple[int, int, int]
) -> None:
    assert detector.detect(np.full(shape, 128, dtype=np.uint8)) == []


def test_rejects_non_rgb(detector: FaceDetector) -> None:
    with pytest.raises(ValueError):
        detector.detect(np.zeros((10, 10), dtype=np.uint8))


def test_tiles_cover_the_frame() -> None:
    from cunan.faces.video_detector import tile_origins

    for length, tile, overlap in [
        (1920, 640, 128),
        (1080, 640, 128),
        (1080, 480, 96),
        (500, 640, 0),
    ]:
        starts = tile_origins(length, tile, overlap)
        assert starts[0] == 0
        assert min(starts[-1] + tile, length) == length or length <= tile
        for a, b in itertools.pairwise(starts):
            assert b - a <= tile - overlap


def _street_sequence(video: Path, step: int) -> Iterator[tuple[int, RGBImage]]:
    av = pytest.importorskip("av")
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % step == 0:
                yield index, np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def test_tile_scheduler_still_finds_the_faces_counted_by_eye(detector: FaceDetector) -> None:
    from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler

    assert isinstance(detector, BlazeFaceDetector)
    scheduler = TileScheduler(detector)
    # Every 4th frame: what the pipeline analyses of a 25 fps camera at its default cap.
    for index, image in _street_sequence(_require(VIDEO), 4):
        faces = scheduler.detect(image)
        if index in FACES_BY_EYE and index > 0:
            counted = FACES_BY_EYE[index]
            found = [c for c in counted if any(_matches(f, c) for f in faces)]
            assert len(found) >= len(counted) - MISSING_ALLOWED, (index, faces)
    assert scheduler.regions_run < scheduler.regions_total


def _small_face_scene(detector: FaceDetector, width_px: int) -> tuple[RGBImage, RGBImage]:
    """A grey 1080p frame, and the same with Obama's face ``width_px`` wide near the centre
    of the lower right tile (small enough that only the tiles find it)."""
    cv2 = pytest.importorskip("cv2")
    photo = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(_require(OBAMA))), cv2.COLOR_BGR2RGB))
    (face,) = detector.detect(photo)
    box = face.box
    pad = box.width * 0.6
    crop = photo[
        int(max(0, box.top - pad)) : int(box.bottom + pad),
        int(max(0, box.left - pad)) : int(box.right + pad),
    ]
    scale = width_px / box.width
    small = cv2.resize(
        crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), cv2.INTER_AREA
    )
    empty = np.full((1080, 1920, 3), 120, dtype=np.uint8)
    scene = empty.copy()
    top, left = 700, 1560
    scene[top : top + small.shape[0], left : left + small.shape[1]] = small
    return empty, scene


@pytest.mark.parametrize(
    ("face_px", "tiling"),
    [
        (56, {}),  # the default tiling: only the tiles find a face this small
        (150, {"full_frame": False}),  # no full-frame pass: every face needs its tile
        (56, {"overlap": 0}),  # tiles that only touch
    ],
    ids=["default", "no-full-frame", "no-overlap"],
)
def test_tile_scheduler_finds_a_new_face_in_an_idle_tile_one_frame_late_at_most(
    detector: FaceDetector, face_px: int, tiling: dict[str, Any]
) -> None:
    from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler, TilingConfig

    assert isinstance(detector, BlazeFaceDetector)
    empty, scene = _small_face_scene(detector, face_px)
    plain = BlazeFaceDetector(tiling=TilingConfig(**tiling))
    assert len(plain.detect(scene)) == 1  # every tile: the face is there to be found
    regions = plain.regions(1080, 1920)
    whole = [r for r in regions if not r.tile]
    if whole:
        assert plain.detect_regions(scene, whole) == []  # the full-frame pass alone misses it
    tiles = len(regions) - len(whole)
    assert tiles % 2 == 0  # so half of them are on the rota each frame
    per_quiet_frame = len(whole) + tiles // 2

    for start in (0, 1):  # the face arrives on either phase of the idle rota
        scheduler = TileScheduler(plain)
        for _ in range(2 + start):
            assert scheduler.detect(empty) == []
        before = scheduler.regions_run
        assert scheduler.detect(empty) == []
        # A quiet frame after the first runs the full-frame pass and half the tiles.
        assert scheduler.regions_run - before == per_quiet_frame
        found = [len(scheduler.detect(scene)) for _ in range(4)]
        assert found[0] + found[1] >= 1, found  # found on arrival or on the next frame
        assert found[2:] == [1, 1], found  # its tile is now hot: found on every frame
        (hot,) = scheduler.hot_tiles
        before = scheduler.regions_run
        scheduler.detect(scene)
        scheduler.detect(scene)
        # Over two frames: the full-frame pass twice, each idle tile once, and the face's
        # tile on the frame it is not on the rota as well.
        assert scheduler.regions_run - before == 2 * per_quiet_frame + 1
        # The face leaves: its tile keeps running for `hold` frames, then rejoins the rota.
        for _ in range(scheduler.hold - 1):
            scheduler.detect(empty)
            assert scheduler.hot_tiles == {hot}
        scheduler.detect(empty)
        assert scheduler.hot_tiles == frozenset()


def test_motion_crops_bypass_the_schedule(detector: FaceDetector) -> None:
    from cunan.domain import BoundingBox
    from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler
    from cunan.tracking.motion import detect_in_regions

    assert isinstance(detector, BlazeFaceDetector)
    _, scene = _small_face_scene(detector, 56)
    scheduler = TileScheduler(detector)
    # Two crops of one size in one frame: were they scheduled, each would advance the rota
    # for the other and a tile could stay off for ever.
    halves = [BoundingBox(0, 0, 960, 1080), BoundingBox(960, 0, 1920, 1080)]
    for _ in range(3):
        faces = detect_in_regions(scheduler, scene, halves)
        assert len(faces) == 1
        assert 1560 <= faces[0].box.left < 1620
    assert scheduler.regions_run == 0
    # The whole zone, the same crop every frame, is the camera's frame: scheduled.
    detect_in_regions(scheduler, scene, [BoundingBox(0, 0, 1920, 1080)], whole_zone=True)
    assert scheduler.regions_run == len(detector.regions(1080, 1920))


def test_tile_scheduler_starts_afresh_on_another_frame_size(detector: FaceDetector) -> None:
    from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler, TilingConfig

    assert isinstance(detector, BlazeFaceDetector)
    empty, scene = _small_face_scene(detector, 56)
    scheduler = TileScheduler(detector)
    for _ in range(3):
        scheduler.detect(empty)
    crop = np.ascontiguousarray(scene[:, 200:])  # another size: every tile runs
    before = scheduler.regions_run
    assert len(scheduler.detect(crop)) == 1
    assert scheduler.regions_run - before == len(detector.regions(1080, 1720))
    # idle_stride 1 is the plain detector: every region, every frame.
    every = TileScheduler(BlazeFaceDetector(tiling=TilingConfig(idle_stride=1)))
    for _ in range(3):
        every.detect(empty)
    assert every.regions_run == every.regions_total
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError):
            TilingConfig(idle_stride=bad)  # type: ignore[arg-type]


def test_detection_waits_out_another_thread_holding_every_object(
    detector: FaceDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc.get_objects() on another thread (a memory sampler, a profiler) can catch the bound
    method of an invocation in flight and keep it, and with it a reference to LiteRT's
    interpreter, alive for a moment; LiteRT refuses to invoke meanwhile, which once stopped a
    camera in a soak run. The other thread's reference is held here on purpose, and let go
    from inside the detector's wait: the same states, in a fixed order, with no race."""
    from cunan.faces import video_detector
    from cunan.faces.video_detector import BlazeFaceDetector

    assert isinstance(detector, BlazeFaceDetector)
    _, scene = _small_face_scene(detector, 56)
    interpreter = detector._interpreter
    held: list[object] = []

    def bare_invoke() -> None:
        interpreter.set_tensor(detector._input_index, np.zeros((1, 192, 192, 3), np.float32))
        interpreter.invoke()

    # The hazard is real on this LiteRT: while another reference exists, it refuses...
    held.append(interpreter._interpreter)
    with pytest.raises(RuntimeError, match="reference to internal data"):
        bare_invoke()

    # ...and the detector waits the refusal out: the "other thread" lets go during the wait.
    waits: list[float] = []

    def let_go_while_waiting(seconds: float) -> None:
        waits.append(seconds)
        held.clear()

    monkeypatch.setattr(video_detector.time, "sleep", let_go_while_waiting)
    held.append(interpreter._interpreter)
    assert len(detector.detect(scene)) == 1
    assert len(waits) == 1 and not held

    # A reference that is never let go ends in the refusal, after every wait: no hang.
    waits.clear()
    monkeypatch.setattr(video_detector.time, "sleep", waits.append)
    held.append(interpreter._interpreter)
    try:
        with pytest.raises(RuntimeError, match="reference to internal data"):
            detector.detect(scene)
    finally:
        held.clear()
    assert waits == list(video_detector._BUSY_RETRY_WAITS_S)
    assert len(detector.detect(scene)) == 1  # and it works again once let go
