"""Part A: framing quality of every method x mode at 9:16 and 1:1 on every clip, beside a static centre crop.

Per clip: one job with one format per (ratio, method, mode) plus a ``smart_crop: 0`` format per ratio, one detector
and tracker run, one planner call; no encoding. Each path is scored against the reference boxes
(:mod:`benchmarks.reference`) with the rules in :mod:`benchmarks.metrics`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import metrics
from benchmarks.common import Clip, PlanPath, describe, plan_formats, safe_name
from benchmarks.reference import Reference, align, cuts_on, reference_for
from benchmarks.report import num, pct, table
from benchmarks.subjects import SubjectLabels, labels_for, subject_shown

log = logging.getLogger(__name__)

RATIOS = ("9:16", "1:1")
MODES = ("stable", "balanced", "responsive")
CENTRE = "centre"  # the static centre crop (smart_crop: 0)
CHASER = "chaser"  # a camera told the reference's largest person on every reference frame (see chaser_path)
DEFAULT_METHOD = "adaptive"


def methods() -> list[str]:
    """Every ``smart_crop_method`` the job format knows, so a new method is benchmarked without editing this file."""
    from smartcrop.core.job import Method

    return [m.value for m in Method]


@dataclass(frozen=True)
class Variant:
    ratio: str
    method: str  # a smart_crop_method, or CENTRE
    mode: str  # a smart_crop_mode; "-" for the centre crop

    def format(self) -> dict:
        if self.method == CENTRE:
            return {"output": "mp4", "aspect_ratio": self.ratio, "smart_crop": 0}
        return {"output": "mp4", "aspect_ratio": self.ratio, "smart_crop": 1, "smart_crop_method": self.method,
                "smart_crop_mode": self.mode}


def variants() -> list[Variant]:
    out = []
    for ratio in RATIOS:
        out.append(Variant(ratio, CENTRE, "-"))
        out.extend(Variant(ratio, method, mode) for method in methods() for mode in MODES)
    return out


@dataclass
class Score:
    ratio: str
    method: str
    mode: str
    frames_with_person: int = 0
    primary: float = float("nan")
    subject: float = float("nan")  # share of labelled frames that keep the subject a person chose (benchmarks.subjects)
    all_subjects: float = float("nan")
    velocity: float = float("nan")  # mean |Δ| of the centre, % of window width per frame
    acceleration: float = float("nan")  # mean |Δ²|
    moves_per_min: float = float("nan")
    cuts_per_min: float = float("nan")  # the planner's cuts to another subject (not at a shot cut), per minute
    error: str | None = None


@dataclass
class ClipResult:
    clip: str
    animated: bool
    duration: float = float("nan")
    frames: int = 0
    reference_frames: int = 0
    cuts: int = 0  # shot cuts the reference analysis found
    scores: list[Score] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def score(self, ratio: str, method: str, mode: str) -> Score | None:
        for s in self.scores:
            if (s.ratio, s.method, s.mode) == (ratio, method, mode) and s.error is None:
                return s
        return None


def score_path(variant: Variant, reference: Reference, path: PlanPath, labels: SubjectLabels | None = None) -> Score:
    """Coverage on the reference frames (and of the labelled subject, where the clip has labels); jitter and moves on
    every output frame, leaving out the steps at shot cuts (from the reference analysis) and at the planner's own
    cuts to another subject, which are counted apart."""
    t, windows = path.t, path.windows
    index = align(t, reference.t)  # reference frame -> path frame
    box_frame, boxes = reference.people()
    coverage = metrics.subject_coverage(index[box_frame], boxes, windows)
    shown = float("nan")
    if labels is not None:
        frames = reference.frames
        shown = subject_shown(labels, reference.t[frames], windows[index[frames]], reference.t[box_frame],
                              boxes).shown
    shot_cuts = cuts_on(t, reference)
    subject_cuts = path.cut & ~shot_cuts
    subject_cuts[:1] = False
    cuts = shot_cuts | subject_cuts
    shake = metrics.jitter(windows, cuts)
    seconds = metrics.duration(t)
    return Score(variant.ratio, variant.method, variant.mode, frames_with_person=coverage.frames_with_person,
                 primary=coverage.primary, subject=shown, all_subjects=coverage.all_subjects, velocity=shake.velocity,
                 acceleration=shake.acceleration, moves_per_min=metrics.moves_per_minute(t, windows, cuts),
                 cuts_per_min=subject_cuts.sum() * 60.0 / seconds if seconds > 0 else float("nan"))


def chaser_path(reference: Reference, frame_size: tuple[int, int], crop: tuple[int, int], mode: str) -> PlanPath:
    """The camera of ``mode`` told, on every reference frame, which person the primary metric will score there.

    No method can know more about that person than this, so its coverage is about the most a camera moving in that
    mode's style reaches on the metric (not exactly a bound: a cut could beat a pan); its camera moves show what
    chasing the per-frame largest person costs where people of similar size swap places.
    """
    from smartcrop.core.job import Mode
    from smartcrop.planner.focus import Focus
    from smartcrop.planner.methods import Geometry, keep_interval
    from smartcrop.planner.path import camera_path

    box_frame, boxes = reference.people()
    focus = Focus.empty(len(reference.t))
    if len(box_frame):
        largest = metrics.largest_per_frame(box_frame, boxes)
        frames, xyxy = box_frame[largest], boxes[largest].astype(float)
        head = xyxy[:, 1] + 0.2 * (xyxy[:, 3] - xyxy[:, 1])  # where the planner looks at a person without a face
        focus.point[frames] = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, head])
        focus.weight[frames] = 1.0
        focus.keep_lo[frames], focus.keep_hi[frames] = keep_interval(xyxy, Geometry(*frame_size, *crop), fill=True)
    windows = camera_path(reference.t, np.cumsum(reference.shot_start), reference.analysed, focus,
                          frame_size=frame_size, crop_size=crop, mode=Mode(mode))
    return PlanPath(reference.t, windows, np.zeros(len(reference.t), bool))


def chaser_scores(reference: Reference, media, labels: SubjectLabels | None = None) -> list[Score]:
    from smartcrop.core.job import AspectRatio, crop_size

    frame_size = (media.display_width, media.display_height)
    scores = []
    for ratio in RATIOS:
        crop = crop_size(*frame_size, AspectRatio(*map(int, ratio.split(":"))))
        for mode in MODES:
            variant = Variant(ratio, CHASER, mode)
            scores.append(score_path(variant, reference, chaser_path(reference, frame_size, crop, mode), labels))
    return scores


def evaluate_clip(clip: Clip, model: str, *, refresh: bool = False) -> ClipResult:
    from smartcrop.media.probe import probe

    result = ClipResult(clip.name, clip.animated)
    try:
        media = probe(clip.path)
        result.duration = media.duration
        started = time.perf_counter()
        reference = reference_for(clip.path, media, model, refresh=refresh)
        result.seconds["reference"] = time.perf_counter() - started
        result.frames, result.reference_frames = len(reference.t), int(reference.analysed.sum())
        result.cuts = int(reference.shot_start.sum())
        chosen = variants()
        labels = labels_for(clip.name)
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            plans = plan_formats(clip.path, [v.format() for v in chosen], Path(tmp),
                                 job_id=f"bench-{safe_name(clip.short)}")
        result.seconds.update(plans.seconds)
        for index, variant in enumerate(chosen):
            if index in plans.errors:
                result.scores.append(Score(variant.ratio, variant.method, variant.mode, error=plans.errors[index]))
                continue
            try:
                result.scores.append(score_path(variant, reference, plans.paths[index], labels))
            except Exception as exc:  # noqa: BLE001 - a bad path is a finding, not a crash
                result.scores.append(Score(variant.ratio, variant.method, variant.mode, error=describe(exc)))
        result.scores.extend(chaser_scores(reference, media, labels))
    except Exception as exc:  # noqa: BLE001 - one clip failing is reported, the others still run
        log.debug("clip %s failed", clip.name, exc_info=True)
        result.error = describe(exc)
    return result


def run(clips: list[Clip], model: str, *, refresh: bool = False, echo=print) -> list[ClipResult]:
    results = []
    for clip in clips:
        started = time.perf_counter()
        result = evaluate_clip(clip, model, refresh=refresh)
        results.append(result)
        failed = sum(s.error is not None for s in result.scores)
        status = f"FAILED ({result.error})" if result.error else f"{len(result.scores) - failed} paths scored" + (
            f", {failed} failed" if failed else "")
        echo(f"  quality {clip.name}: {status} in {time.perf_counter() - started:.1f} s")
    return results


# ---------------------------------------------------------------------------------------------------------------------
# tables

COLUMNS = ["primary 9:16", "primary 1:1", "subject 9:16", "subject 1:1", "all 9:16", "all 1:1", "|Δ| 9:16",
           "|Δ²| 9:16", "moves/min 9:16", "cuts/min 9:16", "|Δ| 1:1", "|Δ²| 1:1", "moves/min 1:1", "cuts/min 1:1"]


def _cells(by_ratio: dict[str, dict[str, float]]) -> list[str]:
    a, b = by_ratio.get("9:16", {}), by_ratio.get("1:1", {})
    nan = float("nan")
    cells = [pct(a.get("primary", nan)), pct(b.get("primary", nan)), pct(a.get("subject", nan)),
             pct(b.get("subject", nan)), pct(a.get("all_subjects", nan)),
             pct(b.get("all_subjects", nan))]
    for values in (a, b):
        cells += [num(values.get("velocity", nan), 3), num(values.get("acceleration", nan), 3),
                  num(values.get("moves_per_min", nan), 1), num(values.get("cuts_per_min", nan), 1)]
    return cells


FIELDS = ("primary", "subject", "all_subjects", "velocity", "acceleration", "moves_per_min", "cuts_per_min")


def _values(score: Score | None) -> dict[str, float]:
    return {name: getattr(score, name) for name in FIELDS} if score is not None else {}


def _mean(results: list[ClipResult], ratio: str, method: str, mode: str) -> tuple[dict[str, float], int]:
    """Means over clips (each clip weighs the same) of one variant's metrics; clips without a value are skipped."""
    scores = [r.score(ratio, method, mode) for r in results]
    scores = [s for s in scores if s is not None]
    out = {}
    for name in FIELDS:
        values = np.array([getattr(s, name) for s in scores], float)
        values = values[~np.isnan(values)]
        out[name] = float(values.mean()) if len(values) else float("nan")
    return out, len(scores)


