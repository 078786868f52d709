"""Quality metrics of a crop path, in plain numpy (no smartcrop imports, so the rules can be tested on their own).

Conventions: a *window* row is ``x, y, w, h`` and a *box* row is ``x1, y1, x2, y2``, both in display pixels of the
source; a path is one window per output frame, ``t`` its frame times in seconds.

The rules, as the README states them:

- **covered**: along each axis, the visible extent of the box (its overlap with the window) is at least
  ``min(box extent, window extent) - 5 % of the box extent``. A box that fits is covered when (nearly) all of it is
  inside; a box larger than the window is covered when it fills the window along that axis.
- **jitter**: mean ``|Δ|`` and ``|Δ²|`` of the window centre per output frame (Euclidean, x and y), in percent of the
  window width; differences that span a cut are left out.
- **camera moves**: the camera *starts moving* at a step whose ``|Δ|`` exceeds 0.05 % of the window width after at
  least 0.3 s without such a step (the start of the clip counts as still). Steps across a cut are not moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 0.05  # share of the box extent that may be cut off and still count as visible
MOVE_THRESHOLD = 0.0005  # |Δ centre| per frame, as a share of the window width, that counts as moving
STILL_SECONDS = 0.3  # stillness needed before a step counts as a new camera move
MIN_SCORE = 0.4  # reference boxes below this score are not subjects


# ---------------------------------------------------------------------------------------------------------------------
# coverage


def visible_extent(lo: np.ndarray, hi: np.ndarray, window_lo: np.ndarray, window_hi: np.ndarray) -> np.ndarray:
    """Length of the overlap of ``[lo, hi]`` with ``[window_lo, window_hi]`` (0 when they do not meet)."""
    return np.clip(np.minimum(hi, window_hi) - np.maximum(lo, window_lo), 0.0, None)


def covered(boxes: np.ndarray, windows: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """(N,) bool: is box ``i`` as fully inside window ``i`` as a window of that size allows?"""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    windows = np.asarray(windows, float).reshape(-1, 4)
    ok = np.ones(len(boxes), bool)
    for axis in (0, 1):
        lo, hi = boxes[:, axis], boxes[:, axis + 2]
        window_lo, size = windows[:, axis], windows[:, axis + 2]
        extent = hi - lo
        need = np.minimum(extent, size) - tolerance * extent
        ok &= visible_extent(lo, hi, window_lo, window_lo + size) >= need - 1e-6
    return ok


@dataclass(frozen=True)
class Coverage:
    frames_with_person: int  # reference frames with at least one subject box
    primary: float  # share of those frames whose largest box is covered (NaN without any)
    all_subjects: float  # mean over those frames of the share of boxes covered (NaN without any)


def largest_per_frame(box_frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Index of the largest box (by area) of every frame that has one, in frame order: the primary subject."""
    box_frame = np.asarray(box_frame, int).reshape(-1)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.lexsort((-area, box_frame))  # by frame, largest first
    return order[np.unique(box_frame[order], return_index=True)[1]]


def subject_coverage(box_frame: np.ndarray, boxes: np.ndarray, windows: np.ndarray,
                     tolerance: float = TOLERANCE) -> Coverage:
    """Coverage of subject boxes (already filtered to the people that count) by a path.

    ``box_frame[i]`` is the output frame of box ``i``; ``windows`` is the whole path (one row per output frame).
    """
    box_frame = np.asarray(box_frame, int).reshape(-1)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    if len(box_frame) == 0:
        return Coverage(0, float("nan"), float("nan"))
    ok = covered(boxes, np.asarray(windows, float)[box_frame], tolerance)
    largest = largest_per_frame(box_frame, boxes)
    _, per_box_frame = np.unique(box_frame, return_inverse=True)
    share = np.bincount(per_box_frame, weights=ok.astype(float)) / np.bincount(per_box_frame)
    return Coverage(frames_with_person=len(largest), primary=float(ok[largest].mean()),
                    all_subjects=float(share.mean()))


# ---------------------------------------------------------------------------------------------------------------------
# motion


def centres(windows: np.ndarray) -> np.ndarray:
    windows = np.asarray(windows, float).reshape(-1, 4)
    return windows[:, :2] + windows[:, 2:] / 2


def _cuts(frames: int, cut_before: np.ndarray | None) -> np.ndarray:
    """(F,) bool: a cut lies between frame i-1 and i (index 0 is never a cut here)."""
    cuts = np.zeros(frames, bool) if cut_before is None else np.asarray(cut_before, bool).copy()
    if len(cuts):
        cuts[0] = False
    return cuts


