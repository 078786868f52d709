"""Link per-frame detections into tracks with supervision's ByteTrack.

The tracker runs on analysed frames only and restarts at every cut: a camera path never spans a cut, and a person
in a new shot is a new subject for framing purposes. supervision's tracker is numpy and scipy only, so tracking never
imports torch (ultralytics' tracker module pulls the whole ultralytics package, and torch with it).
"""

from __future__ import annotations

import warnings

import numpy as np

from smartcrop.framedata import FrameData

TRACK_SECONDS = 3.0  # how long a lost track may be re-found
# Detections above ACTIVATION take part in the first association and new tracks need ACTIVATION + 0.1 (sv.ByteTrack
# ties the two): 0.2 keeps the new-track bar at 0.3, where the framing on the benchmark clips matches ultralytics'
# tracker with its 0.25 / 0.3 pair; 0.25 would raise it to 0.35.
ACTIVATION = 0.2
MATCH = 0.8  # the most IoU distance (1 - IoU, fused with the score) a track may jump to a detection
SURE = 0.5  # detections this confident are kept even before ByteTrack confirms their track
LOOSE_IDS = 1_000_000  # ids of such one-off detections start here, apart from ByteTrack's
ROW = "row"  # the ``Detections.data`` key that carries each box's index in its frame through the tracker


def _new_tracker(analysis_fps: float):
    """A fresh ByteTrack that keeps a lost track for ``TRACK_SECONDS`` of analysed frames."""
    import supervision as sv

    # sv.ByteTrack announces its move to the ``trackers`` package on every construction (once per shot here)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # the buffer counts frames at ``frame_rate / 30``: at 30 it is exactly the analysed frames to wait
        return sv.ByteTrack(track_activation_threshold=ACTIVATION,
                            lost_track_buffer=max(1, int(TRACK_SECONDS * analysis_fps)), frame_rate=30,
                            minimum_matching_threshold=MATCH, minimum_consecutive_frames=1)


def _track_frame(tracker, xyxy: np.ndarray, score: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame through ``tracker``: the indices (into the frame's boxes) of the tracked ones, and their ids.

    sv.ByteTrack hands back the input detections that its tracks match by IoU >= 0.5 with their updated Kalman boxes,
    filtered in input order with their ``data``: the row index travels in ``data``. A track whose box jumps so far
    that its smoothed box overlaps its detection less than that drops out for the frame.
    """
    import supervision as sv

    detections = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=score.astype(np.float32),
                               class_id=cls.astype(int), data={ROW: np.arange(len(score))})
    tracked = tracker.update_with_detections(detections)
    if not len(tracked):
        return np.zeros(0, int), np.zeros(0, int)
    return np.asarray(tracked.data[ROW], int), np.asarray(tracked.tracker_id, int)


def track_objects(data: FrameData, analysis_fps: float) -> FrameData:
    """The same timeline, keeping only boxes that belong to a track, each with its ``track_id``."""
    order = np.argsort(data.frame, kind="stable")
    bounds = np.searchsorted(data.frame[order], np.arange(data.frame_count + 1))
    keep_rows: list[np.ndarray] = []
    keep_ids: list[np.ndarray] = []
    tracker = None
    id_offset = 0
    loose_id = LOOSE_IDS
    for index in np.flatnonzero(data.analysed | data.shot_start):
        if tracker is None or data.shot_start[index]:
            if tracker is not None:  # ids stay unique across shots (ByteTrack numbers its tracks from 1)
                id_offset = max([id_offset] + [int(ids[ids < LOOSE_IDS].max()) for ids in keep_ids
                                               if (ids < LOOSE_IDS).any()])
            tracker = _new_tracker(analysis_fps)
        if not data.analysed[index]:
            continue
        rows = order[bounds[index]:bounds[index + 1]]
        detection_index, ids = _track_frame(tracker, data.xyxy[rows], data.score[rows], data.cls[rows])
        if len(ids):
            keep_rows.append(rows[detection_index])
            keep_ids.append(ids + id_offset)
        # a confident detection ByteTrack has not confirmed yet (a new track needs a second sighting) still is
        # someone in the picture: keep it under an id of its own
        loose = np.setdiff1d(np.flatnonzero(data.score[rows] >= SURE), detection_index)
        if len(loose):
            keep_rows.append(rows[loose])
            keep_ids.append(np.arange(len(loose)) + loose_id)
            loose_id += len(loose)
    if not keep_rows:
        return data.select(np.zeros(len(data.frame), bool))
    result = data.select(np.concatenate(keep_rows))
    result.track_id = np.concatenate(keep_ids)
    return result
