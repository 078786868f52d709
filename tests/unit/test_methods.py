"""The six methods on synthetic tracks (1280x720 frame, 9:16 window 404x720 unless said otherwise)."""

import numpy as np
import pytest

from smartcrop.core.job import Method
from smartcrop.planner.methods import Geometry, focus_for, group_boxes, keep_interval

from .scenes import Scene, Subject, person

PORTRAIT = Geometry(1280, 720, 404, 720)


def xs(focus):
    return focus.point[:, 0]


def test_keep_interval_is_where_the_window_centre_keeps_the_box_inside():
    lo, hi = keep_interval(np.array([[100.0, 100.0, 300.0, 600.0], [0.0, 0.0, 500.0, 700.0]]), PORTRAIT)
    assert np.allclose(lo[0], [300 - 202, 600 - 360]) and np.allclose(hi[0], [100 + 202, 100 + 360])
    assert np.isnan(lo[1, 0]) and np.isnan(hi[1, 0])  # 500 px wide: cannot fit a 404 px window
    assert not np.isnan(lo[1, 1])


def test_a_single_person_wider_than_the_window_is_kept_by_windows_that_lie_within_them():
    lo, hi = keep_interval(np.array([[100.0, 0.0, 600.0, 700.0]]), PORTRAIT, fill=True)
    assert np.allclose([lo[0, 0], hi[0, 0]], [100 + 202, 600 - 202])  # the window fills with them
    assert np.allclose([lo[0, 1], hi[0, 1]], [700 - 360, 0 + 360])  # the axis where they fit is unchanged


@pytest.mark.parametrize("method", list(Method))
def test_a_person_missed_for_a_moment_is_held_not_replaced_by_an_object_in_view(method):
    # the detector loses the person for 0.8 s (frames 20-23 at 5 fps) while a parked car stays detected far away;
    # once they are gone for good (frame 30 on), the car may steer after the hold
    rider = Subject(1, lambda f: person(300) if f < 20 or 24 <= f < 30 else None)
    car = Subject(9, (1000, 300, 1200, 450), cls=2)
    x = xs(focus_for(Scene([rider, car], frames=50).tracks(), method, PORTRAIT))
    assert np.allclose(x[:30], 300)
    if method is not Method.MAX_MOVEMENT:  # which follows moving objects only
        assert np.allclose(x[36:], 1100)  # 1 s of hold after frame 29, then the car


def test_single_object_fills_the_window_with_a_person_wider_than_it_whose_face_is_at_one_end():
    # arms out: a 600 px box whose face sits at its left end; looking at the face alone would put a third of the
    # window on the wall beside them
    wide = Subject(1, (300, 100, 900, 600), face=(300, 120, 360, 200))
    focus = focus_for(Scene([wide], frames=5).tracks(), Method.SINGLE_OBJECT, PORTRAIT)
    assert np.allclose(xs(focus), 330)
    assert np.allclose(focus.keep_lo[:, 0], 300 + 202) and np.allclose(focus.keep_hi[:, 0], 900 - 202)


def test_a_box_drawn_around_two_people_is_a_group_not_a_person():
    # a 9:16 window fits the pair (x 500-880) only if it is not steered by the spanning box's own head point
    couple = [Subject(1, (500, 300, 680, 700)), Subject(2, (700, 100, 880, 500)),
              Subject(3, (480, 80, 900, 720), score=0.5)]
    tracks = Scene(couple, frames=5).tracks()
    assert group_boxes(tracks.boxes).tolist() == [False, False, True] * 5
    focus = focus_for(tracks, Method.ADAPTIVE, PORTRAIT)
    assert np.allclose(focus.keep_lo[:, 0], 880 - 202) and np.allclose(focus.keep_hi[:, 0], 500 + 202)


def test_a_person_holding_a_child_and_a_crowd_behind_a_near_person_are_not_groups():
    holding = [Subject(1, (400, 100, 800, 700)), Subject(2, (500, 300, 650, 600))]
    near_and_far = [Subject(1, (300, 0, 900, 720)), Subject(2, (400, 100, 460, 260)), Subject(3, (700, 100, 760, 260))]
    for subjects in (holding, near_and_far):
        assert not group_boxes(Scene(subjects, frames=3).tracks().boxes).any()