def step_sizes(windows: np.ndarray, cut_before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``|Δ|`` of the centre from frame i-1 to i as a share of the window width (F-1,), and whether the step is
    inside a shot (not across a cut)."""
    windows = np.asarray(windows, float).reshape(-1, 4)
    step = np.linalg.norm(np.diff(centres(windows), axis=0), axis=1) / windows[1:, 2]
    return step, ~_cuts(len(windows), cut_before)[1:]


@dataclass(frozen=True)
class Jitter:
    velocity: float  # mean |Δ| of the centre per frame, % of window width
    acceleration: float  # mean |Δ²| of the centre per frame, % of window width


def jitter(windows: np.ndarray, cut_before: np.ndarray | None = None) -> Jitter:
    windows = np.asarray(windows, float).reshape(-1, 4)
    frames = len(windows)
    cuts = _cuts(frames, cut_before)
    centre = centres(windows)
    width = windows[:, 2]
    d1 = np.linalg.norm(np.diff(centre, axis=0), axis=1) / width[1:]
    d2 = np.linalg.norm(np.diff(centre, n=2, axis=0), axis=1) / width[2:]
    valid1 = ~cuts[1:]
    valid2 = ~(cuts[1:-1] | cuts[2:]) if frames >= 3 else np.zeros(0, bool)
    velocity = 100.0 * float(d1[valid1].mean()) if valid1.any() else float("nan")
    acceleration = 100.0 * float(d2[valid2].mean()) if valid2.any() else float("nan")
    return Jitter(velocity, acceleration)


def camera_moves(t: np.ndarray, windows: np.ndarray, cut_before: np.ndarray | None = None, *,
                 threshold: float = MOVE_THRESHOLD, still_seconds: float = STILL_SECONDS) -> int:
    """How many times the camera starts moving (see the module docstring)."""
    t = np.asarray(t, float).reshape(-1)
    step, inside = step_sizes(windows, cut_before)
    moving = (step > threshold) & inside
    count = 0
    still_since = -np.inf  # the camera is still from here on (time of the end of the last moving step)
    for i in np.flatnonzero(moving) + 1:  # step i goes from frame i-1 to frame i
        if t[i - 1] - still_since >= still_seconds - 1e-9:
            count += 1
        still_since = t[i]
    return count


def duration(t: np.ndarray) -> float:
    """Seconds a path with frame times ``t`` lasts (its last frame shown for a typical frame interval)."""
    t = np.asarray(t, float).reshape(-1)
    if len(t) < 2:
        return 0.0
    return float(t[-1] - t[0] + np.median(np.diff(t)))


def moves_per_minute(t: np.ndarray, windows: np.ndarray, cut_before: np.ndarray | None = None) -> float:
    seconds = duration(t)
    return camera_moves(t, windows, cut_before) * 60.0 / seconds if seconds > 0 else float("nan")


# ---------------------------------------------------------------------------------------------------------------------
# talking_person against known truth


def shows_x(windows: np.ndarray, x: float) -> np.ndarray:
    """(F,) bool: the window's horizontal span contains ``x``."""
    windows = np.asarray(windows, float).reshape(-1, 4)
    return (windows[:, 0] <= x) & (x <= windows[:, 0] + windows[:, 2])


def shows_only(windows: np.ndarray, subject_x: float, others_x: list[float] | tuple[float, ...]) -> np.ndarray:
    """(F,) bool: the subject is in view and none of the others is."""
    ok = shows_x(windows, subject_x)
    for x in others_x:
        ok &= ~shows_x(windows, x)
    return ok


@dataclass(frozen=True)
class SwitchDelay:
    at: float  # time of the truth switch (s)
    delay: float  # seconds until the window first shows the new talker; the rest of the segment when missed
    missed: bool  # the window never showed the new talker before the next switch (or the end)


def switch_delays(t: np.ndarray, correct: np.ndarray, switches: list[float] | np.ndarray,
                  end: float | None = None) -> list[SwitchDelay]:
    """Per truth switch, how long until ``correct`` (the window shows the current talker) first holds.

    ``switches`` are the times at which the talker changes, ascending; segment ``k`` ends at the next switch or at
    ``end`` (default: the last frame time).
    """
    t = np.asarray(t, float).reshape(-1)
    correct = np.asarray(correct, bool).reshape(-1)
    switches = [float(s) for s in switches]
    end = float(t[-1]) if end is None else float(end)
    out = []
    for k, start in enumerate(switches):
        stop = switches[k + 1] if k + 1 < len(switches) else end
        hits = np.flatnonzero((t >= start - 1e-9) & (t < stop) & correct)
        if len(hits):
            out.append(SwitchDelay(start, max(0.0, float(t[hits[0]] - start)), False))
        else:
            out.append(SwitchDelay(start, stop - start, True))
    return out
