"""ByteTrack (Zhang et al. 2022) on numpy and scipy, reporting the input row of every tracked box.

The tracker follows ultralytics' BYTETracker decision for decision, so framing stays what it was when tracking ran
through ultralytics, without importing it (and torch with it):

- a constant-velocity Kalman filter on (centre x, centre y, aspect, height);
- a first association of confident detections with tracked and lost tracks (IoU fused with the score), a second of
  the faint ones with the tracks still unmatched (plain IoU), then of what is left with unconfirmed tracks;
- a new track is confirmed on its second sighting (on the tracker's first frame at once), a lost one is kept for
  ``buffer`` frames, and a tracked and a lost track that overlap almost fully are one: the younger goes.

Instead of the smoothed Kalman box, the output names each tracked box by its row in the frame's detections.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

_POSITION_NOISE = 1.0 / 20  # standard deviations relative to the box height
_VELOCITY_NOISE = 1.0 / 160
_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)  # one frame of constant velocity
_DIAGONAL = np.arange(8)
_EPS = 1e-7  # keeps IoU finite for empty boxes
_SECOND_MATCH = 0.5  # the most IoU distance for faint detections
_UNCONFIRMED_MATCH = 0.7  # the most (fused) distance from an unconfirmed track to its second sighting
_DUPLICATE = 0.15  # a tracked and a lost track closer than this IoU distance are one
_REMOVED_MEMORY = 1000  # how many removed tracks stay barred from the lost pool


class State(IntEnum):
    TRACKED = 1
    LOST = 2
    REMOVED = 3


@dataclass(frozen=True)
class ByteTrackParams:
    """Score thresholds, the lost-track buffer in frames, and the first association's distance limit."""

    high: float = 0.25  # detections from here take part in the first association
    low: float = 0.1  # detections above this (and below ``high``) in the second
    new: float = 0.3  # an unmatched detection from here starts a track
    buffer: int = 30
    match: float = 0.8
    fuse_score: bool = True  # first and unconfirmed associations weigh IoU by the detection's score


@dataclass(eq=False)
class Track:
    """One tracklet: its Kalman state, the frames it started and was last seen in, and its latest row."""

    track_id: int
    mean: np.ndarray  # (8,) x, y, aspect, height and their velocities
    covariance: np.ndarray  # (8, 8)
    row: int
    start: int
    last: int
    state: State = State.TRACKED
    confirmed: bool = False


@dataclass(frozen=True)
class Tracked:
    """The tracks updated in a frame: their ids and the row of the detection each was updated with."""

    ids: np.ndarray
    rows: np.ndarray


@dataclass(frozen=True)
class _Detections:
    """One confidence band of a frame: rows into the input, boxes as float32 like the input, scores."""

    rows: np.ndarray
    xyxy: np.ndarray
    xyah: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index: np.ndarray) -> _Detections:
        return _Detections(self.rows[index], self.xyxy[index], self.xyah[index], self.score[index])


def _xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    width = xyah[:, 2] * xyah[:, 3]
    left, top = xyah[:, 0] - width / 2, xyah[:, 1] - xyah[:, 3] / 2
    return np.stack([left, top, left + width, top + xyah[:, 3]], axis=1)


def _detections(xyxy: np.ndarray, score: np.ndarray, rows: np.ndarray) -> _Detections:
    """Boxes in the tracker's forms, rounded where ultralytics rounds them (float32 centre and size, float32 corner)."""
    centre = ((xyxy[:, :2] + xyxy[:, 2:]) / 2).astype(np.float64)
    size = (xyxy[:, 2:] - xyxy[:, :2]).astype(np.float64)
    corner = (centre - size / 2).astype(np.float32)
    size = size.astype(np.float32)
    xyah = np.concatenate([corner + size / 2, (size[:, 0] / size[:, 1])[:, None], size[:, 1:]], axis=1)
    return _Detections(rows, np.concatenate([corner, corner + size], axis=1), xyah, score)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) corner boxes, in float32."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    overlap = ((np.minimum(a[:, None, 2], b[:, 2]) - np.maximum(a[:, None, 0], b[:, 0])).clip(0)
               * (np.minimum(a[:, None, 3], b[:, 3]) - np.maximum(a[:, None, 1], b[:, 1])).clip(0))
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return overlap / (area_b + area_a[:, None] - overlap + _EPS)