def test_gravity_is_the_area_and_confidence_weighted_centre():
    scene = Scene([Subject(1, person(200, width=200, height=400)), Subject(2, person(900, width=100, height=200))])
    focus = focus_for(scene.tracks(), Method.GRAVITY, PORTRAIT)
    w1, w2 = 200 * 400, 100 * 200
    assert np.allclose(xs(focus), (200 * w1 + 900 * w2) / (w1 + w2))
    assert (focus.weight == 1).all()


def test_gravity_ignores_objects_when_people_are_present_and_uses_them_otherwise():
    people = Scene([Subject(1, person(300)), Subject(9, (1000, 300, 1100, 400), cls=56)], frames=10)
    assert np.allclose(xs(focus_for(people.tracks(), Method.GRAVITY, PORTRAIT)), 300)
    objects = Scene([Subject(9, (1000, 300, 1100, 400), cls=56)], frames=10)
    assert np.allclose(xs(focus_for(objects.tracks(), Method.GRAVITY, PORTRAIT)), 1050)


def test_single_object_follows_the_largest_person_and_keeps_them_in_the_window():
    scene = Scene([Subject(1, person(300, width=150, height=300)), Subject(2, person(900, width=200, height=500))])
    focus = focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT)
    assert np.allclose(xs(focus), 900)
    assert np.allclose(focus.keep_lo[:, 0], 1000 - 202) and np.allclose(focus.keep_hi[:, 0], 800 + 202)


def test_single_object_does_not_flip_between_similar_people():
    # two people whose areas alternate within 10 %: the first choice stays
    scene = Scene([Subject(1, lambda f: person(300, width=200 * (1.05 if f % 2 else 0.95))),
                   Subject(2, lambda f: person(900, width=200 * (0.95 if f % 2 else 1.05)))])
    focus = focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT)
    assert len(np.unique(xs(focus))) == 1


def test_single_object_switches_when_someone_is_clearly_larger_for_a_while():
    scene = Scene([Subject(1, person(300, width=200)),
                   Subject(2, lambda f: person(900, width=120 if f < 20 else 320))], frames=40, fps=5)
    x = xs(focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT))
    assert np.allclose(x[:20], 300)
    switch = np.flatnonzero(x == 900)[0]
    # the median over 1 s must turn first, then the challenger must win for 0.4 s
    assert 20 < switch <= 20 + 5 + 2 + 1 and np.allclose(x[switch:], 900)


def test_max_weight_chooses_the_window_holding_three_of_four_people():
    three = [Subject(i, person(x, width=100)) for i, x in enumerate([150, 270, 390], start=1)]
    loner = Subject(4, person(1100, width=100))
    focus = focus_for(Scene(three + [loner], frames=10).tracks(), Method.MAX_WEIGHT, PORTRAIT)
    assert np.allclose(xs(focus), 270)  # the centre of the three (faces at box centres)
    assert np.allclose(focus.keep_lo[:, 0], 440 - 202) and np.allclose(focus.keep_hi[:, 0], 100 + 202)


def test_max_weight_holds_everyone_when_they_fit():
    scene = Scene([Subject(1, person(500, width=100)), Subject(2, person(700, width=100))], frames=5)
    focus = focus_for(scene.tracks(), Method.MAX_WEIGHT, PORTRAIT)
    assert np.allclose(xs(focus), 600)


def test_track_median_area_over_the_last_second_or_a_second_around_the_frame():
    from smartcrop.planner.methods import _Subjects

    widths = [100, 100, 10, 100, 100, 100, 10, 10, 10, 100]  # 5 fps: the frame and 5 before it, or 2 either side
    scene = Scene([Subject(1, lambda f: person(600, width=widths[f], height=10))], frames=10, cuts=[0, 5])
    subjects = _Subjects(scene.tracks(), PORTRAIT)
    rows = np.arange(10)
    # each shot on its own: frames 0-4, then 5-9
    assert subjects.median_area(rows).tolist() == [1000, 1000, 1000, 1000, 1000, 1000, 550, 100, 100, 100]
    assert subjects.median_area(rows, centred=True).tolist() == [1000] * 5 + [100] * 5


