"""From focus points to a smooth camera path of crop windows, one per frame, never panning across a cut."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from smartcrop.job import Mode

SMOOTHING_SECONDS = {Mode.STABLE: 1.0, Mode.BALANCED: 0.5, Mode.RESPONSIVE: 0.25}


def camera_path(t: np.ndarray, shot_ids: np.ndarray, points: np.ndarray, valid: np.ndarray, *, frame_size: tuple[int, int],
                crop_size: tuple[int, int], mode: Mode, fps: float) -> np.ndarray:
    """(F, 4) windows ``x, y, w, h`` in display pixels."""
    width, height = frame_size
    crop_w, crop_h = crop_size
    centre = np.array([width / 2, height / 2])
    centres = np.tile(centre, (len(t), 1)).astype(float)
    sigma = SMOOTHING_SECONDS[mode] * (fps if fps > 0 else 25.0)
    for shot in np.unique(shot_ids):
        frames = np.flatnonzero(shot_ids == shot)
        known = frames[valid[frames]]
        if len(known) == 0:
            continue  # nobody in the shot: keep the centre
        for axis in range(2):
            track = np.interp(t[frames], t[known], points[known, axis])
            centres[frames, axis] = gaussian_filter1d(track, sigma, mode="nearest") if len(frames) > 1 else track
    x = np.clip(centres[:, 0] - crop_w / 2, 0, width - crop_w)
    y = np.clip(centres[:, 1] - crop_h / 2, 0, height - crop_h)
    return np.stack([x, y, np.full_like(x, crop_w), np.full_like(y, crop_h)], axis=1)
