"""Synthetic tracks for planner tests: people as boxes over time, at a known analysis rate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smartcrop.core.framedata import Boxes, FrameData, Timeline


@dataclass
class Subject:
    track: int
    box: object  # (x1, y1, x2, y2), or a function of the frame index returning one (or None when absent)
    cls: int = 0
    score: float = 0.9
    speaking: object = 0.0  # a number or a function of the frame index
    speed: object = 0.0
    sharpness: object = 1.0  # focus, 0-1 against the sharpest box of the frame
    face: object = None  # the matched face (x1, y1, x2, y2), or None

    def at(self, name, frame):
        value = getattr(self, name)
        return value(frame) if callable(value) else value


@dataclass
class Scene:
    subjects: list[Subject]
    frames: int = 50
    fps: float = 5.0
    cuts: list[int] = field(default_factory=list)

    def tracks(self) -> FrameData:
        rows = []
        for frame in range(self.frames):
            for subject in self.subjects:
                box = subject.at("box", frame)
                if box is None:
                    continue
                face = subject.at("face", frame)
                rows.append((frame, *box, subject.score, subject.cls, subject.track, subject.at("speed", frame),
                             subject.at("speaking", frame), subject.at("sharpness", frame),
                             *(face if face is not None else (np.nan,) * 4)))
        array = np.array(rows, float).reshape(-1, 15)
        shot = np.zeros(self.frames, bool)
        shot[self.cuts] = True
        boxes = Boxes.detected(frame=array[:, 0].astype(int), xyxy=array[:, 1:5].astype(np.float32),
                               score=array[:, 5].astype(np.float32), class_id=array[:, 6].astype(int),
                               sharpness=array[:, 10].astype(np.float32))
        boxes = boxes.replace(track_id=array[:, 7].astype(int), speed=array[:, 8].astype(np.float32),
                              speaking=array[:, 9].astype(np.float32), face_xyxy=array[:, 11:15].astype(np.float32))
        timeline = Timeline.of(t=np.arange(self.frames) / self.fps, shot_start=shot,
                               analysed=np.ones(self.frames, bool))
        return FrameData(timeline=timeline, boxes=boxes)


def person(x_centre: float, width: float = 200, top: float = 100, height: float = 500):
    return (x_centre - width / 2, top, x_centre + width / 2, top + height)
