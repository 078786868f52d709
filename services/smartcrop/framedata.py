"""Per-frame analysis data as column arrays: one timeline of frames and one flat table of boxes.

Like supervision's ``Detections``, every box attribute is one numpy column, so methods filter and aggregate with
array operations instead of Python loops over frames. On disk it is an Avro container of
``io.smartcrop.v1.FrameObjects`` (one record per frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smartcrop.runtime import serde

PERSON = 0


@dataclass
class FrameData:
    t: np.ndarray  # (F,) seconds since the first frame
    shot_start: np.ndarray  # (F,) bool: a cut lies before this frame (frame 0 always starts a shot)
    analysed: np.ndarray  # (F,) bool: the detector looked at this frame
    frame: np.ndarray  # (B,) int: frame index of each box
    xyxy: np.ndarray  # (B, 4) float32, display pixels
    score: np.ndarray  # (B,) float32
    cls: np.ndarray  # (B,) int: COCO class
    track_id: np.ndarray  # (B,) int, -1 before tracking

    @property
    def frame_count(self) -> int:
        return len(self.t)

    @classmethod
    def empty_boxes(cls, t: np.ndarray, shot_start: np.ndarray, analysed: np.ndarray) -> "FrameData":
        return cls(t=np.asarray(t, float), shot_start=np.asarray(shot_start, bool), analysed=np.asarray(analysed, bool),
                   frame=np.zeros(0, int), xyxy=np.zeros((0, 4), np.float32), score=np.zeros(0, np.float32),
                   cls=np.zeros(0, int), track_id=np.zeros(0, int))

    def select(self, mask: np.ndarray) -> "FrameData":
        """The same timeline with only the boxes where ``mask`` is true."""
        return FrameData(self.t, self.shot_start, self.analysed, self.frame[mask], self.xyxy[mask], self.score[mask],
                         self.cls[mask], self.track_id[mask])

    def shot_ids(self) -> np.ndarray:
        """(F,) shot number of every frame."""
        starts = self.shot_start.copy()
        if len(starts):
            starts[0] = True
        return np.cumsum(starts) - 1

    @property
    def centers(self) -> np.ndarray:
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1)

    @property
    def areas(self) -> np.ndarray:
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    # ---- Avro container ------------------------------------------------------------------------------------------

    def to_avro(self) -> bytes:
        order = np.argsort(self.frame, kind="stable")
        frame, xyxy, score, cls, track = (self.frame[order], self.xyxy[order], self.score[order], self.cls[order],
                                          self.track_id[order])
        bounds = np.searchsorted(frame, np.arange(self.frame_count + 1))

        def records():
            for i in range(self.frame_count):
                lo, hi = bounds[i], bounds[i + 1]
                yield {"index": i, "t": float(self.t[i]), "shot_start": bool(self.shot_start[i]),
                       "analysed": bool(self.analysed[i]),
                       "boxes": [{"x1": float(b[0]), "y1": float(b[1]), "x2": float(b[2]), "y2": float(b[3]),
                                  "score": float(s), "cls": int(c), "track_id": int(k)}
                                 for b, s, c, k in zip(xyxy[lo:hi], score[lo:hi], cls[lo:hi], track[lo:hi])]}

        return serde.write_container("FrameObjects", records())

    @classmethod
    def from_avro(cls, data: bytes) -> "FrameData":
        t, shot_start, analysed = [], [], []
        frame, rows, score, classes, track = [], [], [], [], []
        for record in serde.read_container(data):
            i = len(t)
            t.append(record["t"])
            shot_start.append(record["shot_start"])
            analysed.append(record["analysed"])
            for box in record["boxes"]:
                frame.append(i)
                rows.append((box["x1"], box["y1"], box["x2"], box["y2"]))
                score.append(box["score"])
                classes.append(box["cls"])
                track.append(box["track_id"])
        return cls(t=np.asarray(t, float), shot_start=np.asarray(shot_start, bool),
                   analysed=np.asarray(analysed, bool), frame=np.asarray(frame, int),
                   xyxy=np.asarray(rows, np.float32).reshape(-1, 4), score=np.asarray(score, np.float32),
                   cls=np.asarray(classes, int), track_id=np.asarray(track, int))


def windows_to_avro(t: np.ndarray, windows: np.ndarray) -> bytes:
    """A crop plan: one ``x, y, w, h`` window (display pixels) per frame."""
    return serde.write_container("CropWindow", (
        {"index": i, "t": float(t[i]), "x": float(x), "y": float(y), "w": float(w), "h": float(h)}
        for i, (x, y, w, h) in enumerate(windows)))


def windows_from_avro(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    records = list(serde.read_container(data))
    t = np.array([r["t"] for r in records], float)
    windows = np.array([(r["x"], r["y"], r["w"], r["h"]) for r in records], float).reshape(-1, 4)
    return t, windows
