"""Smart crop is not a centre crop: on real clips whose subject sits off-centre, the window covers the subject where
a centre crop of the same size cannot, and it moves when the subject changes.

The truth comes from outside the planner: the human-labelled speaker faces of ``../shared/speakers`` and, for the
restaurant clip, a face box measured once with YuNet. A frame *covers* the subject when its window fully contains
the subject's face box.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.speakers import Labels, contains

from ..conftest import shared_media, shared_speakers
from .planning import plan

pytestmark = pytest.mark.e2e

# YuNet (face_detection_yunet_2026may, score >= 0.6) finds the man's face on all 224 frames; the median box. Its
# left edge ranges over x 367-419, always left of the 9:16 centre window's (x 438), so a centre crop cuts his face.
RESTAURANT = "A_man_talking_restaurant_720p_visualvoice.mp4"
RESTAURANT_FACE = [383, 45, 535, 262]
CONVERSATIONS = ["S1_msdwild00001_interview_3people", "S2_msdwild00115_two_women_table"]


def coverage(windows: np.ndarray, t: np.ndarray, segments: list[dict]) -> float:
    """Share of the frames inside ``segments`` whose window contains that segment's face box."""
    hits = total = 0
    for seg in segments:
        inside = (t >= seg["from"]) & (t <= seg["to"])
        hits += int(contains(windows[inside], seg["face_box_median"]).sum())
        total += int(inside.sum())
    assert total > 0
    return hits / total


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_talking_person_covers_the_off_centre_speakers(name, detector_model):
    labels = Labels.load(shared_speakers(name + ".json"))
    result = plan(shared_speakers(labels.clip), "talking_person")
    centre = result.centre_crop()
    off_centre = [s for s in labels.segments if not contains(centre[:1], s["face_box_median"])[0]]
    speakers = {s["speaker"] for s in off_centre}
    assert speakers == {"S1": {"A"}, "S2": {"A", "B"}}[name[:2]]  # the host in S1; both women in S2
    smart = coverage(result.windows, result.t, off_centre)
    assert coverage(centre, result.t, off_centre) == 0.0
    assert smart >= 0.9, f"{name[:2]}: the off-centre speaker is in the window in only {smart:.1%} of their frames"


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_the_window_moves_with_the_speaker(name, detector_model):
    labels = Labels.load(shared_speakers(name + ".json"))
    x = plan(shared_speakers(labels.clip), "talking_person").windows[:, 0]
    assert x.max() - x.min() >= 150, f"{name[:2]}: the window only spans x {x.min():.0f}-{x.max():.0f}"


def test_single_object_keeps_an_off_centre_face_whole(detector_model):
    result = plan(shared_media(RESTAURANT), "single_object")
    centre = result.centre_crop()
    assert not contains(centre[:1], RESTAURANT_FACE)[0]
    assert contains(centre, RESTAURANT_FACE).mean() == 0.0
    smart = contains(result.windows, RESTAURANT_FACE).mean()
    assert smart >= 0.9, f"the man's face is whole in only {smart:.1%} of the frames"
