"""Small real video files written on the fly (no data set needed)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def small_video(
    path: Path, *, frames: int = 30, fps: int = 10, size: tuple[int, int] = (320, 240)
) -> Path:
    """An MPEG-4 file of ``frames`` frames: a grey level that changes frame by frame."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), (i * 8) % 256, dtype=np.uint8)
            image[height // 4 : height // 2, width // 4 : width // 2] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