def _real(results: list[ClipResult]) -> list[ClipResult]:
    return [r for r in results if not r.animated and r.error is None]


def per_clip_table(results: list[ClipResult]) -> str:
    rows = []
    for r in results:
        name = r.clip + (" †" if r.animated else "")
        if r.error:
            rows.append([name, "failed: " + r.error] + [""] * len(COLUMNS))
            continue
        label = f"{name} ({r.reference_frames} ref. frames)"
        shown = [(CENTRE, "-")] + [(DEFAULT_METHOD, m) for m in MODES] + [(CHASER, "balanced")]
        for i, (method, mode) in enumerate(shown):
            cells = _cells({ratio: _values(r.score(ratio, method, mode)) for ratio in RATIOS})
            if all(r.score(ratio, method, mode) is None for ratio in RATIOS):
                cells = ["failed (see below)"] + [""] * (len(COLUMNS) - 1)
            name = {CENTRE: "centre crop", CHASER: "(chaser, balanced)"}.get(method, mode)
            rows.append([label if i == 0 else "", name] + cells)
    return table(["clip", "crop"] + COLUMNS, rows, "ll" + "r" * len(COLUMNS))


def per_method_table(results: list[ClipResult]) -> str:
    real = _real(results)
    rows = []
    for method, mode in [(CENTRE, "-")] + [(m, mode) for m in methods() + [CHASER] for mode in MODES]:
        by_ratio = {}
        count = 0
        for ratio in RATIOS:
            by_ratio[ratio], n = _mean(real, ratio, method, mode)
            count = max(count, n)
        name = {CENTRE: "centre crop", CHASER: "(chaser: told the scored person)"}.get(method, method)
        rows.append([name, mode, count] + _cells(by_ratio))
    return table(["method", "mode", "clips"] + COLUMNS, rows, "llr" + "r" * len(COLUMNS))


