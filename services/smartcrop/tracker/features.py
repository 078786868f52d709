"""Per-track features the methods rank people by: speed, face and speaking score.

All of them are computed offline over the whole track, so windows can be centred on each frame (half a second
before and after) instead of lagging behind it: the crop can turn to a new speaker as soon as they start.

Who speaks is decided among the faces in view, not against an absolute threshold: a listener who smiles, nods or
chews moves their mouth too, so each face's evidence is compared with the best other face's at the same moment.
The evidence is the face's mouth motion (``detector.mouths``) over about a second, plus how much more the mouth
moves while the audio holds speech than while it does not over a few seconds: the part of the motion that follows
the voice.
"""

from __future__ import annotations

import numpy as np

from smartcrop.core.framedata import PERSON, FrameData
from smartcrop.media.voice import SPEECH

SPEED_SMOOTHING = 0.5  # seconds over which velocities are averaged (detector noise)
MOUTH_WINDOW = 1.0  # seconds of mouth motion averaged into a face's activity
SYNC_WINDOW = 3.0  # seconds over which motion while voiced is compared with motion while silent
SYNC_WEIGHT = 0.5  # weight of that voiced-minus-silent difference in the evidence
SYNC_PRIOR = 4.0  # samples on the rarer side (voiced or silent) at which that difference counts half
VOICED = SPEECH  # voice probability from which a moment counts as speech
LEAD_FULL = 0.25  # evidence lead over the best other face that scores 1 (no lead scores 0.5, trailing by it 0)
SOLO_LEVEL = 0.7  # evidence of a face alone in view that scores 0.5 (the activity of a typical listener)
VOICE_GATE = 0.5  # voice probability at or above which speech is fully believed


def track_groups(tracks: FrameData) -> list[np.ndarray]:
    """Box indices of each (track, shot), in time order."""
    boxes = tracks.boxes
    if len(boxes) == 0:
        return []
    shot = tracks.timeline.shot_ids()[boxes.frame]
    key = boxes.track_id.astype(np.int64) * 1_000_000 + shot
    order = np.lexsort((tracks.timeline.t[boxes.frame], key))
    return np.split(order, np.flatnonzero(np.diff(key[order])) + 1)


