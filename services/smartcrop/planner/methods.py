"""The six ``smart_crop_method`` values: from tracks to a :class:`Focus` per analysed frame.

Each method answers two questions per frame: where should the viewer look (``point``), and which camera positions
keep the subject that matters fully in the window (``keep_lo``/``keep_hi``). The camera path then turns those into
smooth motion. Choices that could flip between similar candidates (largest person, current speaker, fastest mover)
are made with hysteresis: a challenger must beat the incumbent clearly and for a while.

- gravity: area x confidence weighted centre of everyone (other COCO objects count a tenth of a person);
- single_object: the person most likely the subject: median area over the last second x :func:`subject_factor`;
- max_weight: the window position that keeps the most (weighted, subject-factored) subjects fully inside;
- max_movement: the fastest subjects, by size-normalised speed (falls back to the largest person when all is still);
- talking_person: the current speaker (mouth movement gated by voice), else the largest person;
- adaptive: per frame, one dominant person (area x subject factor) -> single_object, a clear speaker among several
  -> talking_person, a group that fits -> gravity over the group, people spread wider than the window -> max_weight.
Every method: nobody in view -> hold the last target for a moment, then ease to the centre (or, where objects are
detected, look at them: objects never take the camera from a person missed for less than that moment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smartcrop.core.framedata import PERSON, Boxes, FrameData
from smartcrop.core.job import Method
from smartcrop.planner.focus import Focus

OBJECT_WEIGHT = 0.1  # other COCO objects are subjects too, but a person always matters more
MIN_SCORE = 0.3  # boxes below this confidence do not steer the camera
MEDIAN_AREA_SECONDS = 1.0  # single_object compares people by their median area over this window
SWITCH_MARGIN = 0.25  # a challenger must be this much bigger / faster to take over
SWITCH_DWELL = 0.4  # ... for this long (seconds)
SPEAKING_ON = 0.5  # speaking score that makes someone a speaker: a lead over every other face in view
SPEAKER_MARGIN = 0.12  # ... and by how much a new speaker must out-speak the current one
SPEAKER_DWELL = 1.0  # seconds another face must out-speak the speaker before the camera turns (an interjection
# does not turn it; offline, the turn still starts where the challenger did)
SILENCE_HOLD = 2.0  # keep the last speaker framed this long after they stop, before the fallback
MOVING = 0.25  # box heights per second: slower than this is standing still
DOMINANT_RATIO = 2.5  # adaptive: a person this many times larger than the next is "one dominant person"
HOLD_SECONDS = 1.0  # nobody in view: hold the last target this long, then ease to the centre
ADAPTIVE_SMOOTHING = 1.0  # seconds over which adaptive's per-frame choice is majority-voted
MOVE_COST = 0.5  # max_weight: a window width of camera travel costs half of a frame's best score
SWITCH_CUT = 0.5  # a target jump wider than this share of the window is a cut to another subject, not a pan
MIN_CUT_GAP = 1.5  # seconds between such cuts (and after a shot starts)
SETTLE = 1.0  # seconds the framing must stay on the new subject for a jump to become a cut
MISSING_GRACE = 0.3  # seconds an incumbent may be missing (a missed detection) before it is replaced
# what makes a box the subject of the shot, beyond its size (see subject_factor)
SHARP_FLOOR = 0.5  # the blurriest box keeps half its weight: focus is a hint, the detection is the evidence
FACE_BONUS = 0.5  # a matched face adds up to this share of weight, half of it for any face at all
FACE_FULL = 0.12  # ... and all of it for a face this share of the frame height or taller
EDGE_MARGIN = 0.01  # share of the frame width: a box this close to one side edge is cut by it
EDGE_CUT = 0.8  # weight kept by a box cut by one side edge
EDGE_SLIVER = 0.35  # ... and by one that is also a sliver (a shoulder, half a body walking out)
SLIVER_ASPECT = 3.0  # height over width beyond which an edge-cut box is a sliver
CENTRE_PRIOR = 0.2  # a box centred at a frame corner weighs this share less than one at the centre
GROUP_MEMBER_SHARE = 0.15  # a person box holding two boxes this share of its area or more is a group, not a person
GROUP_MEMBER_INSIDE = 0.9  # ... each with this share of its own area inside it


@dataclass(frozen=True)
class Geometry:
    frame_w: float
    frame_h: float
    crop_w: float
    crop_h: float


def focus_for(tracks: FrameData, method: Method, geometry: Geometry) -> Focus:
    subjects = _Subjects(tracks, geometry)
    pick = {Method.GRAVITY: gravity, Method.SINGLE_OBJECT: single_object, Method.MAX_WEIGHT: max_weight,
            Method.MAX_MOVEMENT: max_movement, Method.TALKING_PERSON: talking_person,
            Method.ADAPTIVE: adaptive}[method]
    return mark_switch_cuts(hold_then_centre(pick(subjects), subjects), subjects)


# ---------------------------------------------------------------------------------------------------------------------
# the subjects of one job, with the per-box quantities every method needs


class _Subjects:
    def __init__(self, tracks: FrameData, geometry: Geometry):
        boxes = tracks.boxes[tracks.boxes.score >= MIN_SCORE]
        boxes = boxes[~group_boxes(boxes)]
        self.boxes = boxes
        self.geometry = geometry
        self.frames = tracks.frame_count
        self.t = tracks.timeline.t
        self.analysed = tracks.timeline.analysed
        self.shot = tracks.timeline.shot_ids()
        self.person = boxes.cls == PERSON
        self.area = boxes.areas
        self.centre = boxes.centers
        self.weight = self.area * boxes.score * np.where(self.person, 1.0, OBJECT_WEIGHT)
        self.objects_steer = self._without_people_near()
        everyone = np.arange(len(boxes))
        # per track over the last second, so one blurred frame or a step across the edge margin does not flip choices
        self.subject = self.median_area(everyone, subject_factor(boxes, geometry))
        has_face = ~np.isnan(boxes.face_xyxy[:, 0])
        face_centre = np.stack([(boxes.face_xyxy[:, 0] + boxes.face_xyxy[:, 2]) / 2,
                                (boxes.face_xyxy[:, 1] + boxes.face_xyxy[:, 3]) / 2], axis=1)
        heads = np.stack([self.centre[:, 0], boxes.xyxy[:, 1] + 0.2 * (boxes.xyxy[:, 3] - boxes.xyxy[:, 1])], axis=1)
        # people are looked at in the face; without a face, at the head end of the box
        self.look = np.where(has_face[:, None], face_centre, np.where(self.person[:, None], heads, self.centre))

    def _without_people_near(self) -> np.ndarray:
        """(F,) bool: nobody was in view in the last HOLD_SECONDS of the shot, so objects may steer.

        A person the detector misses for a few frames (turned away, blurred, behind a passing car) is still the
        subject and is held (:func:`hold_then_centre`); a parked car or bicycle that happens to be detected
        meanwhile must not take the camera from them.
        """
        seen = np.unique(self.boxes.frame[self.person])
        if not len(seen):
            return np.ones(self.frames, bool)
        frames = np.arange(self.frames)
        last = seen[np.maximum(np.searchsorted(seen, frames, side="right") - 1, 0)]  # latest frame with a person
        near = (last <= frames) & (self.shot[last] == self.shot) & (self.t - self.t[last] <= HOLD_SECONDS)
        return ~near

    def rows(self, mask: np.ndarray | None = None) -> np.ndarray:
        return np.flatnonzero(self.person if mask is None else mask)

    def empty(self) -> Focus:
        return Focus.empty(self.frames)

    def set_single(self, focus: Focus, rows: np.ndarray) -> Focus:
        """Focus on one box per frame (rows index boxes; frames taken from the boxes)."""
        frames = self.boxes.frame[rows]
        focus.point[frames] = self.look[rows]
        focus.weight[frames] = 1.0
        focus.subject[frames] = self.boxes.track_id[rows]
        lo, hi = keep_interval(self.boxes.xyxy[rows], self.geometry, fill=True)
        focus.keep_lo[frames], focus.keep_hi[frames] = lo, hi
        return focus

    def set_group(self, focus: Focus, rows: np.ndarray, weights: np.ndarray) -> Focus:
        """Focus on the weighted centre of several boxes per frame; keep their union in view if it fits."""
        if len(rows) == 0:
            return focus
        frames = self.boxes.frame[rows]
        sums = np.zeros((self.frames, 2))
        totals = np.zeros(self.frames)
        np.add.at(sums, frames, self.look[rows] * weights[:, None])
        np.add.at(totals, frames, weights)
        present = totals > 0
        focus.point[present] = sums[present] / totals[present, None]
        focus.weight[present] = 1.0
        focus.subject[present] = -1
        union = np.full((self.frames, 4), np.nan)
        union[:, :2], union[:, 2:] = np.inf, -np.inf
        xyxy = self.boxes.xyxy[rows]
        np.minimum.at(union[:, 0], frames, xyxy[:, 0])
        np.minimum.at(union[:, 1], frames, xyxy[:, 1])
        np.maximum.at(union[:, 2], frames, xyxy[:, 2])
        np.maximum.at(union[:, 3], frames, xyxy[:, 3])
        lo, hi = keep_interval(union[present], self.geometry)
        focus.keep_lo[present], focus.keep_hi[present] = lo, hi
        return focus

    def median_area(self, rows: np.ndarray, values: np.ndarray | None = None, *, centred: bool = False) -> np.ndarray:
        """Each box's track area (or ``values``, one per row) as the median over the preceding MEDIAN_AREA_SECONDS
        of its shot, or over that span centred on the frame (a planner that sees the whole shot need not lag a
        person walking at the camera)."""
        values = self.area[rows] if values is None else values
        before, after = (MEDIAN_AREA_SECONDS / 2,) * 2 if centred else (MEDIAN_AREA_SECONDS, 0.0)
        values = np.asarray(values, float)
        if len(rows) == 0:
            return values.copy()
        frames = self.boxes.frame[rows]
        key = self.boxes.track_id[rows].astype(np.int64) * 100_000 + self.shot[frames]
        times = self.t[frames].astype(float)
        # one sorted time axis with every (track, shot) far from the next, so one search finds each box's window
        group = np.unique(key, return_inverse=True)[1]
        stride = times.max() - times.min() + 2 * MEDIAN_AREA_SECONDS + 1.0
        axis = group * stride + times
        order = np.lexsort((times, group))
        ordered = axis[order]
        starts = np.searchsorted(ordered, ordered - before - 1e-9, side="left")
        ends = np.searchsorted(ordered, ordered + after + 1e-9, side="right")
        span = np.arange(int((ends - starts).max()))
        index = starts[:, None] + span[None, :]
        window = np.where(index < ends[:, None], values[order][np.minimum(index, len(order) - 1)], np.nan)
        out = np.empty(len(values))
        out[order] = np.nanmedian(window, axis=1)
        return out


def group_boxes(boxes: Boxes) -> np.ndarray:
    """(B,) bool: person boxes drawn around two or more people (or objects) that have boxes of their own.

    Some detector files add one box spanning a couple or a group besides their own boxes. Framed as one person, it
    steers the window to the middle of the group and keeps neither member whole; without it, the members are
    framed as the group they are. A person holding a child or a dog contains one box, and the far people behind a
    near one are small beside it, so neither is taken for a group.
    """
    out = np.zeros(len(boxes), bool)
    order = np.argsort(boxes.frame, kind="stable")
    by_frame = boxes.frame[order]
    counts = np.bincount(boxes.frame, minlength=int(boxes.frame.max(initial=-1)) + 1)
    area = boxes.areas
    crowded = np.unique(boxes.frame[(boxes.cls == PERSON) & (counts[boxes.frame] >= 3)])
    for start, end in zip(np.searchsorted(by_frame, crowded, "left"), np.searchsorted(by_frame, crowded, "right")):
        rows = order[start:end]
        xyxy = boxes.xyxy[rows].astype(float)
        # inside[i, j]: the share of box j's area inside box i
        lo = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
        hi = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
        overlap = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
        inside = overlap / np.maximum(area[rows][None, :], 1e-9)
        member = (inside >= GROUP_MEMBER_INSIDE) & (area[rows][None, :] >= GROUP_MEMBER_SHARE * area[rows][:, None])
        np.fill_diagonal(member, False)
        out[rows] = (member.sum(axis=1) >= 2) & (boxes.cls[rows] == PERSON)
    return out


def subject_factor(boxes: Boxes, geometry: Geometry) -> np.ndarray:
    """(B,) multiplier of each box's weight for how much it looks like the subject of the shot, not just a large box.

    An editor picks the person the camera is about: in focus (the lens was set on them), showing a face (and the
    larger the face, the closer the shot), whole rather than cut by a side of the frame (a shoulder or half a body at
    the edge is a foreground passer-by), and toward the middle (a mild prior: subjects are framed there). The terms
    multiply; a box that shows none of the signs keeps a share of its weight, so size still decides among equals.
    """
    x1, y1, x2, y2 = boxes.xyxy.T.astype(float)
    width, height = np.maximum(x2 - x1, 1e-6), y2 - y1
    focus = SHARP_FLOOR + (1 - SHARP_FLOOR) * np.sqrt(np.clip(boxes.sharpness.astype(float), 0.0, 1.0))
    face_height = (boxes.face_xyxy[:, 3] - boxes.face_xyxy[:, 1]).astype(float)
    has_face = ~np.isnan(face_height)
    face_size = np.clip(np.nan_to_num(face_height) / (FACE_FULL * geometry.frame_h), 0.0, 1.0)
    face = 1 + FACE_BONUS * np.where(has_face, 0.5 + 0.5 * face_size, 0.0)
    margin = EDGE_MARGIN * geometry.frame_w
    # touching both sides is a close-up filling the frame, not a cut
    cut = (x1 <= margin) != (x2 >= geometry.frame_w - margin)
    edge = np.where(cut, np.where(height > SLIVER_ASPECT * width, EDGE_SLIVER, EDGE_CUT), 1.0)
    half = np.array([geometry.frame_w, geometry.frame_h]) / 2
    offset = (np.stack([(x1 + x2) / 2, (y1 + y2) / 2], axis=1) - half) / half
    centre = 1 - CENTRE_PRIOR * np.clip((offset ** 2).sum(axis=1), 0.0, 1.0)
    return focus * face * edge * centre


def keep_interval(xyxy: np.ndarray, geometry: Geometry, *, fill: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Camera-centre positions (per axis) at which the box lies fully inside the window.

    Where the box is larger than the window: NaN (no constraint), or with ``fill`` the positions at which the window
    lies within the box. One person wider than the window (arms out, a cyclist side-on, a close-up) should fill it,
    not leave it half on the background beside them; a group's union is not one subject (the window could fill the
    gap between two people), so groups keep NaN.
    """
    half = np.array([geometry.crop_w, geometry.crop_h]) / 2
    lo = xyxy[:, 2:] - half
    hi = xyxy[:, :2] + half
    larger = lo > hi + 1e-6
    if fill:
        return np.where(larger, hi, lo), np.where(larger, lo, hi)
    return np.where(larger, np.nan, lo), np.where(larger, np.nan, hi)


