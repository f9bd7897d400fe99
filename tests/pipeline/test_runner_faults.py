"""A frame whose analysis raises is skipped and counted; only a run of failures stops a camera."""

from __future__ import annotations

from pathlib import Path

import pytest

from cunan.capture.sources import SourceConfig
from cunan.config import Settings
from cunan.domain import DetectedFace, RGBImage
from cunan.pipeline.build import build_runner
from cunan.pipeline.runner import MAX_FAILED_FRAMES_IN_A_ROW, CameraRunner, CameraTarget
from cunan.registry.datadir import Registry
from cunan.tracking.motion import Detector
from tests.conftest import require_data

pytestmark = pytest.mark.slow


class FaultyDetector:
    """The camera's real detector, made to raise on chosen calls (a library's transient
    refusal, the way LiteRT refused while another thread held its interpreter)."""

    def __init__(self, inner: Detector, failing: set[int] | None) -> None:
        self.inner = inner
        self.failing = failing  # call numbers that raise; None: every call
        self.calls = 0

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        call = self.calls
        self.calls += 1
        if self.failing is None or call in self.failing:
            raise RuntimeError(f"injected failure on call {call}")
        return self.inner.detect(image)


def _runner_with(
    registry: Registry, failing: set[int] | None, *, loop: bool = False
) -> tuple[CameraRunner, FaultyDetector]:
    clip: Path = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    source = SourceConfig(str(clip), realtime=False, loop=loop)
    target = CameraTarget(name="lane", source=source, fps_cap=8)
    runner = build_runner(registry, Settings(), target)
    faulty = FaultyDetector(runner.stage.detector, failing)
    runner.stage.detector = faulty
    return runner, faulty


def test_failed_frames_are_skipped_counted_and_the_camera_goes_on(registry: Registry) -> None:
    runner, faulty = _runner_with(registry, {3, 4, 10})
    sightings = runner.run()
    health = runner.health()
    # Each injected failure aborts its own frame (the next call belongs to the next frame).
    assert faulty.calls > 10
    assert health.frames_failed == 3
    assert health.frames_analysed >= faulty.calls - 3
    assert "injected failure on call 10" in (health.last_error or "")
    # The rest of the clip is still watched: the passers-by (strangers here) are still decided.
    assert len(sightings) >= 1
    assert health.capture.frames_decoded > 200


def test_a_run_of_failures_stops_the_camera_with_the_reason(registry: Registry) -> None:
    # Looping, so only the failures can end the run.
    runner, faulty = _runner_with(registry, None, loop=True)
    with pytest.raises(RuntimeError, match="frames in a row failed analysis") as caught:
        runner.run()
    assert "injected failure" in str(caught.value)
    assert faulty.calls == MAX_FAILED_FRAMES_IN_A_ROW
    assert runner.health().frames_failed == MAX_FAILED_FRAMES_IN_A_ROW
