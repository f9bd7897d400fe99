"""Faces counted by eye on three frames of ../shared/data/street_video/street_1080p.mp4."""

from __future__ import annotations

#: Face centres (x, y in 1080p pixels) on frames 0, 52 and 104: every face whose eyes are
#: visible and that is at least ~20 px wide (docs/benchmarks-detectors.md). Backs of heads
#: and a face hidden behind a shoulder are not counted. Shared by the video-detector test
#: and benchmarks/detectors.py so both judge against the same count.
FACES_BY_EYE: dict[int, list[tuple[int, int]]] = {
    0: [
        (359, 762),
        (316, 640),
        (476, 633),
        (711, 590),
        (886, 646),
        (932, 677),
        (1101, 640),
        (1505, 572),
    ],
    52: [(238, 710), (590, 675), (965, 752), (1108, 695), (1155, 725), (1380, 730)],
    104: [(398, 650), (794, 700), (952, 699), (1136, 698), (1203, 716), (1279, 708), (1347, 727)],
}
