"""The decoded video frame handed from a camera reader to the analysis stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import av
import numpy as np
from numpy.typing import NDArray

#: An RGB image, height x width x 3, uint8 (the same layout as ``cunan.domain.RGBImage``).
RGBArray = NDArray[np.uint8]


@dataclass(frozen=True)
class Frame:
    """One decoded frame of one camera.

    The pixels are converted to RGB lazily by :meth:`rgb` (and cached), so the frames a slow
    consumer never looks at cost only their decoding. ``seq`` counts decoded frames of the
    reader from 0 and never restarts across reconnects, so a gap means dropped frames.
    ``pts_s`` is the source's presentation time in seconds (None when the source has none);
    it restarts with every connection, unlike ``monotonic_s``.
    """

    camera_id: str
    seq: int
    monotonic_s: float  # time.monotonic() when the frame was decoded
    wall_time: datetime  # UTC, same instant, for storage and display
    pts: int | None
    pts_s: float | None
    width: int
    height: int
    _video: av.VideoFrame | None = field(default=None, repr=False, compare=False)
    _rgb: RGBArray | None = field(default=None, repr=False, compare=False)

    def rgb(self) -> RGBArray:
        """The frame as an RGB uint8 array (height x width x 3), converted once."""
        cached = self._rgb
        if cached is not None:
            return cached
        video = self._video
        if video is None:
            # Another thread converted it meanwhile: it sets _rgb before clearing _video.
            if self._rgb is None:
                raise ValueError("frame has neither pixels nor a decoded source frame")
            return self._rgb
        # rgb24 always gives uint8; the stub's return type is a union over all formats.
        array = cast(RGBArray, video.to_ndarray(format="rgb24"))
        # Frozen for callers; the cache is filled once, and dropping the decoded frame frees
        # FFmpeg's buffer early.
        object.__setattr__(self, "_rgb", array)
        object.__setattr__(self, "_video", None)
        return array

    @classmethod
    def from_rgb(
        cls,
        camera_id: str,
        image: RGBArray,
        *,
        seq: int,
        monotonic_s: float,
        wall_time: datetime,
        pts_s: float | None = None,
    ) -> Frame:
        """A frame made from an existing RGB array (for tests and synthetic sources)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        return cls(
            camera_id=camera_id,
            seq=seq,
            monotonic_s=monotonic_s,
            wall_time=wall_time,
            pts=None,
            pts_s=pts_s,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            _rgb=image,
        )
