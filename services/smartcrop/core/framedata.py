"""Per-frame analysis data as column arrays: a timeline of frames, a table of boxes and a table of faces.

Like supervision's ``Detections``, each table is one validated dataclass holding one numpy array per column, so code
filters rows with ``table[rows]`` and aggregates with array operations instead of Python loops over frames; new
columns come with :meth:`replace`, which checks them again. On disk the three tables are one Avro container of
``io.smartcrop.v1.FrameObjects`` (a record per frame), written and read column by column.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np

from smartcrop.core import avro

PERSON = 0


def _nan(shape) -> np.ndarray:
    return np.full(shape, np.nan, np.float32)


class _Columns:
    """Equal-length numpy columns, checked when made: a table's rows are indexed like one array."""

    _widths: ClassVar[dict[str, int]] = {}  # columns of shape (N, width); every other column is (N,)

    def __post_init__(self):
        columns = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        rows = len(next(iter(columns.values())))
        for name, column in columns.items():
            if not isinstance(column, np.ndarray):
                raise TypeError(f"{type(self).__name__}.{name} must be a numpy array, got {type(column).__name__}")
            shape = (rows, self._widths[name]) if name in self._widths else (rows,)
            if column.shape != shape:
                raise ValueError(f"{type(self).__name__}.{name} has shape {column.shape}, expected {shape}")

    def __len__(self) -> int:
        return len(getattr(self, dataclasses.fields(self)[0].name))

    def __getitem__(self, rows) -> Self:
        """The rows picked by a boolean mask or an index array, every column alike."""
        return type(self)(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    def replace(self, **columns: np.ndarray) -> Self:
        return dataclasses.replace(self, **columns)


@dataclass(frozen=True)
class Timeline(_Columns):
    """One row per frame of the clip (F)."""

    t: np.ndarray  # float: seconds since the first frame
    shot_start: np.ndarray  # bool: a cut lies before this frame (frame 0 always starts a shot)
    analysed: np.ndarray  # bool: the detector looked at this frame
    voice: np.ndarray  # float32 speech probability, NaN without audio or where no face was read

    @classmethod
    def of(cls, t: np.ndarray, shot_start: np.ndarray, analysed: np.ndarray) -> Timeline:
        """A timeline before any speech was measured."""
        return cls(t=t, shot_start=shot_start, analysed=analysed, voice=_nan(len(t)))

    def shot_ids(self) -> np.ndarray:
        """(F,) shot number of every frame."""
        starts = self.shot_start.copy()
        if len(starts):
            starts[0] = True
        return np.cumsum(starts) - 1


@dataclass(frozen=True)
class Boxes(_Columns):
    """One row per detected object (B): the detector's columns, then those the tracker fills in."""

    _widths: ClassVar[dict[str, int]] = {"xyxy": 4, "face_xyxy": 4}

    frame: np.ndarray  # int: frame index of each box
    xyxy: np.ndarray  # (B, 4) float32, display pixels
    score: np.ndarray  # float32
    cls: np.ndarray  # int: COCO class
    sharpness: np.ndarray  # float32: Laplacian variance in the box over the sharpest box of its frame (0-1)
    track_id: np.ndarray  # int, -1 before tracking
    speed: np.ndarray  # float32, box heights per second (tracker)
    speaking: np.ndarray  # float32 in [0, 1] (tracker)
    face_xyxy: np.ndarray  # (B, 4) float32, NaN where no face was matched (tracker)
    mouth_open: np.ndarray  # float32, NaN where unmeasured (tracker)

    @classmethod
    def detected(cls, frame: np.ndarray, xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray,
                 sharpness: np.ndarray | None = None) -> Boxes:
        """Boxes as the detector gives them: untracked, no face matched; unmeasured sharpness is everyone's 1."""
        rows = len(frame)
        return cls(frame=frame, xyxy=xyxy, score=score, cls=class_id,
                   sharpness=np.ones(rows, np.float32) if sharpness is None else sharpness,
                   track_id=np.full(rows, -1, int), speed=np.zeros(rows, np.float32),
                   speaking=np.zeros(rows, np.float32), face_xyxy=_nan((rows, 4)), mouth_open=_nan(rows))

    @classmethod
    def empty(cls) -> Boxes:
        return cls.detected(np.zeros(0, int), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                            np.zeros(0, int))

    @property
    def centers(self) -> np.ndarray:
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1)

    @property
    def areas(self) -> np.ndarray:
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])