def sticky_choice(subjects: _Subjects, rows: np.ndarray, strength: np.ndarray, *, margin: float, dwell: float,
                  relative: bool = True, minimum: float = -np.inf, hold: float = 0.0) -> np.ndarray:
    """One box per analysed frame (index into ``rows``, -1 for none), following one track with hysteresis.

    The incumbent track keeps the frame unless a challenger is stronger by ``margin`` (relative or absolute) for
    ``dwell`` seconds. Boxes weaker than ``minimum`` are not candidates. An incumbent that falls below ``minimum``
    is replaced by any qualifying challenger after ``dwell``, and kept for ``hold`` seconds when nobody qualifies.
    An incumbent missing from a frame is waited for briefly (a missed detection), then replaced. Resets at cuts.
    """
    boxes = subjects.boxes
    frames = boxes.frame[rows]
    track_of = boxes.track_id[rows]
    order = np.lexsort((-strength, frames))
    chosen = np.full(subjects.frames, -1)
    groups = np.split(order, np.flatnonzero(np.diff(frames[order])) + 1) if len(order) else []
    current, shot_now, challenger, challenger_since, last_strong, last_present = None, None, None, 0.0, 0.0, 0.0
    challenged: list[np.ndarray] = []  # frames seen since the challenger started winning
    for members in groups:
        frame = frames[members[0]]
        t = subjects.t[frame]
        if subjects.shot[frame] != shot_now:
            current, shot_now, challenger = None, subjects.shot[frame], None
        best = members[0]
        best_ok = strength[best] >= minimum
        mine = members[track_of[members] == current] if current is not None else members[:0]
        if current is None:
            if best_ok:
                current, last_strong, last_present = track_of[best], t, t
        elif not len(mine):
            if t - last_present > MISSING_GRACE and best_ok:
                current, challenger, last_strong, last_present = track_of[best], None, t, t
        else:
            last_present = t
            incumbent = strength[mine[0]]
            if incumbent >= minimum:
                last_strong = t
            stronger = (strength[best] > incumbent * (1 + margin)) if relative else (
                strength[best] > incumbent + margin)
            if track_of[best] != current and best_ok and (stronger or incumbent < minimum):
                if challenger != track_of[best]:
                    challenger, challenger_since, challenged = track_of[best], t, []
                if t - challenger_since >= dwell:
                    current, challenger, last_strong = track_of[best], None, t
                    for earlier in challenged:  # offline, the switch can start when the challenger did
                        picked = earlier[track_of[earlier] == current]
                        if len(picked):
                            chosen[frames[earlier[0]]] = picked[0]
                else:
                    challenged.append(members)
            else:
                challenger = None
                if incumbent < minimum and t - last_strong > hold:
                    current = None  # nobody qualifies any more: let the caller fall back
        if current is not None:
            picked = members[track_of[members] == current]
            if len(picked):
                chosen[frame] = picked[0]
    return chosen


