"""The L1-optimal camera path: exact expectations on synthetic targets (1280x720 frame, 9:16 window 404x720)."""

import time

import numpy as np
import pytest

from smartcrop.core.job import Mode
from smartcrop.planner.focus import Focus
from smartcrop.planner.path import CAMERA_STYLES, camera_path, solve_axis

W, H, CW, CH = 1280, 720, 404, 720
FPS = 25
NONE = np.full(1, np.nan)


def focus_on(x, y=None, *, weight=1.0, box_width=None, box_height=None):
    """A Focus looking at ``x`` (per frame); with a box size, keep that box (centred on x, y) in the window."""
    x = np.asarray(x, float)
    y = np.full_like(x, H / 2) if y is None else np.asarray(y, float)
    focus = Focus.empty(len(x))
    focus.point[:] = np.column_stack([x, y])
    focus.weight[:] = weight
    if box_width is not None:
        box_height = box_height or 0.0
        focus.keep_lo[:] = np.column_stack([x + box_width / 2 - CW / 2, y + box_height / 2 - CH / 2])
        focus.keep_hi[:] = np.column_stack([x - box_width / 2 + CW / 2, y - box_height / 2 + CH / 2])
    return focus


def path(t, focus, mode, *, shots=None, sampled=None, frame=(W, H), crop=(CW, CH)):
    shots = np.zeros(len(t), int) if shots is None else shots
    sampled = (np.arange(len(t)) % 5 == 0) if sampled is None else sampled  # 25 fps video analysed at 5 fps
    return camera_path(t, shots, sampled, focus, frame_size=frame, crop_size=crop, mode=mode)


def centre_x(windows):
    return windows[:, 0] + windows[:, 2] / 2


def seconds(duration):
    return np.arange(round(duration * FPS)) / FPS


def test_a_still_subject_is_framed_exactly_and_the_window_has_the_crop_size():
    t = seconds(4)
    for mode in Mode:
        windows = path(t, focus_on(np.full(len(t), 700.0)), mode)
        assert np.allclose(centre_x(windows), 700, atol=1e-6)
        assert np.allclose(windows[:, 1:], [0, CW, CH])


