"""Per-frame data: three validated column tables, filtered by rows, written to Avro a record per frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from smartcrop.core import avro
from smartcrop.core.framedata import Boxes, Faces, FrameData, Timeline


def two_boxes() -> Boxes:
    return Boxes.detected(frame=np.array([2, 0]), xyxy=np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32),
                          score=np.array([0.5, 0.75], np.float32), class_id=np.array([0, 2]))


def test_detected_boxes_start_untracked_faceless_and_equally_sharp():
    boxes = two_boxes()
    assert len(boxes) == 2 and boxes.track_id.tolist() == [-1, -1] and boxes.sharpness.tolist() == [1.0, 1.0]
    assert boxes.speed.tolist() == [0.0, 0.0] and np.isnan(boxes.face_xyxy).all() and np.isnan(boxes.mouth_open).all()
    assert boxes.centers.tolist() == [[2.0, 3.0], [6.0, 7.0]] and boxes.areas.tolist() == [4.0, 4.0]


def test_rows_are_picked_in_every_column_alike():
    boxes = two_boxes()
    assert boxes[np.array([False, True])].frame.tolist() == [0]
    picked = boxes[np.array([1, 0])]
    assert picked.score.tolist() == [0.75, 0.5] and picked.xyxy[0].tolist() == [5, 6, 7, 8]
    data = FrameData(Timeline.of(np.arange(3) / 10, np.array([True, False, False]), np.ones(3, bool)), boxes)
    assert len(data[boxes.cls == 2].boxes) == 1 and data[boxes.cls == 2].frame_count == 3


@pytest.mark.parametrize("change, message", [
    ({"score": np.zeros(3, np.float32)}, r"Boxes.score has shape \(3,\), expected \(2,\)"),
    ({"xyxy": np.zeros((2, 3), np.float32)}, r"Boxes.xyxy has shape \(2, 3\), expected \(2, 4\)"),
    ({"track_id": [1, 2]}, "Boxes.track_id must be a numpy array, got list"),
])
def test_a_column_of_the_wrong_shape_is_refused_by_name(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        two_boxes().replace(**change)


def test_boxes_and_faces_must_name_frames_of_the_timeline():
    timeline = Timeline.of(np.arange(2) / 10, np.array([True, False]), np.ones(2, bool))
    with pytest.raises(ValueError, match=r"FrameData.boxes.frame must lie in \[0, 2\), got \[0, 2\]"):
        FrameData(timeline, two_boxes())
    faces = Faces.found(np.array([5]), np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="FrameData.faces.frame"):
        FrameData(timeline, faces=faces)


def test_the_avro_file_holds_one_record_per_frame_with_its_boxes_and_faces():
    timeline = Timeline.of(np.array([0.0, 0.5, 1.0]), np.array([True, False, True]), np.array([True, False, True]))
    timeline = timeline.replace(voice=np.array([np.nan, 0.25, 1.0], np.float32))
    boxes = two_boxes().replace(track_id=np.array([7, 3]), face_xyxy=np.array([[np.nan] * 4, [5, 6, 7, 7]],
                                                                               np.float32),
                                mouth_open=np.array([np.nan, 0.5], np.float32))
    faces = Faces(frame=np.array([0]), xyxy=np.array([[5, 6, 7, 7]], np.float32), score=np.array([0.75], np.float32),
                  mouth_open=np.array([0.5], np.float32), track=np.array([4]),
                  mouth_motion=np.array([np.nan], np.float32))
    data = FrameData(timeline, boxes, faces)
    records = list(avro.read_container(data.to_avro()))
    assert records == [
        {"index": 0, "t": 0.0, "shot_start": True, "analysed": True, "voice": None,
         "boxes": [{"x1": 5.0, "y1": 6.0, "x2": 7.0, "y2": 8.0, "score": 0.75, "cls": 2, "track_id": 3,
                    "speed": 0.0, "speaking": 0.0, "sharpness": 1.0,
                    "face": {"x1": 5.0, "y1": 6.0, "x2": 7.0, "y2": 7.0, "score": 1.0, "mouth_open": 0.5,
                             "track": -1, "mouth_motion": None}}],
         "faces": [{"x1": 5.0, "y1": 6.0, "x2": 7.0, "y2": 7.0, "score": 0.75, "mouth_open": 0.5, "track": 4,
                    "mouth_motion": None}]},
        {"index": 1, "t": 0.5, "shot_start": False, "analysed": False, "voice": 0.25, "boxes": [], "faces": []},
        {"index": 2, "t": 1.0, "shot_start": True, "analysed": True, "voice": 1.0, "faces": [],
         "boxes": [{"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0, "score": 0.5, "cls": 0, "track_id": 7, "speed": 0.0,
                    "speaking": 0.0, "sharpness": 1.0, "face": None}]},
    ]
    back = FrameData.from_avro(data.to_avro())
    order = np.argsort(boxes.frame)
    for table, original in ((back.boxes, boxes[order]), (back.faces, faces), (back.timeline, timeline)):
        for name in (f.name for f in dataclasses.fields(original)):
            got, expected = getattr(table, name), getattr(original, name)
            assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=got.dtype.kind == "f"), name