# ---------------------------------------------------------------------------------------------------------------------
# the methods


def gravity(subjects: _Subjects) -> Focus:
    focus = subjects.empty()
    rows = np.arange(len(subjects.weight))
    # frames with people use people only (objects would pull the frame off them); objects steer only once nobody
    # has been in view for HOLD_SECONDS
    use = subjects.person | subjects.objects_steer[subjects.boxes.frame]
    return subjects.set_group(focus, rows[use], subjects.weight[use])


def largest_person(subjects: _Subjects) -> np.ndarray:
    """Chosen box per frame (-1 none): the main person by recent median of area x subject factor, with hysteresis."""
    rows = subjects.rows()
    strength = subjects.median_area(rows) * subjects.subject[rows]
    chosen = sticky_choice(subjects, rows, strength, margin=SWITCH_MARGIN, dwell=SWITCH_DWELL)
    return np.where(chosen >= 0, rows[np.maximum(chosen, 0)], -1)


def single_object(subjects: _Subjects) -> Focus:
    chosen = largest_person(subjects)
    focus = subjects.set_single(subjects.empty(), chosen[chosen >= 0])
    return _objects_when_no_people(focus, subjects)


def max_weight(subjects: _Subjects) -> Focus:
    """The window (along the axis that has room) holding the most weight of whole subjects, chosen per shot as one
    Viterbi path over candidate windows: each frame's score, minus MOVE_COST per window width moved, so a crowd
    does not send the camera chasing every small change in who fits."""
    geometry = subjects.geometry
    axis = 0 if geometry.frame_w - geometry.crop_w >= geometry.frame_h - geometry.crop_h else 1
    size, extent = (geometry.crop_w, geometry.frame_w) if axis == 0 else (geometry.crop_h, geometry.frame_h)
    boxes = subjects.boxes
    focus = subjects.empty()
    rows = np.flatnonzero(subjects.person | subjects.objects_steer[boxes.frame])
    if len(rows) == 0:
        return focus
    frames = boxes.frame[rows]
    # nearer (larger) people matter more: a crowd of distant figures should not outvote the person in front. Sizes
    # are each track's median over a second around the frame, so a partial box for a frame or two (an arm hidden, a
    # blur) does not hand the window to someone else and back
    area = subjects.median_area(rows, centred=True)
    largest = np.zeros(subjects.frames)
    np.maximum.at(largest, frames, area)
    relative = np.clip(area / np.maximum(1.0, largest[frames]), 0.05, 1.0)
    weight = boxes.score[rows] * np.where(subjects.person[rows], 1.0, OBJECT_WEIGHT) * relative
    # who is the subject decides which window wins; within it, the look point stays the plain weighted centre, so
    # frame-to-frame noise in focus does not shake the camera
    merit = weight * subjects.subject[rows]
    lo_edge, hi_edge = boxes.xyxy[rows, axis], boxes.xyxy[rows, axis + 2]
    centre = (lo_edge + hi_edge) / 2
    # a subject wider than the window counts as inside when the window sits within it
    lo_edge, hi_edge = np.maximum(lo_edge, centre - size / 2), np.minimum(hi_edge, centre + size / 2)

    per_frame = []  # (frame, members, candidate starts, inside matrix, normalised scores)
    for frame in np.unique(frames):
        members = np.flatnonzero(frames == frame)
        starts = np.unique(np.clip(np.concatenate([lo_edge[members], hi_edge[members] - size]), 0, extent - size))
        inside = ((lo_edge[members][None, :] >= starts[:, None] - 0.5)
                  & (hi_edge[members][None, :] <= starts[:, None] + size + 0.5))
        scores = inside @ merit[members]
        per_frame.append((frame, members, starts, inside, scores / max(scores.max(), 1e-9)))

    chosen_rows, chosen_weights = [], []
    shots = np.array([subjects.shot[item[0]] for item in per_frame])
    for shot in np.unique(shots):
        items = [item for item, s in zip(per_frame, shots) if s == shot]
        cost = -items[0][4]
        back = []
        for previous, item in zip(items[:-1], items[1:]):
            move = MOVE_COST * np.abs(item[2][:, None] - previous[2][None, :]) / size
            total = cost[None, :] + move
            back.append(np.argmin(total, axis=1))
            cost = total.min(axis=1) - item[4]
        pick = int(np.argmin(cost))
        picks = [pick]
        for pointers in reversed(back):
            pick = int(pointers[pick])
            picks.append(pick)
        for item, pick in zip(items, reversed(picks)):
            picked = item[1][item[3][pick]]
            chosen_rows.append(rows[picked])
            chosen_weights.append(weight[picked])
    return subjects.set_group(focus, np.concatenate(chosen_rows), np.concatenate(chosen_weights))


