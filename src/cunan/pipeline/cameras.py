"""Camera records and their settings: zone and per-camera settings parsed from JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from cunan.capture.sources import SourceConfig, redact_url
from cunan.errors import InvalidInput
from cunan.faces.video_detector import TilingConfig
from cunan.pipeline.decision import TrackDecisionConfig
from cunan.tracking.motion import DetectionZone


class NoticeNotPostedError(RuntimeError, InvalidInput):
    """Recognition was asked for on a camera without the public notice recorded as posted."""


@dataclass(frozen=True, slots=True)
class CameraSettings:
    """Per-camera settings (stored as JSON on the camera row); units in the names.

    ``fps_cap`` bounds the frames analysed per second (the rest are decoded and skipped):
    the per-camera CPU budget. The ``tile_*`` / ``full_frame`` / ``idle_tile_stride`` fields
    are the detector's :class:`~cunan.faces.video_detector.TilingConfig`.
    """

    fps_cap: float = 8.0
    tile_size_px: int = 640
    tile_overlap_px: int = 128
    full_frame: bool = True
    idle_tile_stride: int = 2
    min_faces: int = 2
    min_agreeing: int = 2
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.fps_cap <= 0:
            raise ValueError("fps_cap must be > 0 (frames per second)")
        self.tiling()
        self.decision()
        SourceConfig(
            "x",
            rtsp_transport=self.rtsp_transport,
            open_timeout_s=self.open_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )

    @classmethod
    def from_json(cls, text: str | None) -> CameraSettings:
        data = json.loads(text) if text else {}
        if not isinstance(data, dict):
            raise ValueError("camera settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown camera setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def tiling(self) -> TilingConfig:
        return TilingConfig(
            tile_size=self.tile_size_px,
            overlap=self.tile_overlap_px,
            full_frame=self.full_frame,
            idle_stride=self.idle_tile_stride,
        )

    def decision(self) -> TrackDecisionConfig:
        return TrackDecisionConfig(min_faces=self.min_faces, min_agreeing=self.min_agreeing)


def parse_zone(text: str | None) -> DetectionZone | None:
    """``{"rectangle": [l, t, r, b]}`` or ``{"polygon": [[x, y], ...]}`` (pixels), or None."""
    if not text:
        return None
    data: Any = json.loads(text)
    if isinstance(data, dict) and "rectangle" in data:
        left, top, right, bottom = (float(v) for v in data["rectangle"])
        if right <= left or bottom <= top:
            raise ValueError("zone rectangle needs left < right and top < bottom")
        return DetectionZone.rectangle(left, top, right, bottom)
    if isinstance(data, dict) and "polygon" in data:
        points = tuple((float(p[0]), float(p[1])) for p in data["polygon"])
        return DetectionZone(points)
    raise ValueError('zone must be {"rectangle": [l, t, r, b]} or {"polygon": [[x, y], ...]}')


def rectangle_zone_json(left: float, top: float, right: float, bottom: float) -> str:
    """The stored form of a rectangular zone (full-frame pixels, whole numbers)."""
    box = [round(left), round(top), round(right), round(bottom)]
    text = json.dumps({"rectangle": box})
    parse_zone(text)  # the same checks as any stored zone (left < right, top < bottom)
    return text


def zone_rectangle(text: str | None) -> tuple[float, float, float, float] | None:
    """A stored zone's bounding rectangle (a polygon's box), or None for the whole frame."""
    zone = parse_zone(text)
    if zone is None:
        return None
    xs = [x for x, _ in zone.polygon]
    ys = [y for _, y in zone.polygon]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True, slots=True)
class CameraRecord:
    """A registered camera as the pipeline uses it."""

    id: int
    name: str
    village_id: int | None
    area_id: int | None
    house_id: int | None
    stream_url: str
    enabled: bool
    public_notice_posted: bool
    zone: DetectionZone | None
    zone_json: str | None
    settings: CameraSettings
    #: Why recognition here is lawful and where the notice hangs (free text), if written.
    public_notice_reason: str | None = None

    @property
    def display_url(self) -> str:
        """The stream URL without its password."""
        return redact_url(self.stream_url)

    def require_notice(self) -> None:
        if not self.public_notice_posted:
            raise NoticeNotPostedError(
                f"camera {self.name!r}: recognition refused because the public notice sign is "
                "not recorded as posted (required by law before face recognition starts); "
                f"post it, then run 'cunan cameras enable {self.name} --notice-posted'"
            )
