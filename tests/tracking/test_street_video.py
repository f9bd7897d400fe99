"""Real video: motion gate + BlazeFace + tracker + best shots give one track per passer-by."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cunan.faces.models import ModelNotAvailableError
from cunan.tracking.bestshots import BestShotConfig, BestShotSelector, TrackShots
from cunan.tracking.stage import TrackingStage
from tests.conftest import require_data

#: People whose faces become visible in street_1080p.mp4 (105 frames, 4.2 s), counted by
#: eye on frames 0-104 (every 8th, plus the frames around occlusions, with tracks drawn):
#: the red-haired young man, the boy in the blue hoodie, the dark-haired woman with a
#: scarf crossing left to right, the curly-haired woman in red, the grey-haired man in the
#: centre, the bald man with a scarf on the left, the man leaving on the right, the
#: white-haired woman in the black-and-red coat, the man with glasses, the dark-haired
#: woman at the back right, the bald man at the back, the woman behind him: 12.
#: Seen: 12 confirmed tracks. Allowed 10-15: the curly-haired woman is hidden behind the
#: boy for ~2.5 s and honestly comes back as a new track, and a borderline far face may or
#: may not be confirmed; one track per frame (hundreds) or per detection burst fails.
PEOPLE_COUNTED = 12
TRACKS_ALLOWED = range(10, 16)
MAX_SHOTS = 4


@pytest.mark.slow
@pytest.mark.parametrize("scheduled", [False, True], ids=["every-tile", "tile-scheduler"])
def test_street_video_gives_one_track_per_passer_by(scheduled: bool) -> None:
    video = require_data("street_video/street_1080p.mp4")
    av = pytest.importorskip("av")
    from cunan.faces.video_detector import BlazeFaceDetector, TileScheduler

    try:
        plain = BlazeFaceDetector()
    except ModelNotAvailableError as exc:
        if os.environ.get("CUNAN_REQUIRE_DATA") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    # The camera pipeline runs the detector through its tile scheduler (idle tiles every
    # other frame); the tracks must be the same people either way.
    detector = TileScheduler(plain) if scheduled else plain
    stage = TrackingStage(detector, selector=BestShotSelector(BestShotConfig(max_shots=MAX_SHOTS)))
    finished: list[TrackShots] = []
    frames = 0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            result = stage.process(image, float(frame.time or 0.0))
            finished.extend(result.finished)
            frames += 1
    finished.extend(stage.flush())
    assert frames == 105
    assert len(finished) in TRACKS_ALLOWED, [t.track.hits for t in finished]
    for item in finished:
        assert item.track.confirmed and item.track.hits >= 3
        assert 1 <= len(item.shots) <= MAX_SHOTS
        assert all(s.crop.dtype == np.uint8 and s.crop.size > 0 for s in item.shots)
    # Most detections belong to long tracks: the same people, not a new track per frame.
    assert sum(t.track.hits for t in finished) / len(finished) > 20
    if isinstance(detector, TileScheduler):
        # It did skip work: idle tiles were left out on some frames.
        assert detector.regions_run < detector.regions_total
