"""The chaser: the camera told the scored person on every reference frame."""

import numpy as np
import pytest

from benchmarks import metrics
from benchmarks.quality import MODES, chaser_path
from benchmarks.reference import Reference

W, H, CROP = 1280, 720, (404, 720)


def reference(boxes_per_frame: list[list[tuple[float, float, float, float]]], fps: float = 25.0) -> Reference:
    frames = len(boxes_per_frame)
    frame = [f for f, boxes in enumerate(boxes_per_frame) for _ in boxes]
    xyxy = [box for boxes in boxes_per_frame for box in boxes]
    return Reference(t=np.arange(frames) / fps, shot_start=np.r_[True, np.zeros(frames - 1, bool)],
                     analysed=np.arange(frames) % 2 == 0, frame=np.asarray(frame, int),
                     xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4), score=np.full(len(frame), 0.9, np.float32),
                     cls=np.zeros(len(frame), int))


@pytest.mark.parametrize("mode", MODES)
def test_the_chaser_frames_a_still_off_centre_person_on_every_frame(mode):
    ref = reference([[(1000, 100, 1150, 700), (100, 300, 160, 450)]] * 50)  # and a small one far left
    path = chaser_path(ref, (W, H), CROP, mode)
    box_frame, boxes = ref.people()
    assert metrics.subject_coverage(box_frame, boxes, path.windows).primary == 1.0


def test_the_chaser_follows_the_person_who_is_largest_now_not_the_one_who_was():
    # the left person is larger for 2 s, then the right one for 2 s: the balanced camera ends on the right one
    left, right = (100, 100, 300, 700), (1000, 100, 1150, 700)
    small_left = (150, 300, 250, 700)
    ref = reference([[left, right]] * 50 + [[small_left, right]] * 50)
    windows = chaser_path(ref, (W, H), CROP, "balanced").windows
    assert windows[10, 0] <= 100 and windows[-1, 0] + CROP[0] >= 1150