def test_max_weight_does_not_hand_the_window_over_for_two_frames_of_a_partial_box():
    # two people too far apart for one window; the larger one's box is cut to a quarter on frames 20-21 (an arm
    # hidden, a blurred frame): those two frames are not worth two pans
    def left(frame):
        return person(300, width=100, height=250) if frame in (20, 21) else person(300, height=500)

    scene = Scene([Subject(1, left), Subject(2, person(800, height=450))], frames=40)
    assert np.allclose(xs(focus_for(scene.tracks(), Method.MAX_WEIGHT, PORTRAIT)), 300, atol=60)


def test_max_movement_follows_the_fastest_and_falls_back_to_the_largest_when_all_is_still():
    scene = Scene([Subject(1, person(300, width=300), speed=0.05),
                   Subject(2, lambda f: person(600 + 10 * f, width=100), speed=lambda f: 1.5 if f < 20 else 0.0)],
                  frames=40)
    x = xs(focus_for(scene.tracks(), Method.MAX_MOVEMENT, PORTRAIT))
    assert np.allclose(x[:20], 600 + 10 * np.arange(20))
    assert np.allclose(x[20:25], 600 + 10 * np.arange(20, 25))  # held through the hold time ...
    assert np.allclose(x[-5:], 300)  # ... then the largest person


def test_talking_person_switches_to_the_new_speaker_quickly_and_without_flicker():
    a_speaks = lambda f: 0.8 if (f // 20) % 2 == 0 else 0.05  # noqa: E731
    b_speaks = lambda f: 0.05 if (f // 20) % 2 == 0 else 0.8  # noqa: E731
    scene = Scene([Subject(1, person(300), speaking=a_speaks), Subject(2, person(950), speaking=b_speaks)],
                  frames=80, fps=10)
    focus = focus_for(scene.tracks(), Method.TALKING_PERSON, PORTRAIT)
    x = xs(focus)
    for start, who in ((0, 300), (20, 950), (40, 300), (60, 950)):
        assert np.allclose(x[start:start + 20], who), (start, x[start:start + 20])  # the switch starts on time
    assert np.count_nonzero(np.diff(x)) == 3  # three switches, no flicker
    assert np.flatnonzero(focus.cut).tolist() == [20, 40, 60]  # and each is a cut, not a pan across the room


def test_talking_person_keeps_the_speaker_through_a_pause_then_falls_back_to_the_largest():
    scene = Scene([Subject(1, person(300, width=150), speaking=lambda f: 0.8 if f < 10 else 0.0),
                   Subject(2, person(950, width=250))], frames=60, fps=10)
    x = xs(focus_for(scene.tracks(), Method.TALKING_PERSON, PORTRAIT))
    assert np.allclose(x[:30], 300)  # two seconds of silence still frame the last speaker
    assert np.allclose(x[32:], 950)


def test_adaptive_picks_its_rule_per_situation():
    dominant = Scene([Subject(1, person(300, width=300, height=600)), Subject(2, person(1000, width=60, height=120))],
                     frames=10)
    assert np.allclose(xs(focus_for(dominant.tracks(), Method.ADAPTIVE, PORTRAIT)), 300)
    group = Scene([Subject(1, person(500, width=120)), Subject(2, person(700, width=120))], frames=10)
    assert np.allclose(xs(focus_for(group.tracks(), Method.ADAPTIVE, PORTRAIT)), 600)
    spread = Scene([Subject(i, person(x, width=100)) for i, x in enumerate([150, 270, 390, 1100], start=1)],
                   frames=10)
    assert np.allclose(xs(focus_for(spread.tracks(), Method.ADAPTIVE, PORTRAIT)), 270)
    speaking = Scene([Subject(1, person(300), speaking=0.9), Subject(2, person(950), speaking=0.0)], frames=10)
    assert np.allclose(xs(focus_for(speaking.tracks(), Method.ADAPTIVE, PORTRAIT)), 300)


@pytest.mark.parametrize("method", list(Method))
def test_nobody_in_view_holds_then_eases_to_the_centre(method):
    scene = Scene([Subject(1, lambda f: person(200) if f < 10 else None)], frames=30, fps=5)
    focus = focus_for(scene.tracks(), method, PORTRAIT)
    assert np.allclose(xs(focus)[:15], 200)  # the subject, then held for a second
    assert np.allclose(focus.weight[10:15], 0.5)
    assert np.allclose(xs(focus)[16:], 640) and np.allclose(focus.weight[16:], 0.1)


def test_before_the_first_subject_of_a_shot_the_camera_waits_where_it_will_appear():
    scene = Scene([Subject(1, lambda f: person(1000) if f >= 5 else None)], frames=10)
    focus = focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT)
    assert np.allclose(xs(focus), 1000) and np.allclose(focus.weight[:5], 0.3)


def test_choices_reset_at_a_cut():
    scene = Scene([Subject(1, lambda f: person(300, width=200) if f < 10 else person(300, width=100)),
                   Subject(2, lambda f: person(900, width=180) if f < 10 else person(900, width=220))],
                  frames=20, cuts=[10])
    x = xs(focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT))
    assert np.allclose(x[:10], 300) and np.allclose(x[10:], 900)  # no dwell needed right after the cut


