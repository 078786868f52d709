"""Part B (real footage): does the window show whoever speaks, judged against human-labelled speaker turns?

Clips and labels live in ``../shared/speakers`` (``<name>.mp4`` beside ``<name>.json``, see its README). Only the
time inside labelled segments is scored. Per output frame, the window *shows the speaker* when it fully contains
the labelled speaker's face box (no tolerance). A *switch delay* runs from the start of a segment whose speaker
differs from the previous segment's to the first frame whose window contains the new speaker. The person a window
*shows* is the one labelled person whose median face box it contains; a change of that person is a *false
switch* when the newly shown person is neither the speaker of the segment in force nor of the next one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import metrics
from benchmarks.common import describe, plan_formats, shared_dir
from benchmarks.report import num, pct, table

RATIOS = ("9:16", "1:1")
MODES = ("stable", "balanced", "responsive")
METHODS = ("talking_person", "adaptive")
# Measured with the code before real-footage speaker detection (talking_person, balanced, 9:16).
BEFORE = {"S1": 0.879, "S2": 0.945}


@dataclass
class SpeakerScore:
    clip: str
    method: str
    mode: str
    ratio: str
    shown: float = float("nan")  # share of labelled frames whose window fully contains the speaker's face
    delay_mean: float = float("nan")
    delay_max: float = float("nan")
    missed: int = 0
    switches: int = 0
    false_per_min: float = float("nan")
    error: str | None = None


@dataclass
class Labels:
    clip: str
    duration: float
    speakers: dict[str, list[float]]
    segments: list[dict]

    @classmethod
    def load(cls, path: Path) -> Labels:
        data = json.loads(path.read_text())
        return cls(data["clip"], float(data["duration"]),
                   {k: v["face_box_median"] for k, v in data["speakers"].items()}, data["segments"])


def label_files(folder: Path | None = None) -> list[Path]:
    folder = folder or shared_dir() / "speakers"
    files = sorted(folder.glob("S*.json"))
    if not files:
        raise FileNotFoundError(f"no speaker labels (S*.json) in {folder}")
    return files


def _xywh(box: list[float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([x1, y1, x2 - x1, y2 - y1], float)


def contains(windows: np.ndarray, box_xyxy: list[float]) -> np.ndarray:
    """(N,) bool: does each window (x, y, w, h) fully contain the face box ``[x1, y1, x2, y2]``?"""
    windows = np.asarray(windows, float).reshape(-1, 4)
    box = np.asarray(box_xyxy, float)
    return ((windows[:, 0] <= box[0] + 1e-6) & (windows[:, 0] + windows[:, 2] >= box[2] - 1e-6)
            & (windows[:, 1] <= box[1] + 1e-6) & (windows[:, 1] + windows[:, 3] >= box[3] - 1e-6))


def shown_person(labels: Labels, windows: np.ndarray) -> np.ndarray:
    """Per frame, the one labelled person whose median face the window contains ('' when none or several)."""
    names = list(labels.speakers)
    inside = np.stack([contains(windows, labels.speakers[n]) for n in names], axis=1)
    out = np.full(len(inside), "", dtype=object)
    single = inside.sum(axis=1) == 1
    out[single] = np.array(names, dtype=object)[inside[single].argmax(axis=1)]
    return out


def score_path(labels: Labels, method: str, mode: str, ratio: str, t: np.ndarray,
               windows: np.ndarray) -> SpeakerScore:
    t = np.asarray(t, float)
    hits, total = 0, 0
    correct = np.zeros(len(t), bool)
    for seg in labels.segments:
        inside = (t >= seg["from"]) & (t <= seg["to"])
        ok = contains(windows, seg["face_box_median"]) & inside
        correct |= ok
        hits += int(ok.sum())
        total += int(inside.sum())
    delays = []
    for prev, seg in zip(labels.segments, labels.segments[1:], strict=False):
        if seg["speaker"] != prev["speaker"]:
            delays.extend(metrics.switch_delays(t, correct, [seg["from"]], end=seg["to"]))
    values = np.array([d.delay for d in delays], float)
    shown = shown_person(labels, windows)
    false = 0
    last = ""
    for i, who in enumerate(shown):
        if not who:
            continue
        if last and who != last:
            now = [s["speaker"] for s in labels.segments if s["from"] <= t[i] <= s["to"]]
            ahead = [s["speaker"] for s in labels.segments if s["from"] > t[i]][:1]
            previous = [s["speaker"] for s in labels.segments if s["to"] < t[i]][-1:]
            if who not in now + ahead or (not now and who not in previous + ahead):
                false += 1
        last = who
    minutes = max(metrics.duration(t), 1e-9) / 60.0
    return SpeakerScore(labels.clip, method, mode, ratio, shown=hits / max(total, 1),
                        delay_mean=float(values.mean()) if len(values) else float("nan"),
                        delay_max=float(values.max()) if len(values) else float("nan"),
                        missed=sum(d.missed for d in delays), switches=len(delays), false_per_min=false / minutes)


@dataclass
class SpeakersResult:
    scores: list[SpeakerScore] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def variants() -> list[tuple[str, str, str]]:
    return [(m, mode, r) for r in RATIOS for m in METHODS for mode in MODES]


def run(files: list[Path] | None = None, echo=print) -> SpeakersResult:
    folder = str((files or label_files())[0].parent)
    os.environ.setdefault("SMARTCROP_FILE_SOURCE_ROOTS", folder)  # the pipeline reads local files only from here
    result = SpeakersResult()
    chosen = variants()
    formats = [{"output": "mp4", "aspect_ratio": r, "smart_crop": 1, "smart_crop_method": m, "smart_crop_mode": mode}
               for m, mode, r in chosen]
    for path in files or label_files():
        labels = Labels.load(path)
        started = time.perf_counter()
        try:
            paths, errors = {}, {}
            half = len(formats) // 2  # one job per ratio keeps within the per-job format limit
            for base in (0, half):
                with tempfile.TemporaryDirectory(prefix="bench-speakers-") as tmp:
                    plans = plan_formats(path.with_name(labels.clip), formats[base:base + half], Path(tmp),
                                         job_id="bench-speakers")
                paths.update({base + k: v for k, v in plans.paths.items()})
                errors.update({base + k: v for k, v in plans.errors.items()})
        except Exception as exc:  # noqa: BLE001 - reported in the table
            result.scores += [SpeakerScore(labels.clip, m, mode, r, error=describe(exc)) for m, mode, r in chosen]
            continue
        result.seconds[labels.clip] = time.perf_counter() - started
        for index, (m, mode, r) in enumerate(chosen):
            if index in errors:
                result.scores.append(SpeakerScore(labels.clip, m, mode, r, error=errors[index]))
                continue
            p = paths[index]
            result.scores.append(score_path(labels, m, mode, r, p.t, p.windows))
        for s in result.scores[-len(chosen):]:
            echo(f"  {s.clip[:2]} {s.method}/{s.mode} {s.ratio}: "
                 + (f"failed: {s.error}" if s.error else f"speaker shown {pct(s.shown)} %, delay mean "
                    f"{num(s.delay_mean)} s, false switches/min {num(s.false_per_min, 1)}"))
    return result


def report(result: SpeakersResult) -> str:
    lines = ["Real conversations from `../shared/speakers` with human-labelled speaker turns; only labelled time is "
             "scored. *Shown %*: labelled frames whose window fully contains the speaker's face box. *Delay*: from a "
             "labelled turn start to the first window containing the new speaker. *False/min*: the shown person "
             "changes to someone who is neither the current nor the next labelled speaker. Before (talking_person, "
             "balanced, 9:16): " + ", ".join(f"{k} {pct(v)} %" for k, v in BEFORE.items()) + ".", ""]
    rows = []
    for s in result.scores:
        if s.error:
            rows.append([s.clip[:2], s.method, s.mode, s.ratio, "failed: " + s.error, "", "", "", ""])
            continue
        rows.append([s.clip[:2], s.method, s.mode, s.ratio, pct(s.shown), num(s.delay_mean), num(s.delay_max),
                     f"{s.missed}/{s.switches}", num(s.false_per_min, 1)])
    lines.append(table(["clip", "method", "mode", "ratio", "shown %", "delay mean s", "max s", "missed",
                        "false/min"], rows, "llllrrrrr"))
    lines += ["", "Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()) + "."]
    return "\n".join(lines)
