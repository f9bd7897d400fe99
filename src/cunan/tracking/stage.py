"""The tracking stage of one camera: motion gate -> detect -> track -> best shots."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cunan.domain import DetectedFace, RGBImage
from cunan.tracking.bestshots import BestShotSelector, TrackShots
from cunan.tracking.motion import Detector, MotionGate, MotionResult, detect_in_regions
from cunan.tracking.tracker import FaceTracker, TrackUpdate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What one frame produced: the gate's verdict, the detections, the tracker's update and
    the finished tracks (ended in this frame) with their best shots."""

    motion: MotionResult
    detections: tuple[DetectedFace, ...]
    update: TrackUpdate
    finished: tuple[TrackShots, ...]


class FrameAnalysisError(RuntimeError):
    """A frame's analysis failed after the tracker had already ended some tracks:
    ``finished`` holds those tracks with the shots they had, still to be decided."""

    def __init__(self, finished: tuple[TrackShots, ...]) -> None:
        super().__init__(f"frame analysis failed; {len(finished)} ended track(s) kept")
        self.finished = finished


class TrackingStage:
    """Runs the detector only where the gate saw motion and feeds tracker and selector.

    A frame without motion still updates the tracker (with no detections), so tracks age
    by the frames' clock and end; a face that stands perfectly still therefore ends its
    track and starts a new one when it moves again.
    """

    def __init__(
        self,
        detector: Detector,
        *,
        gate: MotionGate | None = None,
        tracker: FaceTracker | None = None,
        selector: BestShotSelector | None = None,
    ) -> None:
        self.detector = detector
        self.gate = gate or MotionGate()
        self.tracker = tracker or FaceTracker()
        self.selector = selector or BestShotSelector()

    def process(self, frame: RGBImage, timestamp_s: float) -> FrameResult:
        motion = self.gate.check(frame)
        detections: list[DetectedFace] = []
        if motion.motion:
            detections = detect_in_regions(
                self.detector, frame, motion.regions, whole_zone=motion.whole_zone
            )
            zone = self.gate.zone
            if zone is not None:
                # Motion regions are padded boxes around the zone's changes (and a polygon's
                # bounding box is larger than the polygon): a face whose centre lies outside
                # the zone (the road beside the lane) is not tracked or recognised.
                detections = [face for face in detections if zone.holds(face)]
        update = self.tracker.update(timestamp_s, detections, frame)
        try:
            finished = self.selector.update(frame, update, detections)
        except Exception as exc:
            # The tracker has already ended (and forgotten) this update's tracks: hand their
            # shots on without this frame's faces, or their sightings would be lost and
            # their crops kept for good.
            raise FrameAnalysisError(tuple(self.selector.finish(update))) from exc
        return FrameResult(motion, tuple(detections), update, tuple(finished))

    def flush(self) -> list[TrackShots]:
        """End every track (end of file, camera stopped) and return the confirmed ones."""
        return self.selector.finish(self.tracker.flush())
