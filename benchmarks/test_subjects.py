"""The labelled subject: how a path is scored against it, how the labels are made, and that the label files hold up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.common import media_dir
from benchmarks.subjects import LABELS, Span, SubjectLabels, build, link, subject_shown

TIMES = np.arange(10) * 0.1
LEFT, RIGHT = (100.0, 100.0, 200.0, 400.0), (700.0, 100.0, 800.0, 400.0)
ON_LEFT, ON_RIGHT = (50.0, 0.0, 300.0, 500.0), (650.0, 0.0, 300.0, 500.0)  # windows x, y, w, h


def labels(*alternatives, t=TIMES, together=False, any_person=False, t0=0.0, t1=1.0) -> SubjectLabels:
    boxes = np.stack([np.broadcast_to(np.asarray(a, float), (len(t), 4)) for a in alternatives], axis=1) \
        if alternatives else np.zeros((len(t), 0, 4))
    return SubjectLabels("clip.mp4", (Span(t0, t1, "someone", any_person, together, np.asarray(t, float), boxes),))


def windows(*rows) -> np.ndarray:
    return np.asarray(rows, float)


NO_PEOPLE = (np.zeros(0), np.zeros((0, 4)))


def test_the_share_counts_the_labelled_frames_whose_window_keeps_the_subject():
    path = windows(*[ON_LEFT] * 7 + [ON_RIGHT] * 3)
    score = subject_shown(labels(LEFT), TIMES, path, *NO_PEOPLE)
    assert (score.frames, score.shown) == (10, pytest.approx(0.7))


def test_any_one_of_several_alternatives_will_do():
    path = windows(*[ON_LEFT] * 5 + [ON_RIGHT] * 5)
    assert subject_shown(labels(LEFT, RIGHT), TIMES, path, *NO_PEOPLE).shown == 1.0


def test_a_group_that_fits_together_must_be_kept_whole():
    both, right_only = (50.0, 0.0, 800.0, 500.0), (600.0, 0.0, 800.0, 500.0)
    path = windows(*[both] * 4 + [right_only] * 6)
    assert subject_shown(labels(LEFT, RIGHT, together=True), TIMES, path, *NO_PEOPLE).shown == pytest.approx(0.4)


def test_a_group_too_wide_for_the_window_is_shown_by_any_one_of_them():
    path = windows(*[ON_LEFT] * 5 + [ON_RIGHT] * 5)  # 300 wide; the pair spans 700
    assert subject_shown(labels(LEFT, RIGHT, together=True), TIMES, path, *NO_PEOPLE).shown == 1.0


def test_frames_where_the_subject_is_out_of_view_are_not_scored():
    span = labels(LEFT)
    span.spans[0].boxes[5:] = np.nan  # hidden behind a passing car
    score = subject_shown(span, TIMES, windows(*[ON_RIGHT] * 10), *NO_PEOPLE)
    assert (score.frames, score.shown) == (5, 0.0)


def test_labelled_frames_the_scored_run_lacks_are_skipped():
    score = subject_shown(labels(LEFT, t=TIMES + 0.05), TIMES, windows(*[ON_LEFT] * 10), *NO_PEOPLE)
    assert score.frames == 0 and np.isnan(score.shown)


def test_in_a_crowd_without_a_subject_any_whole_person_will_do_but_not_the_ground_between():
    people_time = np.array([0.0, 0.0, 0.1, 0.2, 0.2])
    people = np.array([LEFT, RIGHT, RIGHT, LEFT, RIGHT])
    path = windows(ON_LEFT, ON_LEFT, ON_LEFT)  # keeps someone at 0.0 and 0.2, nobody at 0.1
    score = subject_shown(labels(any_person=True), TIMES[:3], path, people_time, people)
    assert (score.frames, score.shown) == (3, pytest.approx(2 / 3))


def test_a_labelled_person_is_followed_by_overlap_and_held_where_the_detector_lost_them():
    frames = [np.array([LEFT, RIGHT]), np.array([RIGHT, (110.0, 100.0, 210.0, 400.0)]), np.zeros((0, 4)),
              np.array([(130.0, 100.0, 230.0, 400.0)])]
    track = link(frames, 0, np.asarray(LEFT), 3)
    assert track[1].tolist() == [110, 100, 210, 400]  # not the other person, listed first
    assert track[2].tolist() == [110, 100, 210, 400]  # held
    assert track[3].tolist() == [130, 100, 230, 400]


def test_build_fills_boxes_from_keys_and_leaves_a_person_out_near_a_key_that_says_out_of_view(tmp_path):
    from benchmarks.reference import Reference

    count = 6
    frame = np.repeat(np.arange(count), 2)
    xyxy = np.array([RIGHT, LEFT] * count, np.float32)
    reference = Reference(t=np.arange(count) * 0.1, shot_start=np.r_[True, np.zeros(count - 1, bool)],
                          analysed=np.ones(count, bool), frame=frame, xyxy=xyxy,
                          score=np.full(len(frame), 0.9, np.float32), cls=np.zeros(len(frame), int))
    file = tmp_path / "clip.json"
    file.write_text(json.dumps({"clip": "clip.mp4", "spans": [
        {"t0": 0.0, "t1": 0.6, "subject": "the left one, then out of view", "keys": [[0.0, [1]], [0.5, [None]]]}]}))
    boxes = [row[1:] for row in build(file, reference)["spans"][0]["boxes"]]
    assert boxes[:3] == [list(LEFT)] * 3 and boxes[3:] == [[None] * 4] * 3  # null in the file: strict JSON


LABEL_FILES = sorted(LABELS.glob("*.json"))


def test_every_clip_with_people_has_labels():
    clips = {p.stem for p in media_dir().iterdir() if p.suffix in (".mp4", ".avi")}
    assert clips, f"no clips in {media_dir()}: set SMARTCROP_SHARED"
    labelled = {p.stem for p in LABEL_FILES}
    animated = {c for c in clips if "animated" in c}
    assert labelled == clips - animated


@pytest.mark.parametrize("path", LABEL_FILES, ids=lambda p: p.stem)
def test_a_label_file_names_its_clip_and_every_span_has_boxes_inside_it(path):
    data = SubjectLabels.load(path)
    assert (media_dir() / data.clip).exists(), f"{data.clip} is not in {media_dir()}"
    assert data.spans
    for span in data.spans:
        assert span.t0 < span.t1 and span.subject
        if span.any_person:
            continue
        assert len(span.t) and (span.t >= span.t0 - 0.005).all() and (span.t < span.t1).all()
        present = ~np.isnan(span.boxes).any(axis=2)
        assert present.any(axis=1).mean() > 0.5, "a span where the subject is mostly out of view"
        good = span.boxes[present]
        assert (good[:, 2] > good[:, 0]).all() and (good[:, 3] > good[:, 1]).all()