def max_movement(subjects: _Subjects) -> Focus:
    rows = np.flatnonzero(subjects.person | (subjects.boxes.cls != PERSON))
    speed = subjects.boxes.speed[rows].astype(float)
    chosen = sticky_choice(subjects, rows, speed, margin=SWITCH_MARGIN, dwell=SWITCH_DWELL, minimum=MOVING,
                           hold=HOLD_SECONDS)
    movers = rows[chosen[chosen >= 0]]
    focus = subjects.set_single(subjects.empty(), movers)
    still = focus.weight == 0
    fallback = largest_person(subjects)
    fallback = fallback[(fallback >= 0) & still[np.arange(subjects.frames)]]
    return subjects.set_single(focus, fallback)


def speaker(subjects: _Subjects) -> np.ndarray:
    """Chosen box per frame (-1 none): the current speaker, held through short pauses."""
    rows = subjects.rows()
    chosen = sticky_choice(subjects, rows, subjects.boxes.speaking[rows].astype(float), margin=SPEAKER_MARGIN,
                           dwell=SPEAKER_DWELL, relative=False, minimum=SPEAKING_ON, hold=SILENCE_HOLD)
    return np.where(chosen >= 0, rows[np.maximum(chosen, 0)], -1)


def talking_person(subjects: _Subjects) -> Focus:
    chosen = speaker(subjects)
    focus = subjects.set_single(subjects.empty(), chosen[chosen >= 0])
    fallback = largest_person(subjects)
    fallback = fallback[(fallback >= 0) & (focus.weight == 0)]
    return _objects_when_no_people(subjects.set_single(focus, fallback), subjects)


