"""The camera path: L1-optimal, per shot and per axis (Grundmann, Kwatra & Essa, CVPR 2011).

Why L1: minimising weighted L1 norms of the path's 1st, 2nd and 3rd differences makes most of those differences
exactly zero, so the optimum is piecewise: static holds (Δp = 0), constant-speed pans (Δ²p = 0) and eases
(Δ³p = 0) -- what a camera operator does. An L2 smoother (the old Gaussian) instead drifts all the time.

Per shot and axis, one linear program over the camera centre at the *sampled* frames (the analysed ones plus the
shot's first and last frame), solved with HiGHS; every other frame is linearly interpolated, which loses nothing
because the optimum is piecewise linear anyway. A path never spans a cut: each shot starts at its own optimum.

Units, so that one style suits every resolution and analysis rate: positions are in crop widths (crop heights for
y) measured from ``rest``; time in seconds. Data terms are integrated over time (each sample weighs the time it
stands for), and the smoothness terms are integrals too: Σ|Δp| (path length, widths), Σ|Δv| (velocity changes,
widths/s), Σ|Δa| (acceleration changes, widths/s²), with divided differences so uneven (VFR) spacing is honest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse

from smartcrop.core.job import Mode
from smartcrop.planner.focus import Focus

log = logging.getLogger(__name__)

MIN_STEP = 1e-3  # seconds; samples closer than this are treated as this far apart (keeps the LP well scaled)
REST_PULL = 0.05  # where there is no target, the pull to ``rest`` relative to the centring pull


@dataclass(frozen=True)
class CameraStyle:
    """How the camera moves. Lengths are fractions of the crop size along the axis; time in seconds.

    The data term costs ``weight x distance outside the dead zone`` per second; against it, λ1 (s) prices path
    length, λ2 (s²) velocity changes and λ3 (s³) acceleration changes. Roughly, a jump of the target is followed
    within ~2·sqrt(λ2) seconds, and a target must stay away longer than ~λ1 seconds to be followed at all.
    """

    dead_zone: float  # half-width d of the dead zone: the target may wander ±d without moving the camera
    keep_weight: float  # W_keep: per second and crop width of the subject's box outside the window
    smoothness: tuple[float, float, float]  # λ1, λ2, λ3
    max_speed: float  # v_max: crop widths per second (a hard limit)
    centring: float = 0.02  # ε: tiny pull to the exact target inside the dead zone, so a still subject is centred


CAMERA_STYLES: dict[Mode, CameraStyle] = {
    Mode.STABLE: CameraStyle(dead_zone=0.12, keep_weight=200.0, smoothness=(1.5, 1.0, 0.1), max_speed=1.0),
    Mode.BALANCED: CameraStyle(dead_zone=0.06, keep_weight=200.0, smoothness=(0.5, 0.2, 0.02), max_speed=2.0),
    Mode.RESPONSIVE: CameraStyle(dead_zone=0.02, keep_weight=200.0, smoothness=(0.2, 0.03, 0.002), max_speed=4.0),
}


def camera_path(t: np.ndarray, shot_ids: np.ndarray, sampled: np.ndarray, focus: Focus, *,
                frame_size: tuple[float, float], crop_size: tuple[float, float], mode: Mode) -> np.ndarray:
    """(F, 4) windows ``x, y, w, h`` in display pixels, one per frame.

    ``t``: (F,) seconds; ``shot_ids``: (F,) non-decreasing, one id per shot; ``sampled``: (F,) the frames whose focus
    values are meaningful. Each shot is solved at its sampled frames plus its first and last frame (those two carry
    no target unless sampled), then interpolated on time. Where ``focus.cut`` is set, the path breaks as at a shot
    cut: the camera cuts to the new subject instead of panning across. Windows stay inside the frame.
    """
    t = np.asarray(t, float)
    shot_ids = np.asarray(shot_ids)
    sampled = np.asarray(sampled, bool)
    style = CAMERA_STYLES[Mode(mode)]
    frames = len(t)
    size = np.asarray(frame_size, float)
    crop = np.asarray(crop_size, float)
    centres = np.empty((frames, 2))
    if frames == 0:
        return np.zeros((0, 4))
    breaks = np.r_[True, shot_ids[1:] != shot_ids[:-1]] | np.asarray(focus.cut, bool)
    starts = np.flatnonzero(breaks)
    ends = np.r_[starts[1:], frames]
    for start, end in zip(starts, ends):
        mask = sampled[start:end].copy()
        mask[[0, -1]] = True
        rows = start + np.flatnonzero(mask)
        rows = rows[np.lexsort((~sampled[rows], t[rows]))]  # by time; a sampled frame first where times repeat
        times, first = np.unique(t[rows], return_index=True)  # one sample per time (VFR may repeat a timestamp)
        rows = rows[first]
        meaningful = sampled[rows]
        weights = np.where(meaningful, np.nan_to_num(focus.weight[rows], nan=0.0), 0.0)
        for axis in range(2):
            keep_lo = np.where(meaningful, focus.keep_lo[rows, axis], np.nan)
            keep_hi = np.where(meaningful, focus.keep_hi[rows, axis], np.nan)
            path = solve_axis(times, focus.point[rows, axis], weights, keep_lo, keep_hi,
                              bound_lo=crop[axis] / 2, bound_hi=size[axis] - crop[axis] / 2, rest=size[axis] / 2,
                              window=crop[axis], style=style)
            centres[start:end, axis] = np.interp(t[start:end], times, path)
    corner = np.clip(centres - crop / 2, np.minimum(size - crop, 0), np.maximum(size - crop, 0))
    return np.column_stack([corner, np.broadcast_to(crop, (frames, 2))])


def solve_axis(times: np.ndarray, targets: np.ndarray, weights: np.ndarray, keep_lo: np.ndarray,
               keep_hi: np.ndarray, *, bound_lo: float, bound_hi: float, rest: float, window: float,
               style: CameraStyle) -> np.ndarray:
    """One shot, one axis: the camera centre (px) at each sample time (strictly increasing seconds).

    ``window`` is the crop size along this axis in px; ``bound_lo``/``bound_hi`` the centre positions that keep the
    window inside the frame. Targets with zero (or NaN) weight, and NaN keep bounds, are ignored. Without any
    target the camera holds ``rest``; without slack (``bound_lo >= bound_hi``) it is fixed and no LP is solved.
    """
    times = np.asarray(times, float)
    n = len(times)
    fixed = np.clip(rest, bound_lo, bound_hi) if bound_lo <= bound_hi else (bound_lo + bound_hi) / 2
    if n == 0 or bound_hi - bound_lo <= 1e-9 * max(window, 1.0) or window <= 0:
        return np.full(n, float(fixed))
    scale = float(window)
    target = (np.asarray(targets, float) - rest) / scale
    weight = np.nan_to_num(np.asarray(weights, float), nan=0.0).clip(min=0)
    weight[~np.isfinite(target)] = 0.0
    lo = (np.asarray(keep_lo, float) - rest) / scale
    hi = (np.asarray(keep_hi, float) - rest) / scale
    lo, hi = np.fmin(lo, hi), np.fmax(lo, hi)  # an inverted interval costs the same up to a constant: never infeasible
    if not (weight > 0).any() and not (np.isfinite(lo) | np.isfinite(hi)).any():
        return np.full(n, float(fixed))

    from scipy import sparse  # scipy.sparse/optimize take ~0.5 s to import: when a path is solved, not at start-up

    step = np.maximum(np.diff(times), MIN_STEP)
    # the time each sample stands for (trapezoid), so data terms are rate- and VFR-independent
    dwell = (np.r_[step, 0] + np.r_[0, step]) / 2 if n > 1 else np.ones(1)
    has = weight > 0
    eye = sparse.identity(n, format="csr")
    d1 = _diff(n)  # Δp
    d2 = _diff(n - 1) @ sparse.diags(1 / step) @ d1  # Δv
    d3 = _diff(n - 2) @ sparse.diags(2 / (step[:-1] + step[1:])) @ d2 if n > 3 else sparse.csr_matrix((0, n))  # Δa
    lam1, lam2, lam3 = style.smoothness
    speed = style.max_speed * step if np.isfinite(style.max_speed) else np.full(n - 1, np.inf)

    # Rows  L p = rhs + Σ columns: each column is a bounded, priced offset, so a convex piecewise-linear cost of
    # L p away from rhs is a chain of columns, filled cheapest first (the standard LP form of |.| and hinges).
    pull = style.centring * dwell * np.where(has, weight, REST_PULL)
    rows = [(eye, np.where(has, target, 0.0), [  # within ±d of the target only the centring pull; beyond, the hinge
        _both_ways(np.where(has, style.dead_zone, 0.0), pull), _both_ways(np.inf, pull + weight * dwell)])]
    keep = np.isfinite(lo) | np.isfinite(hi)
    if keep.any():  # anywhere in [lo, hi] is free; W_keep per crop width (and second) outside
        rows.append((eye[keep], np.zeros(keep.sum()), [
            _interval(lo[keep], hi[keep]), _both_ways(np.inf, style.keep_weight * dwell[keep])]))
    for op, lam, cap in ((d1, lam1, speed), (d2, lam2, np.inf), (d3, lam3, np.inf)):
        if op.shape[0]:  # λk |Δ^k p|; capping the Δp columns is the speed limit (hard, but holding is feasible)
            rows.append((op, np.zeros(op.shape[0]), [_both_ways(cap, lam)]))
    p = _solve(rows, n, ((bound_lo - rest) / scale, (bound_hi - rest) / scale))
    if p is None:  # cannot happen (holding still is always feasible), but never fail a job over the path
        log.warning("camera path LP failed; holding the rest position")
        return np.full(n, float(fixed))
    return np.clip(rest + scale * p, bound_lo, bound_hi)


def _diff(m: int) -> sparse.csr_matrix:
    """(m-1, m) first-difference operator (empty when m < 2)."""
    from scipy import sparse

    if m < 2:
        return sparse.csr_matrix((0, max(m, 0)))
    return sparse.diags([-np.ones(m - 1), np.ones(m - 1)], [0, 1], shape=(m - 1, m), format="csr")


def _both_ways(cap, cost) -> tuple:
    """Columns for a deviation in either direction, each up to ``cap``, at ``cost`` per unit."""
    return ((1.0, -1.0), 0.0, cap, cost)


def _interval(lower, upper) -> tuple:
    """A free column in [lower, upper] (NaN: unbounded): the row's value may lie anywhere in it at no cost."""
    return ((1.0,), np.nan_to_num(lower, nan=-np.inf), np.nan_to_num(upper, nan=np.inf), 0.0)