def test_adaptive_copes_with_shots_shorter_than_its_smoothing_window():
    scene = Scene([Subject(1, person(300)), Subject(2, person(900))], frames=12, fps=10, cuts=[2, 4])
    focus = focus_for(scene.tracks(), Method.ADAPTIVE, PORTRAIT)
    assert (focus.weight > 0).all()


def test_a_small_change_of_subject_is_panned_not_cut():
    scene = Scene([Subject(1, person(500, width=150), speaking=lambda f: 0.8 if f < 20 else 0.0),
                   Subject(2, person(640, width=150), speaking=lambda f: 0.0 if f < 20 else 0.8)], frames=40, fps=10)
    focus = focus_for(scene.tracks(), Method.TALKING_PERSON, PORTRAIT)
    assert np.allclose(xs(focus)[:20], 500) and np.allclose(xs(focus)[20:], 640)
    assert not focus.cut.any()  # 140 px is a third of the window: a short pan keeps both in view


def test_frames_without_a_target_wait_for_the_first_hold_the_last_then_go_to_the_centre():
    from smartcrop.planner.focus import Focus
    from smartcrop.planner.methods import _Subjects, hold_then_centre

    # 5 fps: a target on frames 3 and 4 of the first shot only; the second shot (from frame 15) has none
    subjects = _Subjects(Scene([], frames=20, fps=5.0, cuts=[15]).tracks(), PORTRAIT)
    focus = Focus.empty(20)
    focus.point[3:5], focus.weight[3:5] = [[100.0, 200.0], [300.0, 400.0]], 1.0
    held = hold_then_centre(focus, subjects)
    assert held.point[:3].tolist() == [[100.0, 200.0]] * 3 and held.weight[:3].tolist() == [0.3] * 3
    assert held.weight[3:5].tolist() == [1.0, 1.0]
    # 1 s (HOLD_SECONDS) after frame 4 is frame 9: held until then, then eased toward the centre
    assert held.point[5:10].tolist() == [[300.0, 400.0]] * 5 and held.weight[5:10].tolist() == [0.5] * 5
    assert held.point[10:15].tolist() == [[640.0, 360.0]] * 5 and held.weight[10:15].tolist() == [0.1] * 5
    assert held.point[15:].tolist() == [[640.0, 360.0]] * 5 and held.weight[15:].tolist() == pytest.approx([0.1] * 5)
