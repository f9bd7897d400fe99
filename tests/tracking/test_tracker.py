"""Synthetic tests of the face tracker: identities, missed frames, gaps, false detections."""

from __future__ import annotations

import itertools

import pytest

from cunan.tracking.tracker import FaceTracker, Track, TrackerConfig, colour_histogram

from .conftest import make_face

FPS = 25.0


def run(
    tracker: FaceTracker, frames: list[list[tuple[float, float]]], *, size: float = 60.0
) -> list[Track]:
    """Feed one detection list per frame (at 25 fps) and return every ended track."""
    ended: list[Track] = []
    for i, centres in enumerate(frames):
        update = tracker.update(i / FPS, [make_face(x, y, size) for x, y in centres])
        ended.extend(update.ended)
    ended.extend(tracker.flush().ended)
    return ended


def test_crossing_faces_keep_their_identities() -> None:
    # Two faces walk towards each other on almost the same line, overlap fully, and part.
    frames = [[(100.0 + 20 * i, 300.0), (700.0 - 20 * i, 306.0)] for i in range(31)]
    tracks = run(FaceTracker(), frames)
    assert len(tracks) == 2
    for track in tracks:
        assert track.hits == 31
        xs = [p.face.box.center[0] for p in track.history]
        steps = [b - a for a, b in itertools.pairwise(xs)]
        # One direction throughout: a swap would reverse the direction of travel.
        assert all(s > 0 for s in steps) or all(s < 0 for s in steps)


def test_crossing_with_appearance_hook_runs() -> None:
    import numpy as np

    frame = np.zeros((480, 800, 3), dtype=np.uint8)
    tracker = FaceTracker(appearance=colour_histogram)
    for i in range(10):
        update = tracker.update(i / FPS, [make_face(100 + 10 * i, 200)], frame)
    assert [t.hits for t in update.active] == [10]


def test_two_missed_frames_do_not_split_a_track() -> None:
    frames = [[] if i in (10, 11) else [(100.0 + 8 * i, 200.0)] for i in range(30)]
    tracks = run(FaceTracker(), frames)
    assert len(tracks) == 1
    assert tracks[0].hits == 28


def test_long_gap_ends_the_track() -> None:
    config = TrackerConfig(max_missed_s=1.0)
    tracker = FaceTracker(config)
    ended_at = None
    for i in range(100):
        # Visible for 20 frames, gone for 2 s (50 frames), visible again for 30.
        faces = [make_face(300.0, 200.0)] if i < 20 or i >= 70 else []
        update = tracker.update(i / FPS, faces)
        if update.ended and ended_at is None:
            ended_at = i
            assert update.ended[0].hits == 20
    assert ended_at is not None and 20 < ended_at < 70
    final = tracker.flush().ended
    assert len(final) == 1 and final[0].hits == 30


def test_time_ends_a_track_even_when_frames_are_skipped() -> None:
    tracker = FaceTracker(TrackerConfig(max_missed_s=1.0, max_missed_frames=100))
    for i in range(5):
        tracker.update(i / FPS, [make_face(300.0, 200.0)])
    # The next frame the tracker sees is 3 s later (e.g. the motion gate skipped the rest).
    update = tracker.update(3.0, [])
    assert len(update.ended) == 1


def test_one_frame_false_detection_is_never_confirmed() -> None:
    tracker = FaceTracker(TrackerConfig(min_hits=3))
    seen_ids: set[int] = set()
    dropped: set[int] = set()
    for i in range(20):
        faces = [make_face(100.0 + 5 * i, 200.0)]
        if i == 7:
            faces.append(make_face(600.0, 400.0, size=40.0))  # a one-frame ghost
        update = tracker.update(i / FPS, faces)
        seen_ids.update(t.track_id for t in update.active)
        seen_ids.update(t.track_id for t in update.ended)
        dropped.update(update.dropped)
    seen_ids.update(t.track_id for t in tracker.flush().ended)
    assert len(seen_ids) == 1
    assert len(dropped) == 1 and not dropped & seen_ids


def test_duplicate_box_of_one_face_starts_no_track() -> None:
    tracker = FaceTracker()
    for i in range(10):
        faces = [make_face(300.0, 200.0)]
        if i >= 5:
            faces.append(make_face(318.0, 200.0, size=64.0))  # the detector boxed it twice
        update = tracker.update(i / FPS, faces)
    assert len(update.active) == 1
    assert len(tracker.tracks) == 1


def test_tentative_tracks_are_assigned_so_early_faces_can_be_kept() -> None:
    tracker = FaceTracker(TrackerConfig(min_hits=3))
    first = tracker.update(0.0, [make_face(100.0, 100.0)])
    assert len(first.assignments) == 1 and not first.assignments[0].confirmed
    assert first.active == ()
    tracker.update(0.04, [make_face(104.0, 100.0)])
    third = tracker.update(0.08, [make_face(108.0, 100.0)])
    assert third.assignments[0].confirmed and len(third.active) == 1


def test_timestamps_must_not_go_backwards() -> None:
    tracker = FaceTracker()
    tracker.update(1.0, [])
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(0.5, [])
