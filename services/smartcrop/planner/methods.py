"""Methods turn tracks into a focus point per analysed frame: where the viewer should be looking."""

from __future__ import annotations

import numpy as np

from smartcrop.framedata import PERSON, FrameData
from smartcrop.job import Method

OBJECT_WEIGHT = 0.1  # other COCO objects count, but a person always matters more


def focus_points(tracks: FrameData, method: Method) -> tuple[np.ndarray, np.ndarray]:
    """(F, 2) focus point per frame and (F,) bool where one exists (analysed frames with subjects)."""
    count = tracks.frame_count
    weight = tracks.areas * tracks.score * np.where(tracks.cls == PERSON, 1.0, OBJECT_WEIGHT)
    if method in (Method.SINGLE_OBJECT, Method.ADAPTIVE, Method.TALKING_PERSON):
        weight = _largest_person_only(tracks, weight)
    centers = tracks.centers
    sums = np.zeros((count, 2))
    totals = np.zeros(count)
    np.add.at(sums, tracks.frame, centers * weight[:, None])
    np.add.at(totals, tracks.frame, weight)
    valid = totals > 0
    points = np.zeros((count, 2))
    points[valid] = sums[valid] / totals[valid, None]
    return points, valid


def _largest_person_only(tracks: FrameData, weight: np.ndarray) -> np.ndarray:
    """Keep the weight of the person track with the largest median area in each shot, if there is a person."""
    persons = tracks.cls == PERSON
    if not persons.any():
        return weight
    shot = tracks.shot_ids()[tracks.frame]
    keep = np.zeros(len(weight), bool)
    for shot_id in np.unique(shot[persons]):
        in_shot = persons & (shot == shot_id)
        ids = np.unique(tracks.track_id[in_shot])
        medians = [np.median(tracks.areas[in_shot & (tracks.track_id == i)]) for i in ids]
        keep |= in_shot & (tracks.track_id == ids[int(np.argmax(medians))])
    shots_with_person = np.isin(shot, np.unique(shot[persons]))
    return np.where(keep | ~shots_with_person, weight, 0.0)
