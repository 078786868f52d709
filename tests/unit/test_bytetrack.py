"""ByteTrack: the same decisions as ultralytics' BYTETracker, frame by frame, and the rules they follow."""

from __future__ import annotations

import numpy as np
import pytest

from smartcrop.tracker.bytetrack import ByteTrack, ByteTrackParams, assign

from .bytetrack_reference import Frame, first_difference, ours, theirs

BUFFER = 15


def crowd(seed: int, frames: int = 240, people: int = 7) -> list[Frame]:
    """People walking across each other at different speeds and sizes, with jittered boxes and scores in every
    band, missed detections, spells out of view longer and shorter than the buffer, stray one-off boxes and
    doubled boxes on one person.

    No two boxes share a size, as with real detections: a box inside two boxes of one size overlaps both equally,
    and between equally good matchings the two solvers may choose differently.
    """
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1800, people)
    speed = rng.uniform(-14, 14, people)
    height = rng.uniform(120, 600, people)
    top = rng.uniform(50, 400, people)
    hidden = [(a, a + rng.integers(2, 2 * BUFFER + 6)) for a in rng.integers(0, frames, people)]
    result = []
    for frame in range(frames):
        boxes, scores = [], []
        for p in range(people):
            if hidden[p][0] <= frame < hidden[p][1] or rng.random() < 0.08:
                continue
            x = start[p] + speed[p] * frame + rng.normal(0, 3)
            h = height[p] * rng.uniform(0.95, 1.05)
            w = h * rng.uniform(0.35, 0.45)
            y = top[p] + rng.normal(0, 3)
            boxes.append((x - w / 2, y, x + w / 2, y + h))
            scores.append(rng.choice([rng.uniform(0.05, 0.25), rng.uniform(0.25, 0.35), rng.uniform(0.35, 0.95)],
                                     p=[0.15, 0.1, 0.75]))
            if rng.random() < 0.03:  # a second box on the same person, shifted and a little larger
                boxes.append((x - w / 2 + 4, y + 3, x + w / 2 + 7, y + h + 5))
                scores.append(rng.uniform(0.3, 0.6))
        if rng.random() < 0.1:  # a stray box
            x, y = rng.uniform(0, 1900, 2)
            boxes.append((x, y, x + rng.uniform(20, 150), y + rng.uniform(40, 300)))
            scores.append(rng.uniform(0.1, 0.9))
        order = rng.permutation(len(boxes))  # the detector's order says nothing about identity
        result.append((np.array(boxes, np.float32).reshape(-1, 4)[order], np.array(scores, np.float32)[order]))
    return result


@pytest.mark.parametrize("seed", range(6))
def test_the_same_ids_and_rows_as_ultralytics_frame_by_frame(seed):
    frames = crowd(seed)
    assert first_difference(frames, BUFFER) is None
    # the scenes exercise what they are meant to: many tracks, some lost and re-found, frames with none
    tracked = ours(frames, BUFFER)
    ids = {i for frame_ids, _ in tracked for i in frame_ids}
    assert len(ids) >= 7 and sum(not frame_ids for frame_ids, _ in tracked) < len(frames) // 4


def test_empty_frames_and_degenerate_boxes_as_ultralytics():
    box = np.array([[100, 100, 300, 600]], np.float32)
    flat = np.array([[500, 100, 500, 600], [100, 100, 300, 600]], np.float32)  # zero width, then the person
    frames = [(box, np.array([0.9], np.float32)), (np.zeros((0, 4), np.float32), np.zeros(0, np.float32)),
              (flat, np.array([0.9, 0.9], np.float32)), (box + 2, np.array([0.2], np.float32))]
    assert theirs(frames, BUFFER) == ours(frames, BUFFER) == [([1], [0]), ([], []), ([1], [1]), ([1], [0])]


def person(x: float) -> tuple[float, float, float, float]:
    return (x - 100, 100, x + 100, 600)


def frame(*boxes, score: float = 0.9) -> Frame:
    return np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32)


def run(frames: list[Frame], buffer: int = BUFFER) -> list[tuple[list[int], list[int]]]:
    assert ours(frames, buffer) == theirs(frames, buffer)  # each rule below is ultralytics' too
    return ours(frames, buffer)


def test_a_track_is_confirmed_on_its_second_sighting_except_on_the_first_frame():
    first, second = person(300), person(1200)
    assert run([frame(first), frame(first, second), frame(second, first), frame(first, second)]) == [
        ([1], [0]),  # the first frame confirms at once
        ([1], [0]),  # the newcomer got id 2 but is not out yet
        ([1, 2], [1, 0]),  # confirmed: each track names its box by row, whatever the order
        ([1, 2], [0, 1]),
    ]


def test_an_unconfirmed_track_not_seen_again_is_dropped_and_its_id_not_reused():
    first = person(300)
    assert run([frame(first), frame(first, person(1200)), frame(first), frame(first, person(1600)),
                frame(first, person(1600))]) == [([1], [0]), ([1], [0]), ([1], [0]), ([1], [0]), ([1, 3], [0, 1])]


def test_a_lost_track_is_found_again_after_up_to_buffer_plus_one_empty_frames_then_it_is_someone_new():
    # lost after its last sighting, removed once more than ``buffer`` frames passed, and matched one last time on the
    # frame after its removal (it leaves the lost pool only then)
    first, buffer = person(300), 4
    for gap, found in ((1, [1]), (buffer + 1, [1]), (buffer + 2, [])):
        frames = [frame(first)] * 3 + [frame()] * gap + [frame(first)] * 2
        tracked = run(frames, buffer)
        assert tracked[3 + gap] == (found, [0] * len(found))
        assert tracked[4 + gap] == (found or [2], [0])


def test_a_faint_box_keeps_a_tracked_person_but_starts_no_track():
    first, second = person(300), person(1200)
    assert run([frame(first), frame(first), frame(first, score=0.2), frame(second, score=0.2),
                frame(second, score=0.2)]) == [([1], [0]), ([1], [0]), ([1], [0]), ([], []), ([], [])]


def test_a_faint_box_does_not_bring_back_a_lost_track():
    first = person(300)
    assert run([frame(first), frame(), frame(first, score=0.2), frame(first)]) == [
        ([1], [0]), ([], []), ([], []), ([1], [0])]


def test_assignment_keeps_only_pairs_cheaper_than_the_limit_and_minimises_their_total():
    cost = np.array([[0.1, 0.5], [0.2, 0.95]])
    pairs, rows, columns = assign(cost, 0.8)
    # the cheapest full matching would be (0, 1) + (1, 0) = 0.7 but (1, 1) is over the limit: pairing (0, 0) and
    # leaving row 1 and column 1 out costs 0.1 + 0.8
    assert pairs.tolist() == [[0, 1], [1, 0]]
    pairs, rows, columns = assign(np.array([[0.1, 0.79], [0.85, 0.9]]), 0.8)
    assert pairs.tolist() == [[0, 0]] and rows.tolist() == [1] and columns.tolist() == [1]
    pairs, rows, columns = assign(np.zeros((0, 3)), 0.8)
    assert pairs.shape == (0, 2) and rows.tolist() == [] and columns.tolist() == [0, 1, 2]


def test_ids_restart_with_every_tracker_and_params_default_to_ultralytics_bytetrack():
    assert ByteTrackParams() == ByteTrackParams(high=0.25, low=0.1, new=0.3, buffer=30, match=0.8, fuse_score=True)
    boxes, scores = frame(person(300))
    assert ByteTrack().update(boxes, scores).ids.tolist() == ByteTrack().update(boxes, scores).ids.tolist() == [1]
