"""Frame-by-frame comparison of our ByteTrack with ultralytics' BYTETracker, the implementation it follows.

ultralytics (and the ``lap`` solver its tracker needs) are dev dependencies: only tests import them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from smartcrop.tracker.bytetrack import ByteTrack, ByteTrackParams

Frame = tuple[np.ndarray, np.ndarray]  # (N, 4) float32 corner boxes and their (N,) float32 scores


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

    def __getitem__(self, index) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def theirs(frames: list[Frame], buffer: int) -> list[tuple[list[int], list[int]]]:
    """ultralytics' (ids, rows) per frame, in its output order."""
    from ultralytics.trackers.byte_tracker import BYTETracker

    tracker = BYTETracker(SimpleNamespace(tracker_type="bytetrack", track_high_thresh=0.25, track_low_thresh=0.1,
                                          new_track_thresh=0.3, track_buffer=buffer, match_thresh=0.8,
                                          fuse_score=True))
    out = []
    for xyxy, score in frames:
        tracked = tracker.update(_Boxes(xyxy, score, np.zeros(len(score), np.float32)))
        out.append((tracked[:, 4].astype(int).tolist(), tracked[:, 7].astype(int).tolist()) if len(tracked)
                   else ([], []))
    return out


def ours(frames: list[Frame], buffer: int) -> list[tuple[list[int], list[int]]]:
    """Our (ids, rows) per frame, in output order."""
    tracker = ByteTrack(ByteTrackParams(buffer=buffer))
    out = []
    for xyxy, score in frames:
        tracked = tracker.update(xyxy, score)
        out.append((tracked.ids.tolist(), tracked.rows.tolist()))
    return out


def first_difference(frames: list[Frame], buffer: int) -> str | None:
    """Where the two trackers first disagree (frame, ultralytics' ids and rows, ours), or None."""
    for index, (a, b) in enumerate(zip(theirs(frames, buffer), ours(frames, buffer))):
        if a != b:
            return f"frame {index}: ultralytics {a}, ours {b}"
    return None
