"""One frame from a camera, now: for "test connection" and the snapshot preview."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import av
from PIL import Image

from cunan.capture.sources import (
    SourceConfig,
    SourceError,
    describe_error,
    open_source,
    resolve_source,
)

#: Longest side of a snapshot preview (pixels); the zone editor scales coordinates anyway.
PREVIEW_MAX_SIDE = 1280


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    width: int
    height: int


def snapshot(config: SourceConfig, *, max_frames: int = 50) -> Snapshot:
    """The first decodable frame of the source as a JPEG, or :class:`SourceError` saying why
    not (message redacted: no password ever)."""
    spec = resolve_source(config)
    container = open_source(spec)
    started = time.monotonic()
    try:
        for number, frame in enumerate(container.decode(video=0)):
            if number >= max_frames:
                break
            image = Image.fromarray(frame.to_ndarray(format="rgb24"))
            width, height = image.size
            image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=85)
            return Snapshot(jpeg=out.getvalue(), width=width, height=height)
    except av.FFmpegError as exc:
        raise SourceError(
            describe_error(exc, spec, phase="read", elapsed_s=time.monotonic() - started)
        ) from None
    finally:
        container.close()
    raise SourceError(f"no picture decoded from {spec.display}")
