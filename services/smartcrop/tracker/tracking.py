"""Link per-frame detections into tracks with ByteTrack (our numpy implementation, see ``bytetrack``).

The tracker runs on analysed frames only and restarts at every cut: a camera path never spans a cut, and a person
in a new shot is a new subject for framing purposes. Each tracked box is the detection's own row, never a smoothed
box matched back to it.
"""

from __future__ import annotations

import numpy as np

from smartcrop.core.framedata import FrameData
from smartcrop.tracker.bytetrack import ByteTrack, ByteTrackParams

TRACK_SECONDS = 3.0  # how long a lost track may be re-found
SURE = 0.5  # detections this confident are kept even before ByteTrack confirms their track
LOOSE_IDS = 1_000_000  # ids of such one-off detections start here, apart from ByteTrack's


def _new_tracker(analysis_fps: float) -> ByteTrack:
    """A fresh ByteTrack that keeps a lost track for ``TRACK_SECONDS`` of analysed frames."""
    return ByteTrack(ByteTrackParams(high=0.25, low=0.1, new=0.3, buffer=max(1, int(TRACK_SECONDS * analysis_fps)),
                                     match=0.8, fuse_score=True))


def track_objects(data: FrameData, analysis_fps: float) -> FrameData:
    """The same timeline, keeping only boxes that belong to a track, each with its ``track_id``."""
    boxes, timeline = data.boxes, data.timeline
    order = np.argsort(boxes.frame, kind="stable")
    bounds = np.searchsorted(boxes.frame[order], np.arange(data.frame_count + 1))
    keep_rows: list[np.ndarray] = []
    keep_ids: list[np.ndarray] = []
    tracker = None
    id_offset = 0
    loose_id = LOOSE_IDS
    for index in np.flatnonzero(timeline.analysed | timeline.shot_start):
        if tracker is None or timeline.shot_start[index]:
            if tracker is not None:  # ids stay unique across shots (each tracker numbers its tracks from 1)
                id_offset = max([id_offset] + [int(ids[ids < LOOSE_IDS].max()) + 1 for ids in keep_ids
                                               if (ids < LOOSE_IDS).any()])
            tracker = _new_tracker(analysis_fps)
        if not timeline.analysed[index]:
            continue
        rows = order[bounds[index]:bounds[index + 1]]
        score = boxes.score[rows].astype(np.float32)
        tracked = tracker.update(boxes.xyxy[rows].astype(np.float32), score)
        if len(tracked.ids):
            keep_rows.append(rows[tracked.rows])
            keep_ids.append(tracked.ids + id_offset)
        # a confident detection ByteTrack has not confirmed yet (a new track needs a second sighting) still is
        # someone in the picture: keep it under an id of its own
        loose = np.setdiff1d(np.flatnonzero(score >= SURE), tracked.rows)
        if len(loose):
            keep_rows.append(rows[loose])
            keep_ids.append(np.arange(len(loose)) + loose_id)
            loose_id += len(loose)
    if not keep_rows:
        return data[np.zeros(len(boxes), bool)]
    kept = boxes[np.concatenate(keep_rows)]
    return data.replace(boxes=kept.replace(track_id=np.concatenate(keep_ids)))
