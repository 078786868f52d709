"""Per-track features the methods rank people by: speed, face and speaking score.

All of them are computed offline over the whole track, so windows can be centred on each frame (half a second
before and after) instead of lagging behind it: the crop can turn to a new speaker as soon as they start.
"""

from __future__ import annotations

import numpy as np

from smartcrop.framedata import PERSON, FrameData

SPEED_SMOOTHING = 0.5  # seconds over which velocities are averaged (detector noise)
SPEAKING_WINDOW = 1.0  # seconds of mouth movement that make a speaking score
MOUTH_MOVEMENT_FULL = 0.08  # std of mouth opening over the window that counts as clearly speaking
VOICE_GATE = 0.5  # voice probability at or above which speech is fully believed


def track_groups(tracks: FrameData) -> list[np.ndarray]:
    """Box indices of each (track, shot), in time order."""
    if len(tracks.frame) == 0:
        return []
    shot = tracks.shot_ids()[tracks.frame]
    key = tracks.track_id.astype(np.int64) * 1_000_000 + shot
    order = np.lexsort((tracks.t[tracks.frame], key))
    return np.split(order, np.flatnonzero(np.diff(key[order])) + 1)


def _centred_windows(times: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    half = seconds / 2
    return np.searchsorted(times, times - half, side="left"), np.searchsorted(times, times + half, side="right")


def track_speed(tracks: FrameData) -> np.ndarray:
    """(B,) speed of each box's track around it, in box heights per second."""
    speed = np.zeros(len(tracks.frame), np.float32)
    centres = tracks.centers
    heights = tracks.xyxy[:, 3] - tracks.xyxy[:, 1]
    for members in track_groups(tracks):
        if len(members) < 2:
            continue
        times = tracks.t[tracks.frame[members]]
        if len(np.unique(times)) != len(times):
            continue
        raw = np.gradient(centres[members].astype(float), times, axis=0)
        lo, hi = _centred_windows(times, SPEED_SMOOTHING)
        cumulative = np.vstack([np.zeros(2), np.cumsum(raw, axis=0)])
        velocity = (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]
        speed[members] = np.hypot(velocity[:, 0], velocity[:, 1]) / max(1.0, float(np.median(heights[members])))
    return speed


def match_faces(tracks: FrameData) -> tuple[np.ndarray, np.ndarray]:
    """(B, 4) face box and (B,) mouth opening of each person box; NaN where no face fits.

    A face belongs to a person when its centre lies in the top 60 % of the person's box and it is narrower than
    the box; each face goes to at most one person, best-fitting (smallest box) first.
    """
    face_xyxy = np.full((len(tracks.frame), 4), np.nan, np.float32)
    mouth = np.full(len(tracks.frame), np.nan, np.float32)
    faces = tracks.faces
    if len(faces) == 0 or len(tracks.frame) == 0:
        return face_xyxy, mouth
    face_centre = np.stack([(faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2, (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2], 1)
    face_width = faces.xyxy[:, 2] - faces.xyxy[:, 0]
    for frame in np.intersect1d(np.unique(faces.frame), np.unique(tracks.frame)):
        people = np.flatnonzero((tracks.frame == frame) & (tracks.cls == PERSON))
        found = np.flatnonzero(faces.frame == frame)
        if not len(people) or not len(found):
            continue
        box = tracks.xyxy[people]
        top = box[:, 1] + 0.6 * (box[:, 3] - box[:, 1])
        fits = ((face_centre[found, 0][None] >= box[:, 0, None]) & (face_centre[found, 0][None] <= box[:, 2, None])
                & (face_centre[found, 1][None] >= box[:, 1, None] - 0.1 * (box[:, 3, None] - box[:, 1, None]))
                & (face_centre[found, 1][None] <= top[:, None])
                & (face_width[found][None] <= (box[:, 2] - box[:, 0])[:, None] * 1.1))
        taken = np.zeros(len(found), bool)
        for person in np.argsort(tracks.areas[people]):
            options = np.flatnonzero(fits[person] & ~taken)
            if len(options):
                best = options[np.argmax(faces.score[found[options]])]
                taken[best] = True
                face_xyxy[people[person]] = faces.xyxy[found[best]]
                mouth[people[person]] = faces.mouth_open[found[best]]
    return face_xyxy, mouth


def speaking_score(tracks: FrameData, mouth_open: np.ndarray) -> np.ndarray:
    """(B,) 0-1: how much each person's mouth moves over about a second, gated by voice in the audio.

    A frozen or silent face scores 0; a talking one about 1. Where the audio says nobody speaks, the score drops
    with it; where there is no audio track, the mouth alone decides.
    """
    score = np.zeros(len(tracks.frame), np.float32)
    voice = tracks.voice
    for members in track_groups(tracks):
        values = mouth_open[members].astype(float)
        measured = ~np.isnan(values)
        if measured.sum() < 3:
            continue
        times = tracks.t[tracks.frame[members]]
        lo, hi = _centred_windows(times, SPEAKING_WINDOW)
        filled = np.where(measured, values, 0.0)
        n = np.concatenate([[0], np.cumsum(measured)])
        s1 = np.concatenate([[0.0], np.cumsum(filled)])
        s2 = np.concatenate([[0.0], np.cumsum(filled ** 2)])
        count = n[hi] - n[lo]
        mean = (s1[hi] - s1[lo]) / np.maximum(count, 1)
        variance = np.maximum(0.0, (s2[hi] - s2[lo]) / np.maximum(count, 1) - mean ** 2)
        movement = np.where(count >= 3, np.sqrt(variance), 0.0)
        score[members] = np.clip(movement / MOUTH_MOVEMENT_FULL, 0.0, 1.0)
    frame_voice = voice[tracks.frame]
    gate = np.where(np.isnan(frame_voice), 1.0, np.clip(frame_voice / VOICE_GATE, 0.0, 1.0))
    return (score * gate).astype(np.float32)


def add_features(tracks: FrameData) -> FrameData:
    tracks.speed = track_speed(tracks)
    tracks.face_xyxy, tracks.mouth_open = match_faces(tracks)
    tracks.speaking = speaking_score(tracks, tracks.mouth_open)
    return tracks