SINGLE, SPEAKER, GROUP, SPREAD, OBJECTS, NOBODY = range(6)


def adaptive_labels(subjects: _Subjects) -> np.ndarray:
    """(F,) which rule adaptive applies on each analysed frame (-1 elsewhere), majority-voted over about 1 s."""
    boxes = subjects.boxes
    frames = subjects.frames
    people = subjects.person
    count = np.bincount(boxes.frame[people], minlength=frames)
    objects = np.bincount(boxes.frame[~people], minlength=frames)
    # the strongest and second-strongest person per frame, by area x subject factor
    presence = subjects.area * subjects.subject
    order = np.lexsort((-presence, boxes.frame))
    order = order[people[order]]
    first = np.zeros(frames)
    second = np.zeros(frames)
    if len(order):
        frame_of = boxes.frame[order]
        starts = np.r_[0, np.flatnonzero(np.diff(frame_of)) + 1]
        first[frame_of[starts]] = presence[order[starts]]
        has_second = np.r_[np.diff(starts) > 1, len(order) - starts[-1] > 1]
        second[frame_of[starts[has_second]]] = presence[order[starts[has_second] + 1]]
    union_lo = np.full(frames, np.inf)
    union_hi = np.full(frames, -np.inf)
    geometry = subjects.geometry
    axis = 0 if geometry.frame_w - geometry.crop_w >= geometry.frame_h - geometry.crop_h else 1
    size = geometry.crop_w if axis == 0 else geometry.crop_h
    np.minimum.at(union_lo, boxes.frame[people], boxes.xyxy[people, axis])
    np.maximum.at(union_hi, boxes.frame[people], boxes.xyxy[people, axis + 2])
    speaking = np.zeros(frames)
    np.maximum.at(speaking, boxes.frame[people], boxes.speaking[people])

    labels = np.full(frames, NOBODY)
    labels[(objects > 0) & subjects.objects_steer] = OBJECTS  # elsewhere a missed person is held (NOBODY)
    labels[count >= 1] = SPREAD
    labels[(count >= 2) & (union_hi - union_lo <= size)] = GROUP
    labels[(count >= 2) & (speaking >= SPEAKING_ON)] = SPEAKER
    labels[(count == 1) | ((count >= 2) & (first >= DOMINANT_RATIO * second))] = SINGLE
    labels[~subjects.analysed] = -1
    return _majority(labels, subjects)


