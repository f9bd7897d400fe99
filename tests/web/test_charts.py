"""The server-drawn chart: one line per camera, scaled to round ticks, days left to right."""

from __future__ import annotations

from datetime import date, timedelta

from cunan.web.charts import HEIGHT, WIDTH, sightings_chart


def test_lines_are_scaled_to_the_busiest_day() -> None:
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(7)]
    chart = sightings_chart(days, {"gate": [0, 1, 2, 3, 4, 5, 7], "lane": [0] * 7})
    assert [s.name for s in chart.series] == ["gate", "lane"]
    gate, lane = chart.series
    assert gate.total == 22 and gate.today == 7 and lane.today == 0
    ticks = [value for _, value in chart.y_ticks]
    assert ticks[0] == 0 and ticks[-1] >= 7 and len(ticks) <= 6
    xs = [x for x, _, _ in gate.dots]
    assert xs == sorted(xs) and xs[0] == chart.left and xs[-1] == chart.right
    # Zero sits on the bottom axis; the top tick on the top edge; all inside the picture.
    assert all(y == chart.bottom for _, y, _ in lane.dots)
    assert max(y for _, y, _ in gate.dots) == chart.bottom
    assert all(0 <= x <= WIDTH and 0 <= y <= HEIGHT for x, y, _ in gate.dots)
    assert [label for _, label in chart.x_labels] == [d.strftime("%m-%d") for d in days]
    assert chart.days == 7
    # Different cameras are told apart by colour and by dash pattern.
    assert gate.color != lane.color and gate.dash != lane.dash


def test_a_quiet_week_still_draws_an_axis() -> None:
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(30)]
    chart = sightings_chart(days, {"gate": [0] * 30})
    assert [value for _, value in chart.y_ticks] == [0, 1]
    # A month labels every other day so the labels do not overlap on a phone.
    assert len(chart.x_labels) == 15
    assert sightings_chart(days, {}).series == ()
