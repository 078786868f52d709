"""The default crop keeps the person an editor would keep: on real clips with two people, where the subject is
labelled by eye in ``benchmarks/subjects`` (the tramp, not the man who only watches; the girl jumping in the middle,
not the boy half hidden behind her), adaptive keeps that person whole, and a centre crop of the same size does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.subjects import labels_for, subject_shown

from ..conftest import shared_media
from .planning import plan

pytestmark = pytest.mark.e2e

CLIPS = ["B_chaplin_two_men_bw_moviepy.mp4", "B_two_kids_jumping_bedroom_540p_sam2.mp4"]


@pytest.mark.parametrize("name", CLIPS)
def test_adaptive_keeps_the_labelled_subject_where_a_centre_crop_loses_them(name, detector_model):
    labels = labels_for(name)
    assert labels is not None, f"no labels for {name} in benchmarks/subjects"
    result = plan(shared_media(name), "adaptive")
    empty = (np.zeros(0), np.zeros((0, 4)))
    smart = subject_shown(labels, result.t, result.windows, *empty)
    centre = subject_shown(labels, result.t, result.centre_crop(), *empty)
    assert smart.frames >= 90  # every labelled frame is an output frame of the same decode
    assert centre.shown <= 0.4, f"{name}: a centre crop already keeps the subject {centre.shown:.1%} of the time"
    assert smart.shown >= 0.9, f"{name}: adaptive keeps the labelled subject only {smart.shown:.1%} of the time"