def _majority(labels: np.ndarray, subjects: _Subjects) -> np.ndarray:
    """Mode filter of the labels over ADAPTIVE_SMOOTHING seconds of analysed frames, within each shot."""
    out = labels.copy()
    analysed = np.flatnonzero(labels >= 0)
    if len(analysed) < 3:
        return out
    from scipy.ndimage import uniform_filter1d  # here: scipy's import is not paid before the analysis starts

    rate = len(analysed) / max(1e-6, subjects.t[analysed[-1]] - subjects.t[analysed[0]] + 1e-6)
    width = max(1, int(round(ADAPTIVE_SMOOTHING * rate)) | 1)
    for shot in np.unique(subjects.shot[analysed]):
        members = analysed[subjects.shot[analysed] == shot]
        values = labels[members]
        counts = np.stack([uniform_filter1d((values == k).astype(float), width, mode="nearest") for k in range(6)])
        # ties keep the frame's own label
        counts[values, np.arange(len(values))] += 0.5
        out[members] = np.argmax(counts, axis=0)
    return out


def adaptive(subjects: _Subjects) -> Focus:
    labels = adaptive_labels(subjects)
    parts = {SINGLE: single_object, SPEAKER: talking_person, GROUP: gravity, SPREAD: max_weight, OBJECTS: gravity}
    focus = subjects.empty()
    for label, method in parts.items():
        frames = labels == label
        if not frames.any():
            continue
        part = method(subjects)
        focus.point[frames] = part.point[frames]
        focus.weight[frames] = part.weight[frames]
        focus.keep_lo[frames] = part.keep_lo[frames]
        focus.keep_hi[frames] = part.keep_hi[frames]
        focus.subject[frames] = part.subject[frames]
    return focus


