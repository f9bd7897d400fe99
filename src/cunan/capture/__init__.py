"""Camera sources -> frames: one latest-frame reader per camera, with reconnects and health."""

from cunan.capture.frames import Frame
from cunan.capture.health import CaptureHealth, CaptureState
from cunan.capture.reader import BackoffPolicy, CameraReader
from cunan.capture.sources import SourceConfig, SourceError, SourceKind, redact_url, resolve_source

__all__ = [
    "BackoffPolicy",
    "CameraReader",
    "CaptureHealth",
    "CaptureState",
    "Frame",
    "SourceConfig",
    "SourceError",
    "SourceKind",
    "redact_url",
    "resolve_source",
]