def test_a_subject_jittering_and_wandering_inside_the_dead_zone_does_not_move_the_stable_camera_at_all():
    t = seconds(12)
    dead_zone = CAMERA_STYLES[Mode.STABLE].dead_zone * CW
    settles = np.repeat([-0.8, 0.7, -0.6, 0.8], len(t) // 4) * dead_zone  # stays 3 s at each place
    x = 700 + settles + np.random.default_rng(1).uniform(-0.15, 0.15, len(t)) * dead_zone
    sampled = np.arange(len(t)) % 5 == 0
    windows = path(t, focus_on(x, box_width=120), Mode.STABLE, sampled=sampled)
    assert np.ptp(windows[:, 0]) <= 1e-6
    assert np.abs(centre_x(windows)[0] - x[sampled]).max() <= dead_zone + 1e-6


def test_with_a_wide_dead_zone_the_camera_moves_only_by_how_far_the_subject_goes_beyond_it():
    t = seconds(12)
    for mode in (Mode.STABLE, Mode.BALANCED):  # responsive's dead zone is so narrow that it re-centres in the move
        dead_zone = CAMERA_STYLES[mode].dead_zone * CW
        x = np.where(t < 6, 500.0, 500.0 + 2 * dead_zone + 100)
        centre = centre_x(path(t, focus_on(x), mode))
        assert np.allclose(centre[t < 2], 500 + dead_zone, atol=1e-6)  # waits at the near edge of the dead zone
        assert np.allclose(centre[t > 10], 500 + dead_zone + 100, atol=1e-6)  # 100 px later: the far target's edge
        assert np.ptp(centre) == pytest.approx(100, abs=1e-6)


def test_a_cut_resets_the_path_and_nothing_before_it_drifts_toward_the_new_shot():
    t = seconds(4)
    shots = np.repeat([0, 1], len(t) // 2)
    x = np.where(shots == 0, 400.0, 900.0)
    for mode in Mode:
        windows = path(t, focus_on(x, box_width=150), mode, shots=shots)
        assert np.allclose(centre_x(windows)[shots == 0], 400, atol=1e-6)  # no drift toward the cut
        assert np.allclose(centre_x(windows)[shots == 1], 900, atol=1e-6)  # right after the cut: already there


def test_a_cut_resets_the_path_even_when_both_shots_are_at_the_frame_edges():
    t = np.arange(40) / 10.0
    shots = np.repeat([0, 1], 20)
    x = np.where(shots == 0, 100.0, 1200.0)
    windows = path(t, focus_on(x), Mode.BALANCED, shots=shots, sampled=np.ones(40, bool))
    assert np.allclose(windows[:20, 0], 0)  # subject at the left edge: clamped at x=0, no drift toward the cut
    assert np.allclose(windows[20:, 0], W - CW)  # right after the cut the camera is already there
    assert np.allclose(windows[:, 2:], [CW, CH])


def test_a_subject_moving_at_constant_speed_gives_a_constant_speed_pan():
    t = seconds(10)
    speed = 0.25 * CW  # px/s, from x=400 at 1 s to x=1006 at 7 s
    x = 400 + speed * np.clip(t - 1, 0, 6)
    for mode in Mode:
        centre = centre_x(path(t, focus_on(x), mode))
        middle = (t > 3) & (t < 5)
        assert np.abs(np.diff(centre, 2)[middle[1:-1]]).max() < 1e-6  # Δ² = 0: a straight pan ...
        velocity = np.diff(centre)[middle[1:]].mean() * FPS
        assert 0.7 * speed < velocity < 1.3 * speed  # ... at about the subject's speed (the dead zone may stretch it)
        assert abs(centre[-1] - x[-1]) <= CAMERA_STYLES[mode].dead_zone * CW + 1e-6  # and it ends on the subject
        assert np.abs(np.diff(centre, 2)[t[1:-1] < 0.5]).max() < 1e-6  # still before the walk starts
        assert np.abs(np.diff(centre, 2)[t[1:-1] > 8.5]).max() < 1e-6  # and after it ends


def test_the_window_never_leaves_the_frame_even_for_targets_at_or_beyond_the_very_edge():
    t = seconds(6)
    rng = np.random.default_rng(2)
    shots = np.repeat([0, 1, 2], len(t) // 3)
    x = np.select([shots == 0, shots == 1], [0.0, W], rng.uniform(-300, W + 300, len(t)))
    y = rng.uniform(-100, H + 100, len(t))
    for mode in Mode:
        for crop in [(CW, CH), (CW, 400)]:
            windows = path(t, focus_on(x, y, box_width=50, box_height=50), mode, shots=shots, crop=crop)
            assert (windows[:, :2] >= 0).all()
            assert (windows[:, :2] + windows[:, 2:] <= [W + 1e-9, H + 1e-9]).all()
            assert np.allclose(windows[shots == 0, 0], 0) and np.allclose(windows[shots == 1, 0], W - crop[0])


def test_an_axis_without_slack_is_fixed_and_skips_the_lp(monkeypatch):
    def no_lp(*args, **kwargs):
        raise AssertionError("no LP for an axis without slack")

    monkeypatch.setattr("scipy.optimize.linprog", no_lp)
    p = solve_axis(np.arange(5.0), np.arange(5.0) * 100, np.ones(5), np.full(5, np.nan), np.full(5, np.nan),
                   bound_lo=360, bound_hi=360, rest=360, window=720, style=CAMERA_STYLES[Mode.RESPONSIVE])
    assert np.array_equal(p, np.full(5, 360.0))
    t = seconds(2)  # a 9:16 window as tall as the frame: y is 0 on every frame, whatever the target
    monkeypatch.undo()
    windows = path(t, focus_on(np.full(len(t), 600.0), np.linspace(0, H, len(t))), Mode.RESPONSIVE)
    assert np.array_equal(windows[:, 1], np.zeros(len(t)))


def test_a_shot_without_targets_stays_at_the_centre():
    t = np.arange(10) / 10.0
    for focus in [Focus.empty(10), focus_on(np.full(10, 100.0), weight=0.0)]:
        windows = path(t, focus, Mode.STABLE, sampled=np.ones(10, bool))
        assert np.allclose(windows[:, 0], (W - CW) / 2)


def test_one_and_two_frame_shots_work():
    t = np.arange(6) / FPS
    shots = np.array([0, 1, 1, 2, 2, 2])
    sampled = np.array([True, False, True, False, False, False])  # shot 1: last frame sampled; shot 2: none
    windows = path(t, focus_on(np.array([300.0, 9999, 800, 9999, 9999, 9999])), Mode.BALANCED, shots=shots,
                   sampled=sampled)
    assert np.allclose(centre_x(windows), [300, 800, 800, W / 2, W / 2, W / 2], atol=1e-6)
    single = solve_axis(np.zeros(1), np.array([500.0]), np.ones(1), NONE, NONE, bound_lo=202, bound_hi=1078,
                        rest=640, window=CW, style=CAMERA_STYLES[Mode.STABLE])
    assert np.allclose(single, [500])


def test_focus_values_of_frames_that_were_not_sampled_are_ignored():
    t = seconds(4)
    sampled = np.arange(len(t)) % 5 == 0
    x = np.where(sampled, 500.0, np.nan)
    focus = focus_on(x)
    focus.weight[~sampled] = 1e9
    windows = path(t, focus, Mode.RESPONSIVE, sampled=sampled)
    assert np.allclose(centre_x(windows), 500, atol=1e-6)


def reach_time(mode, jump_at=4.0, start=300.0, end=900.0):
    """Seconds after the jump until the window centre is within the mode's dead zone of the new place."""
    t = seconds(10)
    x = np.where(t < jump_at, start, end)
    centre = centre_x(path(t, focus_on(x, box_width=150), mode))
    near = np.abs(centre - end) <= CAMERA_STYLES[mode].dead_zone * CW + 1e-6
    after = t >= jump_at
    assert near[-FPS:].all()  # every mode ends there and stays
    return t[after][np.argmax(near[after])] - jump_at


def test_responsive_reaches_a_jumped_subject_faster_than_balanced_and_balanced_faster_than_stable():
    responsive, balanced, stable = (reach_time(mode) for mode in (Mode.RESPONSIVE, Mode.BALANCED, Mode.STABLE))
    assert responsive <= 0.5
    assert responsive < balanced < stable <= 2.0


def test_stable_and_balanced_ease_into_and_out_of_a_pan():
    t = seconds(10)
    x = np.where(t < 4, 300.0, 900.0)
    for mode in (Mode.STABLE, Mode.BALANCED):
        sampled_centre = centre_x(path(t, focus_on(x), mode))[::5]
        velocity = np.diff(sampled_centre)
        assert np.abs(np.diff(velocity)).max() <= 0.35 * np.abs(velocity).max()  # no sudden start or stop


def test_uneven_sample_spacing_from_vfr_timestamps_works():
    rng = np.random.default_rng(4)
    t = np.sort(np.r_[0.0, rng.uniform(0, 8, 150), 8.0])  # ~19 fps on average, irregular, with a duplicate
    t = np.insert(t, 40, t[40])
    sampled = rng.random(len(t)) < 0.3
    x = 400 + 0.25 * CW * np.clip(t - 1, 0, 5)
    for mode in Mode:
        centre = centre_x(path(t, focus_on(x), mode, sampled=sampled))
        assert np.isfinite(centre).all() and (np.diff(centre) >= -1e-6).all()  # a monotone pan, no wobble
        assert abs(centre[-1] - x[-1]) <= CAMERA_STYLES[mode].dead_zone * CW + 1e-6
        uniform_t = seconds(8)
        uniform = centre_x(path(uniform_t, focus_on(400 + 0.25 * CW * np.clip(uniform_t - 1, 0, 5)), mode))
        assert np.abs(np.interp(uniform_t, t, centre) - uniform).max() <= 2 * CAMERA_STYLES[mode].dead_zone * CW


def test_the_speed_limit_holds_when_nothing_conflicts_with_it():
    t = seconds(6)
    x = np.where(t < 2, 250.0, 1030.0)  # a jump of ~2 windows: far faster than any mode may pan
    for mode in Mode:
        centre = centre_x(path(t, focus_on(x), mode))
        assert np.abs(np.diff(centre)).max() * FPS <= CAMERA_STYLES[mode].max_speed * CW + 1e-6
        assert abs(centre[-1] - 1030) <= CAMERA_STYLES[mode].dead_zone * CW + 1e-6


def test_the_keep_interval_wins_over_smoothness_and_the_dead_zone():
    t = seconds(8)
    box = 0.8 * CW
    middle = 350 + 0.4 * CW * np.clip(t - 2, 0, 4)  # 0.4 windows/s: within every mode's speed limit
    face = middle - 0.4 * box  # the viewer looks at the face near the box's left edge: further than any dead zone
    focus = focus_on(face)
    focus.keep_lo[:, 0] = middle + box / 2 - CW / 2
    focus.keep_hi[:, 0] = middle - box / 2 + CW / 2
    sampled = np.arange(len(t)) % 5 == 0
    for mode in Mode:
        windows = path(t, focus, mode, sampled=sampled)
        left, right = windows[:, 0], windows[:, 0] + CW
        outside = np.maximum(left - (middle - box / 2), 0) + np.maximum(middle + box / 2 - right, 0)
        assert outside[sampled].max() <= 1e-6  # fully inside at every solved sample
        assert outside.max() <= 1.0  # and within a pixel in between (linear interpolation of a curved move)


def test_a_person_wider_than_the_window_fills_it_in_every_mode_even_looking_at_their_face_at_one_end():
    t = seconds(8)
    box = 1.5 * CW
    middle = 350 + box / 2 + 0.2 * CW * np.clip(t - 2, 0, 4)  # its right edge ends at 1279
    focus = focus_on(middle - 0.45 * box)  # the face, at the box's left end
    focus.keep_lo[:, 0], focus.keep_hi[:, 0] = middle - box / 2 + CW / 2, middle + box / 2 - CW / 2
    sampled = np.arange(len(t)) % 5 == 0
    for mode in Mode:
        windows = path(t, focus, mode, sampled=sampled)
        beside = np.maximum(middle - box / 2 - windows[:, 0], 0) + np.maximum(windows[:, 0] + CW - middle - box / 2, 0)
        assert beside[sampled].max() <= 1e-6  # no background beside them at any solved sample
        assert beside.max() <= 1.0
        # and toward the face: nearer the box's left end than its middle (ease-ins may leave it off the very end)
        assert (windows[sampled, 0] - (middle[sampled] - box / 2)).max() < (box - CW) / 2


def noisy_walk(seed, *, noise=0.03, box_width=120.0, box_height=400.0):
    """A person walking 0.25 windows/s across the frame, detector noise of ``noise`` x box size on every edge."""
    t = seconds(12)
    rng = np.random.default_rng(seed)
    middle = 250 + 0.25 * CW * np.clip(t - 2, 0, 7.5)
    edges = np.column_stack([middle - box_width / 2, 200 - box_height / 2 + 0 * t, middle + box_width / 2,
                             200 + box_height / 2 + 0 * t])
    edges += rng.normal(0, noise, edges.shape) * [box_width, box_height, box_width, box_height]
    focus = focus_on((edges[:, 0] + edges[:, 2]) / 2, edges[:, 1] + 0.2 * (edges[:, 3] - edges[:, 1]))
    focus.keep_lo[:, 0], focus.keep_hi[:, 0] = edges[:, 2] - CW / 2, edges[:, 0] + CW / 2
    return t, focus


def test_balanced_mode_is_smooth_on_a_noisy_walking_person():
    for seed in range(5):
        t, focus = noisy_walk(seed)
        centre = centre_x(path(t, focus, Mode.BALANCED))
        assert np.abs(np.diff(centre, 2)).mean() <= 0.0015 * CW  # mean |Δ²| per frame², after interpolation


@pytest.mark.parametrize("mode", list(Mode))
def test_a_79_second_shot_solves_well_under_a_second(mode):
    t = np.arange(79 * 5 + 1) / 5.0
    x = 300 + 500 * np.sin(t / 5) + np.random.default_rng(5).normal(0, 10, len(t))
    style = CAMERA_STYLES[mode]
    start = time.perf_counter()
    p = solve_axis(t, x, np.ones(len(t)), x - 100, x + 100, bound_lo=202, bound_hi=1078, rest=640, window=CW,
                   style=style)
    assert time.perf_counter() - start < 0.8
    assert np.isfinite(p).all()


def test_a_focus_cut_breaks_the_path_like_a_shot_cut():
    t = np.arange(40) / 10.0
    focus = Focus.empty(40)
    focus.point[:, 0] = np.where(np.arange(40) < 20, 300.0, 1000.0)
    focus.point[:, 1] = 360.0
    focus.weight[:] = 1.0
    focus.cut[20] = True
    windows = camera_path(t, np.zeros(40, int), np.ones(40, bool), focus, frame_size=(1280, 720),
                          crop_size=(404, 720), mode=Mode.STABLE)
    centre = windows[:, 0] + 202
    assert np.allclose(centre[:20], 300, atol=1) and np.allclose(centre[20:], 1000, atol=1)