def _objects_when_no_people(focus: Focus, subjects: _Subjects) -> Focus:
    """Frames without people (nor one just before) look at the objects there, weakly."""
    boxes = subjects.boxes
    empty = (focus.weight == 0)[boxes.frame] & ~subjects.person & subjects.objects_steer[boxes.frame]
    if empty.any():
        part = subjects.set_group(subjects.empty(), np.flatnonzero(empty), subjects.weight[empty])
        fill = (focus.weight == 0) & (part.weight > 0)
        focus.point[fill], focus.weight[fill] = part.point[fill], 0.5
    return focus


def mark_switch_cuts(focus: Focus, subjects: _Subjects) -> Focus:
    """Cut instead of panning when the framing moves to subjects more than SWITCH_CUT windows away, for good.

    A pan across the room between two speakers shows nobody for its duration; an editor cuts. A jump counts only
    if the new target then stays put for SETTLE seconds (no cut-and-back flicker), and cuts are at least
    MIN_CUT_GAP apart and from the shot's start.
    """
    geometry = subjects.geometry
    window = np.array([geometry.crop_w, geometry.crop_h])
    slack = np.array([geometry.frame_w > geometry.crop_w, geometry.frame_h > geometry.crop_h], float)
    real = np.flatnonzero(subjects.analysed & (focus.weight >= 1.0))
    if len(real) < 2:
        return focus
    t = subjects.t[real]
    position = (focus.point[real] / window * slack).max(axis=1) if slack.sum() == 1 else None
    if position is None:  # no slack (or both axes): nothing to cut between
        return focus
    shot = subjects.shot[real]
    first_time = {s: subjects.t[np.flatnonzero(subjects.shot == s)[0]] for s in np.unique(shot)}
    last_cut = -np.inf
    for i in range(1, len(real)):
        if shot[i] != shot[i - 1] or abs(position[i] - position[i - 1]) <= SWITCH_CUT:
            continue
        if t[i] - max(last_cut, first_time[shot[i]]) < MIN_CUT_GAP:
            continue
        settle = (t >= t[i]) & (t <= t[i] + SETTLE) & (shot == shot[i])
        if np.all(np.abs(position[settle] - position[i]) <= SWITCH_CUT / 2):
            focus.cut[real[i]] = True
            last_cut = t[i]
    return focus