def _centred_windows(times: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    half = seconds / 2
    return np.searchsorted(times, times - half, side="left"), np.searchsorted(times, times + half, side="right")


def track_speed(tracks: FrameData) -> np.ndarray:
    """(B,) speed of each box's track around it, in box heights per second."""
    boxes = tracks.boxes
    speed = np.zeros(len(boxes), np.float32)
    centres = boxes.centers
    heights = boxes.xyxy[:, 3] - boxes.xyxy[:, 1]
    for members in track_groups(tracks):
        if len(members) < 2:
            continue
        times = tracks.timeline.t[boxes.frame[members]]
        if len(np.unique(times)) != len(times):
            continue
        raw = np.gradient(centres[members].astype(float), times, axis=0)
        lo, hi = _centred_windows(times, SPEED_SMOOTHING)
        cumulative = np.vstack([np.zeros(2), np.cumsum(raw, axis=0)])
        velocity = (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]
        speed[members] = np.hypot(velocity[:, 0], velocity[:, 1]) / max(1.0, float(np.median(heights[members])))
    return speed


def match_faces(tracks: FrameData) -> np.ndarray:
    """(B,) row of ``tracks.faces`` that belongs to each person box, -1 where no face fits.

    A face belongs to a person when its centre lies in the top 60 % of the person's box and it is narrower than
    the box; each face goes to at most one person, best-fitting (smallest box) first.
    """
    boxes, faces = tracks.boxes, tracks.faces
    matched = np.full(len(boxes), -1, np.int64)
    if len(faces) == 0 or len(boxes) == 0:
        return matched
    face_centre = np.stack([(faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2, (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2], 1)
    face_width = faces.xyxy[:, 2] - faces.xyxy[:, 0]
    for frame in np.intersect1d(np.unique(faces.frame), np.unique(boxes.frame)):
        people = np.flatnonzero((boxes.frame == frame) & (boxes.cls == PERSON))
        found = np.flatnonzero(faces.frame == frame)
        if not len(people) or not len(found):
            continue
        box = boxes.xyxy[people]
        top = box[:, 1] + 0.6 * (box[:, 3] - box[:, 1])
        fits = ((face_centre[found, 0][None] >= box[:, 0, None]) & (face_centre[found, 0][None] <= box[:, 2, None])
                & (face_centre[found, 1][None] >= box[:, 1, None] - 0.1 * (box[:, 3, None] - box[:, 1, None]))
                & (face_centre[found, 1][None] <= top[:, None])
                & (face_width[found][None] <= (box[:, 2] - box[:, 0])[:, None] * 1.1))
        taken = np.zeros(len(found), bool)
        for person in np.argsort(boxes.areas[people]):
            options = np.flatnonzero(fits[person] & ~taken)
            if len(options):
                best = options[np.argmax(faces.score[found[options]])]
                taken[best] = True
                matched[people[person]] = found[best]
    return matched


def _face_groups(data: FrameData) -> list[np.ndarray]:
    """Face rows of each (face track, shot), in time order."""
    faces = data.faces
    if len(faces) == 0:
        return []
    shot = data.timeline.shot_ids()[faces.frame]
    key = faces.track.astype(np.int64) * 1_000_000 + shot
    order = np.lexsort((data.timeline.t[faces.frame], key))
    return [g for g in np.split(order, np.flatnonzero(np.diff(key[order])) + 1) if faces.track[g[0]] >= 0]


def _windowed_mean(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and count of the finite ``values`` in each window [lo, hi); the mean is NaN where a window holds none."""
    finite = np.isfinite(values)
    count = np.concatenate([[0], np.cumsum(finite)])
    total = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    n = count[hi] - count[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (total[hi] - total[lo]) / np.maximum(n, 1), np.nan), n


def speech_evidence(data: FrameData) -> np.ndarray:
    """(G,) per face row: mouth activity around it, plus the share of that activity that follows the voice.

    Activity is the mean mouth motion over ``MOUTH_WINDOW``. The voice term is the mean motion at voiced moments
    minus that at silent ones over ``SYNC_WINDOW`` (weighted ``SYNC_WEIGHT``): it lifts the face whose mouth moves
    when there is speech and lowers one that moves as much in the pauses. It needs both speech and pauses in the
    window, and counts for less the fewer samples the rarer of the two has; without audio, or under speech that
    never pauses, it is 0 and the activity alone decides (which keeps turn changes sharp).
    """
    faces = data.faces
    evidence = np.full(len(faces), np.nan, np.float32)
    voice_of_frame = data.timeline.voice
    for members in _face_groups(data):
        times = data.timeline.t[faces.frame[members]]
        motion = faces.mouth_motion[members].astype(float)
        motion[0] = np.nan  # the first sample of a track in a shot compares with nothing of its own (or a cut)
        if np.count_nonzero(np.isfinite(motion)) < 3:
            continue
        lo, hi = _centred_windows(times, MOUTH_WINDOW)
        activity, _ = _windowed_mean(motion, lo, hi)
        voice = voice_of_frame[faces.frame[members]]
        sync = np.zeros(len(members))
        if np.isfinite(voice).any():
            lo, hi = _centred_windows(times, SYNC_WINDOW)
            voiced = voice >= VOICED
            during, n_during = _windowed_mean(np.where(voiced, motion, np.nan), lo, hi)
            between, n_between = _windowed_mean(np.where(voiced, np.nan, motion), lo, hi)
            fewest = np.minimum(n_during, n_between)
            # only where the voice both speaks and pauses can motion be seen to follow it; a few samples say little
            sync = np.where(fewest > 0, (during - between) * fewest / (fewest + SYNC_PRIOR), 0.0)
        evidence[members] = activity + SYNC_WEIGHT * sync
    return evidence


def face_speaking(data: FrameData, evidence: np.ndarray) -> np.ndarray:
    """(G,) 0-1 per face row: is this the face speaking, against the best other face in the same frame?

    0.5 plus half the face's lead in evidence over the best other face, in units of ``LEAD_FULL`` (a face alone
    is measured against ``SOLO_LEVEL``), gated by the voice: where the audio says nobody speaks, nobody scores.
    """
    faces = data.faces
    score = np.zeros(len(faces), np.float32)
    known = np.flatnonzero(np.isfinite(evidence))
    if not len(known):
        return score
    order = known[np.lexsort((-evidence[known], faces.frame[known]))]
    frames = faces.frame[order]
    first = np.flatnonzero(np.r_[True, np.diff(frames) != 0])
    size = np.diff(np.r_[first, len(order)])
    group = np.repeat(np.arange(len(first)), size)
    best = evidence[order[first]][group]
    second = np.where(size > 1, evidence[order[np.minimum(first + 1, len(order) - 1)]], SOLO_LEVEL)[group]
    is_best = np.arange(len(order)) == first[group]
    other = np.where(is_best, second, best)
    lead = evidence[order] - other
    voice = data.timeline.voice[frames]
    gate = np.where(np.isnan(voice), 1.0, np.clip(voice / VOICE_GATE, 0.0, 1.0))
    score[order] = np.clip(0.5 + 0.5 * lead / LEAD_FULL, 0.0, 1.0) * gate
    return score


def add_features(tracks: FrameData) -> FrameData:
    """The tracks with each box's speed, its matched face (box and mouth) and how likely that face speaks."""
    face = match_faces(tracks)
    has_face = face >= 0
    rows = face[has_face]
    faces = tracks.faces
    face_xyxy = np.full((len(face), 4), np.nan, np.float32)
    face_xyxy[has_face] = faces.xyxy[rows]
    mouth_open = np.full(len(face), np.nan, np.float32)
    mouth_open[has_face] = faces.mouth_open[rows]
    speaking = np.zeros(len(face), np.float32)
    speaking[has_face] = face_speaking(tracks, speech_evidence(tracks))[rows]
    return tracks.replace(boxes=tracks.boxes.replace(speed=track_speed(tracks), face_xyxy=face_xyxy,
                                                     mouth_open=mouth_open, speaking=speaking))