MULTI_SHOT_CUTS = 2  # clips with at least this many cuts are reported apart (cutaways, multi-shot edits)


def paired(results: list[ClipResult]) -> list[ClipResult]:
    """Clips with real people where the centre crop and adaptive in every mode all have a 9:16 score, so the
    headline compares like with like."""
    wanted = [(CENTRE, "-")] + [(DEFAULT_METHOD, mode) for mode in MODES]
    return [r for r in _real(results) if all(r.score("9:16", m, mode) is not None for m, mode in wanted)]


def headline(results: list[ClipResult]) -> tuple[str, dict[str, float]]:
    real = paired(results)
    centre, n_centre = _mean(real, "9:16", CENTRE, "-")
    by_mode = {mode: _mean(real, "9:16", DEFAULT_METHOD, mode)[0] for mode in MODES}
    rows = [
        ["primary-subject coverage, %"] + [pct(by_mode[m]["primary"]) for m in MODES] + [pct(centre["primary"])],
        ["all-subject share, %"] + [pct(by_mode[m]["all_subjects"]) for m in MODES] + [pct(centre["all_subjects"])],
        ["mean |Δ| of the centre, % of width per frame"] + [num(by_mode[m]["velocity"], 3) for m in MODES] +
        [num(centre["velocity"], 3)],
        ["mean |Δ²| of the centre, % of width per frame"] + [num(by_mode[m]["acceleration"], 3) for m in MODES] +
        [num(centre["acceleration"], 3)],
        ["camera moves per minute"] + [num(by_mode[m]["moves_per_min"], 1) for m in MODES] +
        [num(centre["moves_per_min"], 1)],
        ["cuts to another subject per minute"] + [num(by_mode[m]["cuts_per_min"], 1) for m in MODES] +
        [num(centre["cuts_per_min"], 1)],
    ]
    chaser = {mode: _mean(real, "9:16", CHASER, mode)[0] for mode in MODES}
    rows[1:1] = [["… a camera told the scored person on every frame (chaser), %"]
                 + [pct(chaser[m]["primary"]) for m in MODES] + ["-"],
                 ["… and its camera moves per minute"] + [num(chaser[m]["moves_per_min"], 1) for m in MODES] + ["-"]]
    multi = [r for r in real if r.cuts >= MULTI_SHOT_CUTS]
    single = [r for r in real if r.cuts < MULTI_SHOT_CUTS]
    rows[1:1] = [[label] + [pct(_mean(group, "9:16", DEFAULT_METHOD, m)[0]["primary"]) for m in MODES]
                 + [pct(_mean(group, "9:16", CENTRE, "-")[0]["primary"])]
                 for label, group in ((f"… on the {len(multi)} clips with {MULTI_SHOT_CUTS}+ cuts, %", multi),
                                      (f"… on the {len(single)} clips with fewer cuts, %", single))]
    labelled = [r for r in real if labels_for(r.clip) is not None]
    labelled_multi = [r for r in multi if r in labelled]
    rows[5:5] = [
        [f"labelled subject shown (the person an editor chose, {len(labelled)} clips), %"]
        + [pct(by_mode[m]["subject"]) for m in MODES] + [pct(centre["subject"])],
        [f"… on the {len(labelled_multi)} labelled clips with {MULTI_SHOT_CUTS}+ cuts, %"]
        + [pct(_mean(labelled_multi, "9:16", DEFAULT_METHOD, m)[0]["subject"]) for m in MODES]
        + [pct(_mean(labelled_multi, "9:16", CENTRE, "-")[0]["subject"])],
        ["… the chaser (told the largest person, not the labelled one), %"]
        + [pct(chaser[m]["subject"]) for m in MODES] + ["-"],
    ]
    numbers = {"primary_9x16_default": by_mode["responsive"]["primary"], "primary_9x16_centre": centre["primary"],
               "subject_9x16": {m: by_mode[m]["subject"] for m in MODES}, "subject_9x16_centre": centre["subject"],
               "acceleration_balanced": by_mode["balanced"]["acceleration"],
               "moves_per_min_stable": by_mode["stable"]["moves_per_min"], "clips": n_centre,
               "primary_9x16_chaser": {m: chaser[m]["primary"] for m in MODES}}
    text = table(["9:16, adaptive, mean over clips"] + [f"{m}" for m in MODES] + ["centre crop"], rows)
    return text, numbers


