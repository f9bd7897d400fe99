"""From tracks to decided, stored sightings: per-track decisions, sightings, events, workers."""

from cunan.pipeline.cameras import CameraRecord, CameraSettings, NoticeNotPostedError
from cunan.pipeline.decision import FaceVote, TrackDecision, TrackDecisionConfig, decide_track
from cunan.pipeline.events import EventBus, SightingDecided
from cunan.pipeline.leases import CameraLeases
from cunan.pipeline.matcher import FaceMatcher, RegistryGalleryMatcher
from cunan.pipeline.runner import CameraRunner, CameraTarget, DecidedSighting, TrackAnalyser
from cunan.pipeline.store import CameraStore, EventOutbox, SightingStore

__all__ = [
    "CameraLeases",
    "CameraRecord",
    "CameraRunner",
    "CameraSettings",
    "CameraStore",
    "CameraTarget",
    "DecidedSighting",
    "EventBus",
    "EventOutbox",
    "FaceMatcher",
    "FaceVote",
    "NoticeNotPostedError",
    "RegistryGalleryMatcher",
    "SightingDecided",
    "SightingStore",
    "TrackAnalyser",
    "TrackDecision",
    "TrackDecisionConfig",
    "decide_track",
]
