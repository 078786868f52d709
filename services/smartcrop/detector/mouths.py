"""How much each face's mouth moves, read often enough to see speech.

Syllables come at 4-5 per second, so mouths are sampled at ``MOUTH_FPS`` (12.5) on the frames that need them, while
the person detector keeps its own lower rate. Each sample compares a small grey patch around the mouth (placed by
YuNet's two mouth-corner points) with the same face's patch one sample earlier, and divides by the same change
around the eyes: a head that nods, sways or passes through a light change moves both patches, a talking mouth
moves only the lower one. The measure needs no lip landmarks, so profile and small faces, where landmark models
give up, still get one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOUTH_FPS = 12.5
MOUTH_PATCH = (32, 16)  # (width, height) of the resampled mouth patch
EYES_PATCH = (32, 12)
EYES_FLOOR = 0.05  # added to the eye change so a perfectly still face does not divide by zero
MIN_FACE_PX = 20  # faces narrower than this (detector-image pixels) are too small to read a mouth from
LINK_IOU = 0.3  # a face continues the track of the face it overlaps this much one sample earlier
LINK_GAP = 0.5  # seconds a face track may skip before a face starts a new one


def _patch(gray: np.ndarray, centre: np.ndarray, width: float, height: float, size: tuple[int, int]) -> np.ndarray:
    import cv2

    scale_x, scale_y = width / size[0], height / size[1]
    matrix = np.array([[scale_x, 0, centre[0] - width / 2], [0, scale_y, centre[1] - height / 2]], np.float32)
    patch = cv2.warpAffine(gray, matrix, size, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    return (patch - patch.mean()) / (patch.std() + 5.0)  # contrast-normalised: exposure changes cancel out


def face_patches(gray: np.ndarray, xyxy: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, h, w) mouth and eye patches of the faces ``xyxy`` with YuNet's five points ``points`` (N, 5, 2: right
    eye, left eye, nose, right and left mouth corner), all in the pixels of ``gray``."""
    mouths = np.zeros((len(xyxy), MOUTH_PATCH[1], MOUTH_PATCH[0]), np.float32)
    eyes = np.zeros((len(xyxy), EYES_PATCH[1], EYES_PATCH[0]), np.float32)
    for i, (box, marks) in enumerate(zip(xyxy, points)):
        width, height = float(box[2] - box[0]), float(box[3] - box[1])
        corners = marks[3:5]
        mouth_width = max(1.6 * float(np.hypot(*(corners[1] - corners[0]))), 0.45 * width)
        mouth_centre = corners.mean(axis=0) + np.array([0.0, 0.05 * height])
        mouths[i] = _patch(gray, mouth_centre, mouth_width, 0.32 * height, MOUTH_PATCH)
        eyes[i] = _patch(gray, marks[0:2].mean(axis=0), 0.8 * width, 0.3 * height, EYES_PATCH)
    return mouths, eyes


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of xyxy boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda boxes: (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


@dataclass
class _Sample:
    t: float
    xyxy: np.ndarray
    mouths: np.ndarray
    eyes: np.ndarray
    tracks: np.ndarray


@dataclass
class MouthReader:
    """Links one clip's faces into face tracks and measures mouth motion between consecutive mouth samples.

    Feed it the sampled frames in time order; ``read`` gives each face its track id and its mouth motion (NaN for a
    face with no sighting one sample earlier)."""

    _last: _Sample | None = None
    _next_track: int = 0

    def read(self, t: float, gray: np.ndarray, xyxy: np.ndarray, points: np.ndarray, *,
             consecutive: bool) -> tuple[np.ndarray, np.ndarray]:
        """(N,) track id and (N,) mouth motion of the faces at time ``t``; ``consecutive`` says the previous call
        was the previous mouth sample (nothing skipped in between)."""
        mouths, eyes = face_patches(gray, xyxy, points)
        tracks = np.full(len(xyxy), -1, np.int64)
        motion = np.full(len(xyxy), np.nan, np.float32)
        last = self._last
        if last is not None and len(last.xyxy) and len(xyxy) and t - last.t <= LINK_GAP:
            overlap = iou(xyxy, last.xyxy)
            for _ in range(min(len(xyxy), len(last.xyxy))):  # greedy, best overlap first
                face, previous = np.unravel_index(int(np.argmax(overlap)), overlap.shape)
                if overlap[face, previous] < LINK_IOU:
                    break
                tracks[face] = last.tracks[previous]
                if consecutive and xyxy[face, 2] - xyxy[face, 0] >= MIN_FACE_PX:
                    mouth_change = float(np.mean(np.abs(mouths[face] - last.mouths[previous])))
                    eye_change = float(np.mean(np.abs(eyes[face] - last.eyes[previous])))
                    motion[face] = mouth_change / (eye_change + EYES_FLOOR)
                overlap[face, :] = -1
                overlap[:, previous] = -1
        new = tracks < 0
        tracks[new] = self._next_track + np.arange(int(new.sum()))
        self._next_track += int(new.sum())
        self._last = _Sample(t, xyxy, mouths, eyes, tracks)
        return tracks, motion
