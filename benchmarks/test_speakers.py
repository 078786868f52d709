"""Exact expectations for the real-footage speaker scores (benchmarks/speakers.py)."""

import numpy as np

from benchmarks.metrics import duration
from benchmarks.speakers import Labels, contains, score_path, shown_person

LABELS = Labels("X.mp4", 4.0, {"A": [10, 0, 20, 10], "B": [110, 0, 120, 10]},
                [{"from": 0.0, "to": 1.9, "speaker": "A", "face_box_median": [10, 0, 20, 10]},
                 {"from": 2.0, "to": 4.0, "speaker": "B", "face_box_median": [110, 0, 120, 10]}])
ON_A = [0, 0, 50, 10]
ON_B = [90, 0, 50, 10]


def test_contains_needs_the_whole_box():
    windows = np.array([ON_A, [11, 0, 50, 10], ON_B])
    assert contains(windows, [10, 0, 20, 10]).tolist() == [True, False, False]


def test_shown_person_and_scores():
    t = np.arange(0, 4.0, 0.5)  # 8 frames: 0.0 .. 3.5
    windows = np.array([ON_A, ON_A, ON_A, ON_A, ON_A, ON_B, ON_B, ON_B], float)
    assert list(shown_person(LABELS, windows)) == ["A"] * 5 + ["B"] * 3
    s = score_path(LABELS, "m", "balanced", "9:16", t, windows)
    assert s.shown == 7 / 8  # frame at 2.0 s still shows A
    assert s.switches == 1 and s.missed == 0 and abs(s.delay_mean - 0.5) < 1e-9
    assert s.false_per_min == 0.0


def test_false_switch_counted_inside_a_turn():
    t = np.arange(0, 2.0, 0.5)  # inside A's turn only
    windows = np.array([ON_A, ON_B, ON_A, ON_A], float)
    s = score_path(LABELS, "m", "balanced", "9:16", t, windows)
    assert s.shown == 3 / 4
    # A -> B is allowed (B speaks next); B -> A, back to the current speaker, is not counted either.
    assert s.false_per_min == 0.0
    windows = np.array([ON_B, ON_B, ON_A, ON_A], float)
    labels = Labels("X.mp4", 2.0, LABELS.speakers, [LABELS.segments[0]])
    assert score_path(labels, "m", "balanced", "9:16", t, windows).false_per_min == 0.0
    labels = Labels("X.mp4", 2.0, {**LABELS.speakers, "C": [200, 0, 210, 10]}, [LABELS.segments[0]])
    windows = np.array([ON_A, [180, 0, 50, 10], ON_A, ON_A], float)
    assert score_path(labels, "m", "balanced", "9:16", t, windows).false_per_min == 1 / (duration(t) / 60)