@dataclass(frozen=True)
class Faces(_Columns):
    """One row per face the face detector found (G), before and after the tracker links them to people."""

    _widths: ClassVar[dict[str, int]] = {"xyxy": 4}

    frame: np.ndarray  # int
    xyxy: np.ndarray  # (G, 4) float32, display pixels
    score: np.ndarray  # float32
    mouth_open: np.ndarray  # float32 lip gap, NaN when unmeasured
    track: np.ndarray  # int: face track, -1 when unlinked
    mouth_motion: np.ndarray  # float32: mouth change over eye change since the last sample, or NaN

    @classmethod
    def found(cls, frame: np.ndarray, xyxy: np.ndarray, score: np.ndarray, mouth_open: np.ndarray) -> Faces:
        """Faces as detected, not yet linked into tracks."""
        return cls(frame=frame, xyxy=xyxy, score=score, mouth_open=mouth_open, track=np.full(len(frame), -1, int),
                   mouth_motion=_nan(len(frame)))

    @classmethod
    def empty(cls) -> Faces:
        return cls.found(np.zeros(0, int), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                         np.zeros(0, np.float32))


@dataclass(frozen=True)
class FrameData:
    """The analysis of a clip: its timeline, the boxes in it and the faces; box and face rows name their frame."""

    timeline: Timeline
    boxes: Boxes = field(default_factory=Boxes.empty)
    faces: Faces = field(default_factory=Faces.empty)

    def __post_init__(self):
        for name, table in (("boxes", self.boxes), ("faces", self.faces)):
            if len(table) and (table.frame.min() < 0 or table.frame.max() >= self.frame_count):
                raise ValueError(f"FrameData.{name}.frame must lie in [0, {self.frame_count}), got "
                                 f"[{table.frame.min()}, {table.frame.max()}]")

    @property
    def frame_count(self) -> int:
        return len(self.timeline)

    def __getitem__(self, rows) -> FrameData:
        """The same timeline and faces with only the boxes picked by ``rows`` (a mask or indices)."""
        return dataclasses.replace(self, boxes=self.boxes[rows])

    def replace(self, **tables) -> FrameData:
        return dataclasses.replace(self, **tables)

    # ---- Avro container ------------------------------------------------------------------------------------------

    def to_avro(self) -> bytes:
        timeline, boxes, faces = self.timeline, self.boxes, self.faces
        box_order = np.argsort(boxes.frame, kind="stable")
        face_order = np.argsort(faces.frame, kind="stable")
        box_records = _box_records(boxes[box_order])
        face_records = _face_records(faces[face_order])
        box_bounds = np.searchsorted(boxes.frame[box_order], np.arange(self.frame_count + 1)).tolist()
        face_bounds = np.searchsorted(faces.frame[face_order], np.arange(self.frame_count + 1)).tolist()
        t, shot_start, analysed = timeline.t.tolist(), timeline.shot_start.tolist(), timeline.analysed.tolist()
        voice = _optional(timeline.voice)
        records = ({"index": i, "t": t[i], "shot_start": shot_start[i], "analysed": analysed[i],
                    "boxes": box_records[box_bounds[i]:box_bounds[i + 1]],
                    "faces": face_records[face_bounds[i]:face_bounds[i + 1]], "voice": voice[i]}
                   for i in range(self.frame_count))
        return avro.write_container("FrameObjects", records)

    @classmethod
    def from_avro(cls, data: bytes) -> FrameData:
        records = list(avro.read_container(data))
        box_counts = [len(record["boxes"]) for record in records]
        face_counts = [len(record.get("faces", [])) for record in records]  # files from before face tables: none
        boxes = [box for record in records for box in record["boxes"]]
        faces = [face for record in records for face in record.get("faces", [])]
        frames = np.arange(len(records))
        timeline = Timeline(t=np.array([r["t"] for r in records], float),
                            shot_start=np.array([r["shot_start"] for r in records], bool),
                            analysed=np.array([r["analysed"] for r in records], bool),
                            voice=_floats([r.get("voice") for r in records]))
        matched = [box.get("face") or _NO_FACE for box in boxes]
        box_table = Boxes(frame=np.repeat(frames, box_counts), xyxy=_corners(boxes),
                          score=_floats(_get(boxes, "score")),
                          cls=np.array(_get(boxes, "cls"), int).reshape(-1),
                          sharpness=_floats(_get(boxes, "sharpness", 1.0)),
                          track_id=np.array(_get(boxes, "track_id"), int).reshape(-1),
                          speed=_floats(_get(boxes, "speed", 0.0)), speaking=_floats(_get(boxes, "speaking", 0.0)),
                          face_xyxy=_corners(matched), mouth_open=_floats(_get(matched, "mouth_open")))
        face_table = Faces(frame=np.repeat(frames, face_counts), xyxy=_corners(faces),
                           score=_floats(_get(faces, "score")), mouth_open=_floats(_get(faces, "mouth_open")),
                           track=np.array(_get(faces, "track", -1), int).reshape(-1),
                           mouth_motion=_floats(_get(faces, "mouth_motion")))
        return cls(timeline=timeline, boxes=box_table, faces=face_table)