def hold_then_centre(focus: Focus, subjects: _Subjects) -> Focus:
    """Analysed frames with no target: hold the last one briefly, then ease toward the frame centre.

    Before the first target of a shot, wait where that target will appear, so the camera is already there.
    """
    geometry = subjects.geometry
    centre = np.array([geometry.frame_w / 2, geometry.frame_h / 2])
    analysed = np.flatnonzero(subjects.analysed)
    for shot in np.unique(subjects.shot[analysed]):
        members = analysed[subjects.shot[analysed] == shot]
        has = focus.weight[members] > 0
        if not has.any():
            focus.point[members], focus.weight[members] = centre, 0.1
            continue
        known, missing = members[has], members[~has]
        seen = np.searchsorted(known, missing)  # targets before each frame without one
        last = known[np.maximum(seen - 1, 0)]
        held = (seen > 0) & (subjects.t[missing] - subjects.t[last] <= HOLD_SECONDS)
        lapsed = (seen > 0) & ~held
        waiting = seen == 0
        focus.point[missing[held]], focus.weight[missing[held]] = focus.point[last[held]], 0.5
        focus.point[missing[lapsed]], focus.weight[missing[lapsed]] = centre, 0.1
        focus.point[missing[waiting]], focus.weight[missing[waiting]] = focus.point[known[0]], 0.3
    return focus

