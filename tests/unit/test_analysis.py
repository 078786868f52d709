"""Shot cuts, per-frame data and the first planner, on synthetic inputs with exact expectations."""

import numpy as np

from smartcrop.detector.shots import detect_cuts
from smartcrop.framedata import CropPath, FrameData


def test_a_spike_is_a_cut_but_steady_motion_is_not():
    scores = np.full(100, 0.05)
    scores[40] = 0.6  # a cut
    scores[70:80] = 0.3  # a fast pan: high, but so are its neighbours
    cuts = detect_cuts(scores, window=12, min_score=0.12, ratio=3.0, min_gap=10)
    assert np.flatnonzero(cuts).tolist() == [40]


def test_cuts_keep_a_minimum_shot_length_and_never_fire_at_the_start():
    scores = np.full(60, 0.01)
    scores[[2, 30, 33]] = [0.9, 0.8, 0.5]
    assert np.flatnonzero(detect_cuts(scores, window=5, min_score=0.12, ratio=3.0, min_gap=10)).tolist() == [30]


def frames(boxes_per_frame, count=10, cut_at=None):
    """FrameData from {frame: [(x1, y1, x2, y2, score, cls, track)]}."""
    rows = [(f, *b) for f, boxes in boxes_per_frame.items() for b in boxes]
    shot = np.zeros(count, bool)
    if cut_at is not None:
        shot[cut_at] = True
    array = np.array(rows, float).reshape(-1, 8)
    return FrameData(t=np.arange(count) / 10.0, shot_start=shot, analysed=np.ones(count, bool),
                     frame=array[:, 0].astype(int), xyxy=array[:, 1:5].astype(np.float32),
                     score=array[:, 5].astype(np.float32), cls=array[:, 6].astype(int),
                     track_id=array[:, 7].astype(int))


def test_frame_data_round_trips_through_avro():
    data = frames({0: [(1, 2, 3, 4, 0.9, 0, 7)], 3: [(5, 6, 7, 8, 0.5, 2, -1), (0, 0, 10, 10, 0.7, 0, 8)]}, cut_at=5)
    back = FrameData.from_avro(data.to_avro())
    assert np.array_equal(back.t, data.t) and np.array_equal(back.shot_start, data.shot_start)
    order = np.lexsort((data.track_id, data.frame))
    back_order = np.lexsort((back.track_id, back.frame))
    assert np.array_equal(back.frame[back_order], data.frame[order])
    assert np.allclose(back.xyxy[back_order], data.xyxy[order])
    assert np.array_equal(back.track_id[back_order], data.track_id[order])
    assert back.shot_ids().tolist() == [0] * 5 + [1] * 5


def test_plan_windows_round_trip():
    t = np.arange(3) / 25
    windows = np.array([[10, 0, 405, 720], [11.5, 0, 405, 720], [12, 0, 405, 720]], float)
    back = CropPath.from_avro(CropPath(t, windows, np.array([True, False, True])).to_avro())
    assert np.allclose(back.t, t) and np.allclose(back.windows, windows) and back.cut.tolist() == [True, False, True]