def timing_table(results: list[ClipResult]) -> str:
    rows = []
    for r in results:
        s = r.seconds
        rows.append([r.clip, num(r.duration, 1), r.frames, num(s.get("reference", float("nan")), 1),
                     num(s.get("detector", float("nan")), 1), num(s.get("tracker", float("nan")), 2),
                     num(s.get("planner", float("nan")), 2)])
    return table(["clip", "duration s", "frames", "reference s (~0 when cached)", "detector s", "tracker s",
                  f"planner s ({len(variants())} formats)"], rows)


def failures(results: list[ClipResult]) -> list[str]:
    lines = []
    for r in results:
        if r.error:
            lines.append(f"- {r.clip}: {r.error}")
        errors: dict[str, list[str]] = {}
        for s in r.scores:
            if s.error:
                errors.setdefault(s.error, []).append(f"{s.method}/{s.mode}/{s.ratio}")
        for error, which in errors.items():
            shown = ", ".join(which[:6]) + (f" and {len(which) - 6} more" if len(which) > 6 else "")
            lines.append(f"- {r.clip}: {shown}: {error}")
    return lines


def report(results: list[ClipResult]) -> tuple[str, dict[str, float]]:
    head, numbers = headline(results)
    both = paired(results)
    real = _real(results)
    left_out = [r.clip for r in real if r not in both]
    parts = [
        f"**Headline** (9:16, default method `adaptive`; means over the {len(both)} clips with real people where "
        "adaptive and the centre crop both ran" + (f", leaving out {', '.join(left_out)}" if left_out else "") +
        "; primary = primary-subject coverage, all = all-subject share, |Δ|/|Δ²| in % of the window width per "
        "output frame, cuts = the planner's cuts to another subject within a shot):",
        "",
        head,
        "",
        f"**Per method** (means over the {len(real)} clips with real people; a row's `clips` says over how many of "
        "them it ran, so rows with fewer clips are not directly comparable):",
        "",
        per_method_table(results),
        "",
        "**Per clip** (`adaptive`, each mode, the static centre crop, and the chaser: the balanced camera told the "
        "scored person on every reference frame). † = animated, no real people: reported, left out of the means.",
        "",
        per_clip_table(results),
        "",
        "**Time per clip** (one detector + tracker run and one planner call serve every format):",
        "",
        timing_table(results),
    ]
    problems = failures(results)
    parts += ["", "**Failures**:", ""] + (problems or ["- none"])
    return "\n".join(parts), numbers
