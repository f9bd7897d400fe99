"""The command line as a user runs it: real processes, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cunan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_compare_same_person_exits_0(examples: Path) -> None:
    proc = run("faces", "compare", examples / "obama.jpg", examples / "obama2.jpg")
    assert proc.returncode == 0, proc.stderr
    assert "same person" in proc.stdout


def test_compare_different_people_exits_1_with_json(examples: Path) -> None:
    proc = run("faces", "compare", "--json", examples / "obama.jpg", examples / "biden.jpg")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same_person"] is False
    assert result["distance"] > result["threshold"]
    assert result["model_id"] == "dlib_resnet_v1"


def test_compare_corrupt_file_is_one_line(tmp_path: Path, examples: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((examples / "obama.jpg").read_bytes()[:3000])
    proc = run("faces", "compare", broken, examples / "obama.jpg")
    assert_one_line_error(proc, str(broken), "corrupt image")


def test_compare_no_face_and_missing_file(tmp_path: Path, examples: Path) -> None:
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 200), (180, 170, 160)).save(blank)
    assert_one_line_error(
        run("faces", "compare", blank, examples / "obama.jpg"), str(blank), "no face"
    )
    assert_one_line_error(
        run("faces", "compare", tmp_path / "nope.jpg", examples / "obama.jpg"), "file not found"
    )


def test_detect_json_counts_and_continues_past_bad_files(tmp_path: Path, examples: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello")
    proc = run("faces", "detect", "--json", examples / "two_people.jpg", text)
    assert proc.returncode == 2
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 1
    assert len(records[0]["faces"]) == 2
    face = records[0]["faces"][0]
    assert set(face["landmarks"]) == {
        "eye_left",
        "eye_right",
        "nose",
        "mouth_left",
        "mouth_right",
    }
    assert {"sharpness", "frontalness", "brightness", "passed"} <= set(face["quality"])
    assert "notes.png: not an image file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_embed_writes_matrix_and_sidecar(tmp_path: Path, examples: Path) -> None:
    out = tmp_path / "emb" / "faces.npy"
    # A missing output directory is an error before any work, and is not created.
    proc = run("faces", "embed", examples / "obama.jpg", "--out", out)
    assert_one_line_error(proc, "emb: output directory does not exist")
    assert not out.parent.exists()
    out.parent.mkdir()
    proc = run("faces", "embed", examples / "obama.jpg", examples / "two_people.jpg", "--out", out)
    assert proc.returncode == 0, proc.stderr
    # Embeddings are biometric data: readable by their owner only.
    assert out.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "emb" / "faces.npy.json").stat().st_mode & 0o777 == 0o600
    matrix = np.load(out)
    assert matrix.shape == (2, 128) and matrix.dtype == np.float32
    meta = json.loads((tmp_path / "emb" / "faces.npy.json").read_text())
    assert meta["model_id"] == "dlib_resnet_v1"
    assert [Path(r["file"]).name for r in meta["rows"]] == ["obama.jpg", "two_people.jpg"]
    proc = run("faces", "embed", examples / "two_people.jpg", "--all-faces", "--out", out)
    assert np.load(out).shape == (2, 128)


@pytest.mark.parametrize("args", [("--version",), ("faces", "--help")])
def test_help_and_version(args: tuple[str, ...]) -> None:
    proc = run(*args)
    assert proc.returncode == 0
    assert proc.stdout.strip()


def test_embed_skips_a_bad_file_and_keeps_the_others(tmp_path: Path, examples: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    out = tmp_path / "faces"
    proc = run("faces", "embed", broken, examples / "obama.jpg", "--out", out)
    assert proc.returncode == 2
    assert "broken.jpg: not an image file" in proc.stderr and "Traceback" not in proc.stderr
    assert np.load(tmp_path / "faces.npy").shape == (1, 128)
    assert (tmp_path / "faces.npy.json").is_file()


def test_invalid_config_file_is_named(tmp_path: Path, examples: Path) -> None:
    config = tmp_path / "cunan.toml"
    config.write_text("[faces]\nmatch_threshold = 7\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cunan", "faces", "compare", str(examples / "obama.jpg"),
         str(examples / "obama2.jpg")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "CUNAN_CONFIG": str(config)},
    )  # fmt: skip
    assert_one_line_error(proc, str(config), "match_threshold")
