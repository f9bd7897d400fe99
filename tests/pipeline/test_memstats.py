"""Memory diagnostics for soak runs: off by default, samples as JSON lines, growth attributed."""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import pytest

from cunan.pipeline.memstats import (
    ENV_INTERVAL,
    ENV_PATH,
    ENV_TRACEMALLOC,
    ENV_TRIM,
    MemoryStats,
    count_gc_objects,
)


def test_off_unless_the_environment_names_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PATH, raising=False)
    assert MemoryStats.from_env() is None


def test_environment_configures_interval_tracing_and_trim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_PATH, str(tmp_path / "m.jsonl"))
    monkeypatch.setenv(ENV_INTERVAL, "5")
    monkeypatch.setenv(ENV_TRACEMALLOC, "4")
    monkeypatch.setenv(ENV_TRIM, "1")
    stats = MemoryStats.from_env()
    assert stats is not None
    assert (stats.path, stats.interval_s, stats.trace_frames, stats.trim) == (
        tmp_path / "m.jsonl",
        5.0,
        4,
        True,
    )


def test_samples_are_json_lines_with_heap_figures_and_counters(tmp_path: Path) -> None:
    stats = MemoryStats(tmp_path / "m.jsonl", counters=lambda: {"frames_dropped": 7})
    stats.write_sample()
    stats.write_sample()
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert all(r["frames_dropped"] == 7 and r["py_blocks"] > 0 for r in rows)
    # Counted by the runner on its own thread, never here (see count_gc_objects).
    assert all("gc_objects" not in r for r in rows)
    assert count_gc_objects() > 0
    if sys.platform.startswith("linux"):
        assert all(r["rss_mb"] > 0 and r["malloc_in_use_mb"] > 0 for r in rows)
    assert "traced_mb" not in rows[0]  # no tracemalloc unless asked
    assert not stats.trace_path.exists()


def _grow(kept: list[bytes]) -> None:
    kept.extend(bytes(2000) + i.to_bytes(4, "little") for i in range(2000))


def test_tracemalloc_diff_names_the_site_that_grew(tmp_path: Path) -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already running (e.g. -X tracemalloc)")
    stats = MemoryStats(tmp_path / "m.jsonl", trace_frames=4)
    kept: list[bytes] = []
    stats.start()  # starts tracing; the sampling thread waits a whole interval (60 s)
    try:
        stats.write_sample()  # the baseline
        _grow(kept)  # ~4 MB that stays alive
        row = stats.write_sample()
    finally:
        stats.stop()
    assert row["traced_mb"] >= 4.0
    report = stats.trace_path.read_text()
    lines = report.split("-- tracebacks with the most growth\n", 1)[1].splitlines()
    assert "test_memstats.py" in report.split("-- lines with the most new blocks\n")[1]
    # Largest growth first, its innermost frame right below: the line in _grow.
    grow_line = _grow.__code__.co_firstlineno + 1
    assert lines[0].startswith("+4.") and lines[1].endswith(f"test_memstats.py:{grow_line}")
    assert not tracemalloc.is_tracing()