def assign(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-cost matching where no pair may cost ``limit`` or more: (pairs, unmatched rows, unmatched columns).

    Leaving a row and a column unmatched costs ``limit`` together, so the optimum is that of the cost clipped at
    ``limit``, with the clipped pairs dropped (lapjv's ``cost_limit``, which ByteTrack uses, solves the same problem).
    Between matchings of exactly equal cost (a box inside two boxes of one size) the pick may differ from lapjv's.
    """
    if cost.size == 0:
        return np.zeros((0, 2), int), np.arange(cost.shape[0]), np.arange(cost.shape[1])
    from scipy.optimize import linear_sum_assignment  # scipy.optimize costs ~0.5 s to import: not at start-up

    cost = cost.astype(np.float64)
    rows, columns = linear_sum_assignment(np.minimum(cost, limit))
    keep = cost[rows, columns] < limit
    pairs = np.stack([rows[keep], columns[keep]], axis=1)
    return (pairs, np.setdiff1d(np.arange(cost.shape[0]), pairs[:, 0]),
            np.setdiff1d(np.arange(cost.shape[1]), pairs[:, 1]))


def _initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kalman states for new tracks: the measured box, no velocity, uncertainty scaled by the height."""
    xyah = xyah.astype(np.float64)
    height, ones = xyah[:, 3], np.ones(len(xyah))
    std = np.stack([2 * _POSITION_NOISE * height, 2 * _POSITION_NOISE * height, 1e-2 * ones,
                    2 * _POSITION_NOISE * height, 10 * _VELOCITY_NOISE * height, 10 * _VELOCITY_NOISE * height,
                    1e-5 * ones, 10 * _VELOCITY_NOISE * height], axis=1)
    covariance = np.zeros((len(xyah), 8, 8))
    covariance[:, _DIAGONAL, _DIAGONAL] = np.square(std)
    return np.concatenate([xyah, np.zeros_like(xyah)], axis=1), covariance


def _predict(tracks: list[Track]) -> None:
    """One frame ahead for ``tracks``; a track that is not being tracked stops growing or shrinking."""
    if not tracks:
        return
    mean = np.array([track.mean for track in tracks])
    covariance = np.array([track.covariance for track in tracks])
    mean[np.array([track.state != State.TRACKED for track in tracks]), 7] = 0
    height, ones = mean[:, 3], np.ones(len(tracks))
    std = np.stack([_POSITION_NOISE * height, _POSITION_NOISE * height, 1e-2 * ones, _POSITION_NOISE * height,
                    _VELOCITY_NOISE * height, _VELOCITY_NOISE * height, 1e-5 * ones, _VELOCITY_NOISE * height],
                   axis=1)
    noise = np.zeros((len(tracks), 8, 8))
    noise[:, _DIAGONAL, _DIAGONAL] = np.square(std)
    mean = np.dot(mean, _MOTION.T)
    covariance = np.dot(np.dot(_MOTION, covariance).transpose((1, 0, 2)), _MOTION.T) + noise
    for track, track_mean, track_covariance in zip(tracks, mean, covariance):
        track.mean, track.covariance = track_mean, track_covariance


def _correct(tracks: list[Track], xyah: np.ndarray) -> None:
    """The Kalman correction of each track with its measured box."""
    if not tracks:
        return
    mean = np.array([track.mean for track in tracks])
    covariance = np.array([track.covariance for track in tracks])
    height, ones = mean[:, 3], np.ones(len(tracks))
    std = np.stack([_POSITION_NOISE * height, _POSITION_NOISE * height, 1e-1 * ones, _POSITION_NOISE * height],
                   axis=1)
    projected = covariance[:, :4, :4].copy()
    projected[:, _DIAGONAL[:4], _DIAGONAL[:4]] += np.square(std)
    gain = np.linalg.solve(projected, covariance[:, :, :4].transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = xyah.astype(np.float64) - mean[:, :4]
    mean = mean + np.einsum("ni,nji->nj", innovation, gain)
    covariance = covariance - gain @ (projected @ gain.transpose(0, 2, 1))
    for track, track_mean, track_covariance in zip(tracks, mean, covariance):
        track.mean, track.covariance = track_mean, track_covariance


def _boxes(tracks: list[Track]) -> np.ndarray:
    return _xyah_to_xyxy(np.array([track.mean[:4] for track in tracks]).reshape(-1, 4))


def _without(tracks: list[Track], ids) -> list[Track]:
    ids = set(ids)
    return [track for track in tracks if track.track_id not in ids]


def _joined(first: list[Track], second: list[Track]) -> list[Track]:
    return first + _without(second, (track.track_id for track in first))


@dataclass
class ByteTrack:
    """Multi-object tracking by detection; ``update`` once per frame, in order."""

    params: ByteTrackParams = field(default_factory=ByteTrackParams)
    tracked: list[Track] = field(default_factory=list)  # confirmed and unconfirmed tracks seen last frame
    lost: list[Track] = field(default_factory=list)
    frame: int = 0
    _removed: deque = field(default_factory=lambda: deque(maxlen=_REMOVED_MEMORY), init=False)  # ids, repeats too
    _next_id: int = field(default=1, init=False)

    def update(self, xyxy: np.ndarray, score: np.ndarray) -> Tracked:
        """Track one frame's (N, 4) float32 corner boxes with their scores; the confirmed tracks it updated."""
        self.frame += 1
        p = self.params
        xyxy, score = np.asarray(xyxy, np.float32).reshape(-1, 4), np.asarray(score, np.float32).reshape(-1)
        detections = _detections(xyxy, score, np.arange(len(score)))
        size = xyxy[:, 2:] - xyxy[:, :2]
        valid = (size[:, 0] > 0) & (size[:, 1] > 0)
        high = detections.take(np.flatnonzero(valid & (score >= p.high)))
        low = detections.take(np.flatnonzero(valid & (score > p.low) & (score < p.high)))

        unconfirmed = [track for track in self.tracked if not track.confirmed]
        pool = _joined([track for track in self.tracked if track.confirmed], self.lost)
        _predict(pool)
        activated: list[Track] = []
        refound: list[Track] = []
        lost: list[Track] = []
        removed: list[Track] = []

        # 1. confident detections against every tracked and lost track
        pairs, free_tracks, free_high = assign(self._distance(pool, high, p.fuse_score), p.match)
        for i, _ in pairs:
            (activated if pool[i].state == State.TRACKED else refound).append(pool[i])
        self._update([pool[i] for i in pairs[:, 0]], high.take(pairs[:, 1]))

        # 2. faint detections against the tracked ones still unmatched: a partly hidden person keeps the track
        remaining = [pool[i] for i in free_tracks if pool[i].state == State.TRACKED]
        if remaining and len(low):
            pairs, free_remaining, _ = assign(self._distance(remaining, low, False), _SECOND_MATCH)
            activated.extend(remaining[i] for i in pairs[:, 0])
            self._update([remaining[i] for i in pairs[:, 0]], low.take(pairs[:, 1]))
        else:
            free_remaining = np.arange(len(remaining))
        for i in free_remaining:
            remaining[i].state = State.LOST
            lost.append(remaining[i])

        # 3. the confident detections left against last frame's new tracks: a second sighting confirms one
        high = high.take(free_high)
        pairs, free_unconfirmed, free_high = assign(self._distance(unconfirmed, high, p.fuse_score),
                                                    _UNCONFIRMED_MATCH)
        activated.extend(unconfirmed[i] for i in pairs[:, 0])
        self._update([unconfirmed[i] for i in pairs[:, 0]], high.take(pairs[:, 1]))
        for i in free_unconfirmed:
            unconfirmed[i].state = State.REMOVED
            removed.append(unconfirmed[i])

        # 4. new tracks from the rest
        new = high.take(free_high[high.score[free_high] >= p.new])
        mean, covariance = _initiate(new.xyah)
        for row, track_mean, track_covariance in zip(new.rows, mean, covariance):
            activated.append(Track(self._next_id, track_mean, track_covariance, int(row), self.frame, self.frame,
                                   confirmed=self.frame == 1))
            self._next_id += 1

        # 5. lost tracks past the buffer
        for track in self.lost:
            if self.frame - track.last > p.buffer:
                track.state = State.REMOVED
                removed.append(track)
        self._merge(activated, refound, lost, removed)
        out = [track for track in self.tracked if track.confirmed]
        return Tracked(np.array([track.track_id for track in out], int), np.array([track.row for track in out], int))

    def _distance(self, tracks: list[Track], detections: _Detections, fuse: bool) -> np.ndarray:
        """1 - IoU of the tracks' predicted boxes with the detections, or 1 - IoU * score when ``fuse``."""
        cost = 1 - iou(_boxes(tracks), detections.xyxy)
        if fuse and cost.size:
            cost = 1 - (1 - cost) * detections.score
        return cost

    def _update(self, tracks: list[Track], detections: _Detections) -> None:
        _correct(tracks, detections.xyah)
        for track, row in zip(tracks, detections.rows):
            track.row, track.last, track.state, track.confirmed = int(row), self.frame, State.TRACKED, True

    def _merge(self, activated: list[Track], refound: list[Track], lost: list[Track], removed: list[Track]) -> None:
        """The frame's moves between the pools; a removed track leaves the lost pool only on the next frame."""
        tracked = [track for track in self.tracked if track.state == State.TRACKED]
        tracked = _joined(_joined(tracked, activated), refound)
        lost_pool = _without(_without(self.lost, (t.track_id for t in tracked)) + lost, self._removed)
        self.tracked, self.lost = _deduplicated(tracked, lost_pool)
        self._removed.extend(track.track_id for track in removed)


def _deduplicated(tracked: list[Track], lost: list[Track]) -> tuple[list[Track], list[Track]]:
    """Of a tracked and a lost track on the same spot, keep the one tracked longer; on a tie, the lost one."""
    close = np.argwhere(1 - iou(_boxes(tracked), _boxes(lost)) < _DUPLICATE)
    drop_tracked, drop_lost = set(), set()
    for p, q in close:
        if tracked[p].last - tracked[p].start > lost[q].last - lost[q].start:
            drop_lost.add(q)
        else:
            drop_tracked.add(p)
    return ([track for i, track in enumerate(tracked) if i not in drop_tracked],
            [track for i, track in enumerate(lost) if i not in drop_lost])
