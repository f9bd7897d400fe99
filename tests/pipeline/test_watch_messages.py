"""``cunan watch`` as a user runs it: each problem printed once, no native runtime chatter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capture.truncated import truncated_mp4
from tests.conftest import require_data


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    env = _env()
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "cunan", "init", "--data-dir", str(data)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return data


def _env() -> dict[str, str]:
    # No outside data dir, config or database; the converted-model cache is shared.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CUNAN_") or k == "CUNAN_CACHE_DIR"
    }
    env["CUNAN_ADMIN_PASSWORD"] = "Correct-horse-battery-9"
    return env


def _watch(data: Path, source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cunan",
            "watch",
            str(source),
            "--fast",
            "--notice-posted",
            "--data-dir",
            str(data),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_source_that_cannot_be_read_is_one_error_line(data_dir: Path, tmp_path: Path) -> None:
    proc = _watch(data_dir, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path} is a directory, not a video file (name one file in it)"
    ]


def test_a_truncated_video_warns_once_and_litert_stays_quiet(
    data_dir: Path, tmp_path: Path
) -> None:
    clip = require_data("face_recognition_examples/examples/short_hamilton_clip.mp4")
    cut = truncated_mp4(clip, tmp_path / "cut.mp4")
    proc = _watch(data_dir, cut)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len([line for line in lines if "ends early" in line]) == 1, proc.stderr
    assert not [line for line in lines if "TensorFlow" in line or line.startswith("INFO:")]
    # The capture's own INFO lines are shown in the foreground (connected, reminders).
    assert any(line.startswith("INFO cunan.capture.reader: camera cut.mp4") for line in lines)
