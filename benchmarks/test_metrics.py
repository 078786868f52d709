"""The benchmark's metric rules on synthetic windows and boxes with exact answers.

Run: ``.venv/bin/python -m pytest benchmarks/test_metrics.py`` (or ``python -m benchmarks.run test``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.metrics import (
    Jitter,
    camera_moves,
    covered,
    jitter,
    moves_per_minute,
    shows_only,
    subject_coverage,
    switch_delays,
)


def path(xs, w=100.0, h=200.0, y=0.0) -> np.ndarray:
    xs = np.asarray(xs, float)
    return np.stack([xs, np.full_like(xs, y), np.full_like(xs, w), np.full_like(xs, h)], axis=1)


def test_a_window_exactly_containing_a_box_covers_it():
    assert covered([[10, 20, 110, 220]], [[10, 20, 100, 200]]).tolist() == [True]


def test_five_percent_of_the_box_may_be_cut_off_but_not_more():
    window = [[0, 0, 100, 200]]
    assert covered([[-5, 0, 95, 200]], window).tolist() == [True]  # 5 of 100 px outside
    assert covered([[-6, 0, 94, 200]], window).tolist() == [False]  # 6 of 100 px outside
    assert covered([[0, -10, 100, 190]], window).tolist() == [True]  # 10 of 200 px outside (5 %)
    assert covered([[0, -11, 100, 189]], window).tolist() == [False]


def test_a_box_wider_than_the_window_is_covered_when_it_fills_the_window():
    window = [[100, 0, 100, 200]]
    assert covered([[50, 0, 250, 200]], window).tolist() == [True]  # 200 wide, centred on the 100-wide window
    assert covered([[145, 0, 345, 200]], window).tolist() == [False]  # fills only 55 of the 100 px
    # 5 % of the 200 px box (10 px) of slack: the box may leave up to 10 px of the window empty
    assert covered([[110, 0, 310, 200]], window).tolist() == [True]
    assert covered([[111, 0, 311, 200]], window).tolist() == [False]


def test_a_box_outside_the_window_is_not_covered():
    assert covered([[300, 0, 350, 100]], [[0, 0, 100, 200]]).tolist() == [False]


def test_subject_coverage_uses_the_largest_box_as_primary_and_averages_all_per_frame():
    windows = path([0, 0, 0])
    box_frame = np.array([0, 0, 2])
    boxes = np.array([[10, 10, 60, 110],  # frame 0: large, inside
                      [200, 10, 220, 40],  # frame 0: small, outside
                      [150, 10, 250, 190]])  # frame 2: only person, outside
    result = subject_coverage(box_frame, boxes, windows)
    assert result.frames_with_person == 2
    assert result.primary == pytest.approx(0.5)  # frame 0 yes, frame 2 no
    assert result.all_subjects == pytest.approx((0.5 + 0.0) / 2)


def test_the_primary_subject_is_the_largest_even_when_a_smaller_one_is_covered():
    result = subject_coverage([0, 0], [[10, 10, 30, 30], [120, 0, 300, 200]], path([0]))
    assert result.primary == 0.0 and result.all_subjects == 0.5


def test_no_subjects_gives_nan_not_zero():
    result = subject_coverage(np.zeros(0, int), np.zeros((0, 4)), path([0, 0]))
    assert result.frames_with_person == 0 and math.isnan(result.primary) and math.isnan(result.all_subjects)


def test_a_static_path_has_zero_jitter_and_zero_moves():
    t = np.arange(100) / 25
    windows = path(np.full(100, 40.0))
    assert jitter(windows) == Jitter(0.0, 0.0)
    assert camera_moves(t, windows) == 0
    assert moves_per_minute(t, windows) == 0.0


def test_jitter_of_a_constant_speed_pan_is_its_speed_and_no_acceleration():
    windows = path(np.arange(50) * 2.0)  # 2 px per frame on a 100 px window
    result = jitter(windows)
    assert result.velocity == pytest.approx(2.0)
    assert result.acceleration == pytest.approx(0.0)


def test_jitter_of_alternating_steps():
    windows = path([0, 1, 0, 1, 0])  # |Δ| = 1 px, |Δ²| = 2 px
    result = jitter(windows)
    assert result.velocity == pytest.approx(1.0)
    assert result.acceleration == pytest.approx(2.0)


def test_a_jump_at_a_cut_is_neither_jitter_nor_a_move():
    t = np.arange(10) / 10
    windows = path([0] * 5 + [50] * 5)
    cuts = np.zeros(10, bool)
    cuts[5] = True
    assert jitter(windows, cuts) == Jitter(0.0, 0.0)
    assert camera_moves(t, windows, cuts) == 0
    assert camera_moves(t, windows) == 1  # without the cut it is one move


def test_a_move_counts_once_and_again_only_after_enough_stillness():
    t = np.arange(60) / 10  # 10 fps, 6 s
    xs = np.zeros(60)
    xs[10:20] = np.arange(1, 11)  # move during frames 10..19
    xs[20:] = 10
    xs[22:25] = [11, 12, 13]  # pause of 0.2 s: the same move continues
    xs[25:] = 13
    xs[40:45] = 13 + np.arange(1, 6)  # after 1.5 s still: a second move
    xs[45:] = 18
    windows = path(xs)
    assert camera_moves(t, windows) == 2
    assert moves_per_minute(t, windows) == pytest.approx(2 * 60 / 6.0)


def test_a_step_below_the_threshold_is_not_a_move():
    t = np.arange(20) / 10
    windows = path(np.arange(20) * 0.04)  # 0.04 % of the width per frame, threshold 0.05 %
    assert camera_moves(t, windows) == 0


def test_shows_only_one_subject_and_switch_delays():
    t = np.arange(10) * 0.5
    xs = np.array([0, 0, 0, 0, 200, 200, 200, 200, 200, 200], float)  # window 100 wide
    windows = path(xs, w=100)
    left, right = 50.0, 250.0
    talker = np.where(t < 1.0, 0, 1)  # truth switches to the right at 1.0 s
    shown = np.where(talker == 0, shows_only(windows, left, [right]), shows_only(windows, right, [left]))
    assert shown.tolist() == [True, True, False, False, True, True, True, True, True, True]
    (delay,) = switch_delays(t, shown, [1.0])
    assert (delay.at, delay.delay, delay.missed) == (1.0, 1.0, False)


def test_a_missed_switch_reports_the_rest_of_its_segment():
    t = np.arange(10) * 0.5
    (first, second) = switch_delays(t, np.zeros(10, bool), [1.0, 3.0], end=5.0)
    assert (first.delay, first.missed) == (2.0, True)
    assert (second.delay, second.missed) == (2.0, True)
