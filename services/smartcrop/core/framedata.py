"""Per-frame analysis data as column arrays: one timeline of frames, one table of boxes and one of faces.

Like supervision's ``Detections``, every attribute is one numpy column, so methods filter and aggregate with array
operations instead of Python loops over frames. On disk it is an Avro container of ``io.smartcrop.v1.FrameObjects``
(one record per frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from smartcrop.core import avro

PERSON = 0


def _nan(shape) -> np.ndarray:
    return np.full(shape, np.nan, np.float32)


@dataclass
class FaceTable:
    """Faces found by the detector (before the tracker matches them to people)."""

    frame: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # (G,)
    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (G, 4)
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    mouth_open: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # lip gap, NaN when unmeasured
    track: np.ndarray = None  # (G,) int: face track, -1 when unlinked
    mouth_motion: np.ndarray = None  # (G,) float32: mouth change over eye change since the last sample, or NaN

    def __post_init__(self):
        if self.track is None:
            self.track = np.full(len(self.frame), -1, int)
        if self.mouth_motion is None:
            self.mouth_motion = _nan(len(self.frame))
        for name in ("xyxy", "score", "mouth_open", "track", "mouth_motion"):
            if len(getattr(self, name)) != len(self.frame):
                raise ValueError(f"FaceTable.{name} has {len(getattr(self, name))} rows, frame has {len(self.frame)}")

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class FrameData:
    # per frame (F)
    t: np.ndarray  # seconds since the first frame
    shot_start: np.ndarray  # bool: a cut lies before this frame (frame 0 always starts a shot)
    analysed: np.ndarray  # bool: the detector looked at this frame
    # per box (B)
    frame: np.ndarray  # int: frame index of each box
    xyxy: np.ndarray  # (B, 4) float32, display pixels
    score: np.ndarray  # float32
    cls: np.ndarray  # int: COCO class
    track_id: np.ndarray  # int, -1 before tracking
    speed: np.ndarray = None  # float32, box heights per second (tracker)
    speaking: np.ndarray = None  # float32 in [0, 1] (tracker)
    face_xyxy: np.ndarray = None  # (B, 4) float32, NaN where no face was matched (tracker)
    mouth_open: np.ndarray = None  # float32, NaN where unmeasured
    sharpness: np.ndarray = None  # float32: Laplacian variance in the box over the sharpest box of its frame (0-1)
    # per frame, optional signals
    voice: np.ndarray = None  # (F,) float32 speech probability, NaN without audio
    faces: FaceTable = field(default_factory=FaceTable)

    def __post_init__(self):
        boxes = len(self.frame)
        if self.speed is None:
            self.speed = np.zeros(boxes, np.float32)
        if self.speaking is None:
            self.speaking = np.zeros(boxes, np.float32)
        if self.face_xyxy is None:
            self.face_xyxy = _nan((boxes, 4))
        if self.mouth_open is None:
            self.mouth_open = _nan(boxes)
        if self.sharpness is None:  # unmeasured: everyone equally sharp
            self.sharpness = np.ones(boxes, np.float32)
        if self.voice is None:
            self.voice = _nan(len(self.t))

    @property
    def frame_count(self) -> int:
        return len(self.t)

    _BOX_COLUMNS = ("frame", "xyxy", "score", "cls", "track_id", "speed", "speaking", "face_xyxy", "mouth_open",
                    "sharpness")

    def select(self, rows: np.ndarray) -> "FrameData":
        """The same timeline with only the boxes picked by ``rows`` (a mask or indices)."""
        return replace(self, **{name: getattr(self, name)[rows] for name in self._BOX_COLUMNS})

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
        boxes = self.select(order)
        bounds = np.searchsorted(boxes.frame, np.arange(self.frame_count + 1))
        face_order = np.argsort(self.faces.frame, kind="stable")
        face_bounds = np.searchsorted(self.faces.frame[face_order], np.arange(self.frame_count + 1))

        def face_record(xyxy, score, mouth, track=-1, motion=np.nan):
            return {"x1": float(xyxy[0]), "y1": float(xyxy[1]), "x2": float(xyxy[2]), "y2": float(xyxy[3]),
                    "score": float(score), "mouth_open": None if np.isnan(mouth) else float(mouth),
                    "track": int(track), "mouth_motion": None if np.isnan(motion) else float(motion)}

        def records():
            for i in range(self.frame_count):
                lo, hi = bounds[i], bounds[i + 1]
                box_records = []
                for j in range(lo, hi):
                    face = boxes.face_xyxy[j]
                    box_records.append({
                        "x1": float(boxes.xyxy[j, 0]), "y1": float(boxes.xyxy[j, 1]), "x2": float(boxes.xyxy[j, 2]),
                        "y2": float(boxes.xyxy[j, 3]), "score": float(boxes.score[j]), "cls": int(boxes.cls[j]),
                        "track_id": int(boxes.track_id[j]), "speed": float(boxes.speed[j]),
                        "speaking": float(boxes.speaking[j]), "sharpness": float(boxes.sharpness[j]),
                        "face": None if np.isnan(face[0]) else face_record(face, 1.0, boxes.mouth_open[j])})
                faces = [face_record(self.faces.xyxy[k], self.faces.score[k], self.faces.mouth_open[k],
                                     self.faces.track[k], self.faces.mouth_motion[k])
                         for k in face_order[face_bounds[i]:face_bounds[i + 1]]]
                voice = self.voice[i]
                yield {"index": i, "t": float(self.t[i]), "shot_start": bool(self.shot_start[i]),
                       "analysed": bool(self.analysed[i]), "boxes": box_records, "faces": faces,
                       "voice": None if np.isnan(voice) else float(voice)}

        return avro.write_container("FrameObjects", records())

    @classmethod
    def from_avro(cls, data: bytes) -> "FrameData":
        t, shot_start, analysed, voice = [], [], [], []
        box_rows: list[tuple] = []
        face_rows: list[tuple] = []
        nan4 = (np.nan,) * 4
        for record in avro.read_container(data):
            i = len(t)
            t.append(record["t"])
            shot_start.append(record["shot_start"])
            analysed.append(record["analysed"])
            voice.append(np.nan if record.get("voice") is None else record["voice"])
            for box in record["boxes"]:
                face = box.get("face")
                face_xyxy = (face["x1"], face["y1"], face["x2"], face["y2"]) if face else nan4
                mouth = face["mouth_open"] if face and face["mouth_open"] is not None else np.nan
                box_rows.append((i, box["x1"], box["y1"], box["x2"], box["y2"], box["score"], box["cls"],
                                 box["track_id"], box.get("speed", 0.0), box.get("speaking", 0.0), *face_xyxy, mouth,
                                 box.get("sharpness", 1.0)))
            for face in record.get("faces", []):
                mouth = np.nan if face["mouth_open"] is None else face["mouth_open"]
                motion = np.nan if face.get("mouth_motion") is None else face["mouth_motion"]
                face_rows.append((i, face["x1"], face["y1"], face["x2"], face["y2"], face["score"], mouth,
                                  face.get("track", -1), motion))
        b = np.asarray(box_rows, float).reshape(-1, 16)
        f = np.asarray(face_rows, float).reshape(-1, 9)
        return cls(t=np.asarray(t, float), shot_start=np.asarray(shot_start, bool),
                   analysed=np.asarray(analysed, bool), frame=b[:, 0].astype(int),
                   xyxy=b[:, 1:5].astype(np.float32), score=b[:, 5].astype(np.float32), cls=b[:, 6].astype(int),
                   track_id=b[:, 7].astype(int), speed=b[:, 8].astype(np.float32),
                   speaking=b[:, 9].astype(np.float32), face_xyxy=b[:, 10:14].astype(np.float32),
                   mouth_open=b[:, 14].astype(np.float32), sharpness=b[:, 15].astype(np.float32),
                   voice=np.asarray(voice, np.float32),
                   faces=FaceTable(frame=f[:, 0].astype(int), xyxy=f[:, 1:5].astype(np.float32),
                                   score=f[:, 5].astype(np.float32), mouth_open=f[:, 6].astype(np.float32),
                                   track=f[:, 7].astype(int), mouth_motion=f[:, 8].astype(np.float32)))


@dataclass
class CropPath:
    """A crop plan: one window (display pixels) per frame, and where the path breaks (cuts)."""

    t: np.ndarray  # (F,) seconds
    windows: np.ndarray  # (F, 4) x, y, w, h
    cut: np.ndarray  # (F,) bool: no camera move leads into this frame

    def to_avro(self) -> bytes:
        return avro.write_container("CropWindow", (
            {"index": i, "t": float(self.t[i]), "x": float(x), "y": float(y), "w": float(w), "h": float(h),
             "cut": bool(self.cut[i])} for i, (x, y, w, h) in enumerate(self.windows)))

    @classmethod
    def from_avro(cls, data: bytes) -> "CropPath":
        records = list(avro.read_container(data))
        return cls(t=np.array([r["t"] for r in records], float),
                   windows=np.array([(r["x"], r["y"], r["w"], r["h"]) for r in records], float).reshape(-1, 4),
                   cut=np.array([r.get("cut", False) for r in records], bool))
