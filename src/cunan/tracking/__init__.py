"""Faces across frames: motion gate, tracks, and per-track best shots."""

from cunan.tracking.bestshots import BestShot, BestShotConfig, BestShotSelector, TrackShots
from cunan.tracking.motion import DetectionZone, MotionConfig, MotionGate, MotionResult
from cunan.tracking.stage import FrameResult, TrackingStage
from cunan.tracking.tracker import FaceTracker, Track, TrackerConfig, TrackPoint, TrackUpdate

__all__ = [
    "BestShot",
    "BestShotConfig",
    "BestShotSelector",
    "DetectionZone",
    "FaceTracker",
    "FrameResult",
    "MotionConfig",
    "MotionGate",
    "MotionResult",
    "Track",
    "TrackPoint",
    "TrackShots",
    "TrackUpdate",
    "TrackerConfig",
    "TrackingStage",
]
