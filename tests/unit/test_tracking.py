"""Tracking: boxes linked into tracks within a shot, new ids after a cut, lost people re-found for TRACK_SECONDS."""

from __future__ import annotations

import numpy as np

from smartcrop.tracker.tracking import LOOSE_IDS, TRACK_SECONDS, track_objects

from .scenes import Scene, Subject, person

FPS = 5.0


def walker(start: float, step: float = 8.0, visible=lambda frame: True):
    return lambda frame: person(start + step * frame) if visible(frame) else None


def ids_of(tracked, truth: int) -> set[int]:
    """The tracker's ids given to the boxes of the subject the scene numbers ``truth``."""
    return set(tracked.track_id[truth_of(tracked) == truth].tolist())


def truth_of(tracked) -> np.ndarray:
    # every scene here keeps its subjects apart in x, so a box's centre says whose it is
    return np.where((tracked.xyxy[:, 0] + tracked.xyxy[:, 2]) / 2 < 960, 1, 2)


def test_two_people_keep_one_id_each_and_every_box_comes_back_unchanged():
    scene = Scene([Subject(1, walker(300)), Subject(2, walker(1500, step=-6))], frames=30, fps=FPS)
    data = scene.tracks().boxes
    tracked = track_objects(scene.tracks(), FPS).boxes
    assert len(tracked) == len(data)
    assert ids_of(tracked, 1) == {1} and ids_of(tracked, 2) == {2}
    # each tracked box is its own input row: same frame, same pixels, same score
    order, back = np.lexsort((data.xyxy[:, 0], data.frame)), np.lexsort((tracked.xyxy[:, 0], tracked.frame))
    assert np.array_equal(tracked.frame[back], data.frame[order])
    assert np.array_equal(tracked.xyxy[back], data.xyxy[order])
    assert np.array_equal(tracked.score[back], data.score[order])


def test_ids_stay_unique_across_a_cut():
    scene = Scene([Subject(1, walker(300)), Subject(2, walker(1500, step=-6))], frames=30, fps=FPS, cuts=[15])
    tracked = track_objects(scene.tracks(), FPS).boxes
    before, after = tracked.frame < 15, tracked.frame >= 15
    assert set(tracked.track_id[before].tolist()) == {1, 2}
    # the next shot's ids start past the last one's highest plus one
    assert set(tracked.track_id[after].tolist()) == {4, 5}


def test_a_person_hidden_for_less_than_track_seconds_keeps_the_id():
    gap = int(TRACK_SECONDS * FPS) - 2  # analysed frames without the person
    scene = Scene([Subject(1, walker(300, visible=lambda f: not 10 <= f < 10 + gap))], frames=40, fps=FPS)
    assert set(track_objects(scene.tracks(), FPS).boxes.track_id.tolist()) == {1}


def test_a_person_hidden_for_longer_than_track_seconds_comes_back_as_someone_new():
    gap = int(TRACK_SECONDS * FPS) + 4
    scene = Scene([Subject(1, walker(300, step=2, visible=lambda f: not 10 <= f < 10 + gap))], frames=50, fps=FPS)
    tracked = track_objects(scene.tracks(), FPS).boxes
    assert tracked.track_id[tracked.frame < 10].tolist() == [1] * 10
    # the first box back is a confident one-off until its track is confirmed on the next frame
    assert tracked.track_id[tracked.frame == 10 + gap].tolist() == [LOOSE_IDS]
    assert set(tracked.track_id[tracked.frame > 10 + gap].tolist()) == {2}


def test_confident_one_off_boxes_are_kept_under_their_own_ids_and_faint_ones_dropped():
    def once(frame_index):
        return lambda frame: person(1500) if frame == frame_index else None

    scene = Scene([Subject(1, walker(300)), Subject(2, once(5), score=0.8), Subject(3, once(8), score=0.4)],
                  frames=12, fps=FPS)
    tracked = track_objects(scene.tracks(), FPS).boxes
    assert tracked.track_id[tracked.frame == 5].tolist() == [1, LOOSE_IDS]
    assert tracked.track_id[tracked.frame == 8].tolist() == [1]
    assert ids_of(tracked, 1) == {1}


def test_no_boxes_give_an_empty_timeline_of_the_same_length():
    scene = Scene([Subject(1, lambda frame: None)], frames=10, fps=FPS)
    tracked = track_objects(scene.tracks(), FPS)
    assert len(tracked.boxes) == 0 and tracked.frame_count == 10