def _solve(rows, n: int, bounds: tuple[float, float]) -> np.ndarray | None:
    """Assemble the LP over p (n, within ``bounds``) and the rows' columns; solve it with HiGHS; p or None.

    ``rows``: (L, rhs, columns) blocks of equality rows  L p - Σ sign·column = rhs, columns from :func:`_both_ways`
    and :func:`_interval`.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    rhs, low, high, cost = [], [np.full(n, bounds[0])], [np.full(n, bounds[1])], [np.zeros(n)]
    entries = []  # (row, col, value) triplets of the sparse constraint matrix
    row0, col0 = 0, n
    for op, right, columns in rows:
        m = op.shape[0]
        op = op.tocoo()
        entries.append((op.row + row0, op.col, op.data))
        index = np.arange(m)
        for signs, lower, upper, price in columns:
            for sign in signs:
                entries.append((row0 + index, col0 + index, np.full(m, -sign)))
                low.append(np.broadcast_to(lower, (m,)))
                high.append(np.broadcast_to(upper, (m,)))
                cost.append(np.broadcast_to(price, (m,)))
                col0 += m
        rhs.append(right)
        row0 += m
    r, c, v = (np.concatenate(part) for part in zip(*entries))
    result = linprog(np.concatenate(cost), A_eq=sparse.csr_matrix((v, (r, c)), shape=(row0, col0)),
                     b_eq=np.concatenate(rhs), bounds=np.column_stack([np.concatenate(low), np.concatenate(high)]),
                     method="highs")
    return result.x[:n] if result.status == 0 else None
