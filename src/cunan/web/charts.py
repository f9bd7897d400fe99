"""Charts drawn on the server as SVG geometry (no script): sightings per day per camera."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

#: Line colours with at least 4.5:1 contrast on white, told apart without relying on hue
#: alone (each line also has its own dash pattern).
PALETTE = ("#0b5cad", "#b3261e", "#1a7f37", "#8250df", "#9a6700", "#0e7490", "#57606a")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4")

WIDTH = 640
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 40, 24, 10, 30


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    color: str
    dash: str
    points: str
    dots: tuple[tuple[float, float, int], ...]
    total: int
    today: int


@dataclass(frozen=True, slots=True)
class LineChart:
    width: int
    height: int
    #: How many days the chart covers.
    days: int
    left: int
    top: int
    right: int
    bottom: int
    series: tuple[Series, ...]
    x_labels: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, int], ...]


def _ticks(peak: int) -> list[int]:
    """Up to five round steps from 0 to at least ``peak``."""
    step = 1
    while peak / step > 4:
        step = step * 2 if str(step)[0] in "15" else step * 5 // 2
    top = max(step, -(-peak // step) * step)
    return list(range(0, top + 1, step))


def sightings_chart(days: Sequence[date], counts: Mapping[str, Sequence[int]]) -> LineChart:
    """One line per camera over ``days``; ``counts[camera][i]`` belongs to ``days[i]``."""
    peak = max((max(c, default=0) for c in counts.values()), default=0)
    ticks = _ticks(peak)
    top_value = ticks[-1]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    span = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + plot_w * i / span, 1)

    def y(value: int) -> float:
        return round(TOP + plot_h * (1 - value / top_value), 1)

    series = []
    for n, (name, values) in enumerate(sorted(counts.items())):
        dots = tuple((x(i), y(v), v) for i, v in enumerate(values))
        series.append(
            Series(
                name=name,
                color=PALETTE[n % len(PALETTE)],
                dash=DASHES[n % len(DASHES)],
                points=" ".join(f"{px},{py}" for px, py, _ in dots),
                dots=dots,
                total=sum(values),
                today=values[-1] if values else 0,
            )
        )
    # Every label on a phone-width week; every other one beyond two weeks.
    every = 1 if len(days) <= 14 else 2
    labels = tuple((x(i), d.strftime("%m-%d")) for i, d in enumerate(days) if i % every == 0)
    return LineChart(
        width=WIDTH,
        height=HEIGHT,
        days=len(days),
        left=LEFT,
        top=TOP,
        right=WIDTH - RIGHT,
        bottom=HEIGHT - BOTTOM,
        series=tuple(series),
        x_labels=labels,
        y_ticks=tuple((y(t), t) for t in ticks),
    )
