"""A truncated MP4 as a recorder that lost power leaves it: index first, data cut short."""

from __future__ import annotations

from pathlib import Path

import av


def truncated_mp4(source: Path, out: Path, keep: float = 0.5) -> Path:
    """Remux ``source`` with its index at the front (``faststart``), then cut the file to
    ``keep`` of its bytes: it opens and plays, and ends early."""
    whole = out.with_name("whole-" + out.name)
    with (
        av.open(str(source)) as src,
        av.open(str(whole), "w", options={"movflags": "faststart"}) as dst,
    ):
        stream = src.streams.video[0]
        copy = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = copy
            dst.mux(packet)
    data = whole.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out
