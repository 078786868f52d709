"""Shot boundaries from tiny frames, decided with look-ahead so camera paths never pan across a cut.

Two cues per frame pair: how much the picture's structure changed (mean absolute difference of a small grey
thumbnail, which catches cuts between shots of the same lighting) and how much its colours changed (histogram
distance, which stays calm under fast motion). A cut is a frame whose combined score stands well above the scores
around it on both sides, like PySceneDetect's adaptive detector, so a fast pan does not read as a cut.
"""

from __future__ import annotations

import numpy as np

THUMB_LONG_SIDE = 64
DUPLICATE = 0.005  # a score this low means the frame repeats the previous one
HIST_BINS = 16


def frame_features(rgb_thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grey thumbnail in 0..1, normalised per-channel colour histogram) of one small RGB frame."""
    rgb = rgb_thumb.astype(np.float32)
    grey = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    bins = (rgb_thumb // (256 // HIST_BINS)).reshape(-1, 3).astype(np.int64)
    hist = np.concatenate([np.bincount(bins[:, c], minlength=HIST_BINS) for c in range(3)]).astype(np.float32)
    return grey, hist / max(1.0, hist.sum() / 3)


class ShotDetector:
    def __init__(self, fps: float, *, min_score: float = 0.12, ratio: float = 3.0, window_s: float = 0.5,
                 min_shot_s: float = 0.4):
        self.fps = fps if fps > 0 else 25.0
        self.min_score = min_score
        self.ratio = ratio
        self.window = max(2, int(round(window_s * self.fps)))
        self.min_gap = max(1, int(round(min_shot_s * self.fps)))
        self._scores: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, rgb_thumb: np.ndarray) -> None:
        grey, hist = frame_features(rgb_thumb)
        if self._previous is None or self._previous[0].shape != grey.shape:
            self._scores.append(0.0)
        else:
            structure = float(np.mean(np.abs(grey - self._previous[0])))
            colour = 0.5 * float(np.abs(hist - self._previous[1]).sum()) / 3.0
            self._scores.append(0.6 * min(1.0, 3.0 * structure) + 0.4 * colour)
        self._previous = (grey, hist)

    @property
    def scores_so_far(self) -> list[float]:
        """Per-frame change scores, as a list that grows as frames are added (no copy)."""
        return self._scores

    @property
    def scores(self) -> np.ndarray:
        return np.asarray(self._scores, float)

    def shot_starts(self) -> np.ndarray:
        """(F,) bool: True where a new shot begins (never on frame 0)."""
        return detect_cuts(self.scores, window=self.window, min_score=self.min_score, ratio=self.ratio,
                           min_gap=self.min_gap)

    @property
    def look_ahead(self) -> int:
        """Frames on either side of a frame that decide whether it is a cut."""
        return self.window + self.min_gap

    def settled_cuts(self, since: int) -> np.ndarray:
        """Indices of the cuts after frame ``since`` that no later frame can undo, from the frames added so far.

        Only a stretch around them is scored, so a long clip costs the same per call; away from the stretch's ends
        (``look_ahead`` frames) its cuts are the whole clip's, which the caller checks before relying on them."""
        count = len(self._scores)
        lo = max(0, since - self.look_ahead)
        starts = detect_cuts(np.asarray(self._scores[lo:count], float), window=self.window, min_score=self.min_score,
                             ratio=self.ratio, min_gap=self.min_gap)
        cuts = lo + np.flatnonzero(starts)
        return cuts[(cuts > since) & (cuts < count - self.look_ahead)]


def detect_cuts(scores: np.ndarray, *, window: int, min_score: float, ratio: float, min_gap: int) -> np.ndarray:
    count = len(scores)
    starts = np.zeros(count, bool)
    if count < 2:
        return starts
    # repeated frames (score ~0, common in web video) say nothing about motion: leave them out of the average
    real = (scores > DUPLICATE).astype(float)
    kernel = np.ones(2 * window + 1)
    kernel[window] = 0  # the frame itself is not its own neighbourhood
    totals = np.convolve(np.pad(scores * real, window, mode="edge"), kernel, mode="valid")
    counts = np.convolve(np.pad(real, window, mode="edge"), kernel, mode="valid")
    neighbourhood = totals / np.maximum(counts, 1)
    candidates = (scores >= min_score) & (scores >= ratio * neighbourhood + 0.02)
    candidates[:min_gap] = False  # frame 0 already starts a shot; keep the first shot min_gap long too
    # strongest first, keeping shots at least min_gap frames long
    order = np.argsort(-scores)
    for index in order[candidates[order]]:
        lo, hi = max(0, index - min_gap + 1), min(count, index + min_gap)
        if not starts[lo:hi].any():
            starts[index] = True
    return starts
