"""Link per-frame detections into tracks with ByteTrack (the implementation ultralytics ships).

The tracker runs on analysed frames only and restarts at every cut: a camera path never spans a cut, and a person
in a new shot is a new subject for framing purposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from smartcrop.framedata import FrameData

TRACK_SECONDS = 3.0  # how long a lost track may be re-found
SURE = 0.5  # detections this confident are kept even before ByteTrack confirms their track
LOOSE_IDS = 1_000_000  # ids of such one-off detections start here, apart from ByteTrack's


@dataclass
class _Boxes:
    """The slice of ultralytics ``Boxes`` BYTETracker reads: ``conf``, ``cls``, ``xywh`` and boolean indexing."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray

    @property
    def xywh(self) -> np.ndarray:
        xy = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
        return np.concatenate([xy, self.xyxy[:, 2:] - self.xyxy[:, :2]], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> "_Boxes":
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def _new_tracker(analysis_fps: float):
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(tracker_type="bytetrack", track_high_thresh=0.25, track_low_thresh=0.1,
                           new_track_thresh=0.3, track_buffer=max(1, int(TRACK_SECONDS * analysis_fps)),
                           match_thresh=0.8, fuse_score=True)
    return BYTETracker(args)


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
            if tracker is not None:  # ids stay unique across shots
                id_offset = max([id_offset] + [int(ids[ids < LOOSE_IDS].max()) + 1 for ids in keep_ids
                                               if (ids < LOOSE_IDS).any()])
            tracker = _new_tracker(analysis_fps)
        if not data.analysed[index]:
            continue
        rows = order[bounds[index]:bounds[index + 1]]
        boxes = _Boxes(data.xyxy[rows].astype(np.float32), data.score[rows].astype(np.float32),
                       data.cls[rows].astype(np.float32))
        tracked = tracker.update(boxes)
        detection_index = tracked[:, 7].astype(int) if len(tracked) else np.zeros(0, int)
        if len(tracked):
            keep_rows.append(rows[detection_index])
            keep_ids.append(tracked[:, 4].astype(int) + id_offset)
        # a confident detection ByteTrack has not confirmed yet (a new track needs a second sighting) still is
        # someone in the picture: keep it under an id of its own
        loose = np.setdiff1d(np.flatnonzero(boxes.conf >= SURE), detection_index)
        if len(loose):
            keep_rows.append(rows[loose])
            keep_ids.append(np.arange(len(loose)) + loose_id)
            loose_id += len(loose)
    if not keep_rows:
        return data.select(np.zeros(len(data.frame), bool))
    result = data.select(np.concatenate(keep_rows))
    result.track_id = np.concatenate(keep_ids)
    return result