_NO_FACE = {"x1": None, "y1": None, "x2": None, "y2": None, "mouth_open": None}


def _optional(column: np.ndarray) -> list[float | None]:
    """A float column as Avro's optional doubles: NaN is null."""
    return [None if value != value else value for value in column.tolist()]


def _get(records: list[dict], name: str, default=None) -> list:
    return [record.get(name, default) for record in records]


def _floats(values: list) -> np.ndarray:
    """float32, null (or a missing field) as NaN."""
    return np.array([np.nan if value is None else value for value in values], np.float32).reshape(-1)


def _corners(records: list[dict]) -> np.ndarray:
    return np.stack([_floats(_get(records, key)) for key in ("x1", "y1", "x2", "y2")], axis=1).reshape(-1, 4)


def _box_records(boxes: Boxes) -> list[dict]:
    """The ``Box`` records of every row, each column converted once."""
    x1, y1, x2, y2 = boxes.xyxy.T.tolist() if len(boxes) else ([], [], [], [])
    fx1, fy1, fx2, fy2 = boxes.face_xyxy.T.tolist() if len(boxes) else ([], [], [], [])
    has_face = (~np.isnan(boxes.face_xyxy[:, 0])).tolist()
    mouth = _optional(boxes.mouth_open)
    score, cls, track, speed = boxes.score.tolist(), boxes.cls.tolist(), boxes.track_id.tolist(), boxes.speed.tolist()
    speaking, sharpness = boxes.speaking.tolist(), boxes.sharpness.tolist()
    return [{"x1": x1[j], "y1": y1[j], "x2": x2[j], "y2": y2[j], "score": score[j], "cls": cls[j],
             "track_id": track[j], "speed": speed[j], "speaking": speaking[j], "sharpness": sharpness[j],
             "face": {"x1": fx1[j], "y1": fy1[j], "x2": fx2[j], "y2": fy2[j], "score": 1.0, "mouth_open": mouth[j],
                      "track": -1, "mouth_motion": None} if has_face[j] else None}
            for j in range(len(boxes))]


def _face_records(faces: Faces) -> list[dict]:
    x1, y1, x2, y2 = faces.xyxy.T.tolist() if len(faces) else ([], [], [], [])
    score, track = faces.score.tolist(), faces.track.tolist()
    mouth, motion = _optional(faces.mouth_open), _optional(faces.mouth_motion)
    return [{"x1": x1[k], "y1": y1[k], "x2": x2[k], "y2": y2[k], "score": score[k], "mouth_open": mouth[k],
             "track": track[k], "mouth_motion": motion[k]} for k in range(len(faces))]


@dataclass
class CropPath:
    """A crop plan: one window (display pixels) per frame, and where the path breaks (cuts)."""

    t: np.ndarray  # (F,) seconds
    windows: np.ndarray  # (F, 4) x, y, w, h
    cut: np.ndarray  # (F,) bool: no camera move leads into this frame

    def to_avro(self) -> bytes:
        t, cut = self.t.tolist(), self.cut.tolist()
        x, y, w, h = np.asarray(self.windows, float).reshape(-1, 4).T.tolist()
        return avro.write_container("CropWindow", (
            {"index": i, "t": t[i], "x": x[i], "y": y[i], "w": w[i], "h": h[i], "cut": cut[i]} for i in range(len(t))))

    @classmethod
    def from_avro(cls, data: bytes) -> CropPath:
        records = list(avro.read_container(data))
        return cls(t=np.array([r["t"] for r in records], float),
                   windows=np.array([(r["x"], r["y"], r["w"], r["h"]) for r in records], float).reshape(-1, 4),
                   cut=np.array([r.get("cut", False) for r in records], bool))
