"""What a method hands the camera: per frame, where to look and which camera positions keep the subject in view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Focus:
    """Per-frame targets for the camera centre, in display pixels. Arrays have one row per frame (F)."""

    point: np.ndarray  # (F, 2) where the viewer should look (x, y)
    weight: np.ndarray  # (F,) how much the point matters; 0 where there is no target (nobody in view)
    keep_lo: np.ndarray  # (F, 2) camera-centre interval that keeps the primary subject fully inside the window;
    keep_hi: np.ndarray  # (F, 2) NaN where there is none (no subject, or a group larger than the window; one person
    # larger than the window keeps the positions where the window lies within them)
    cut: np.ndarray = None  # (F,) bool: the camera cuts (jumps) to this frame's target instead of panning
    subject: np.ndarray = None  # (F,) int: the track framed alone on this frame; -1 for a group or nobody

    def __post_init__(self):
        if self.cut is None:
            self.cut = np.zeros(len(self.weight), bool)
        if self.subject is None:
            self.subject = np.full(len(self.weight), -1)

    @classmethod
    def empty(cls, frames: int) -> "Focus":
        nan = np.full((frames, 2), np.nan)
        return cls(point=np.zeros((frames, 2)), weight=np.zeros(frames), keep_lo=nan, keep_hi=nan.copy())

    def __len__(self) -> int:
        return len(self.weight)
