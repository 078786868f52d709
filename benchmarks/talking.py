"""Part B: does ``talking_person`` frame whoever is talking? Scored on a composite with a known speaker.

The composite (:mod:`benchmarks.composite`) puts two real talking heads side by side; one is frozen while the other
talks, and they alternate every 2-3 s. A 9:16 window of the 1920x1080 canvas is 606 px wide and the two people are
about 960 px apart, so a window can show one of them at most. Per output frame, the window *shows the talker* when
the talker's person centre is inside its horizontal span and the other person's is not.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import metrics
from benchmarks.common import describe, plan_formats
from benchmarks.composite import Composite, composite
from benchmarks.report import num, pct, table

RATIO = "9:16"
MODES = ("stable", "balanced", "responsive")
METHODS = ("talking_person", "adaptive")
CENTRE = "centre"


@dataclass
class TalkingScore:
    method: str
    mode: str
    talker_shown: float = float("nan")  # share of frames showing the talker (and not the other)
    other_shown: float = float("nan")  # share of frames showing the silent one (and not the talker)
    neither: float = float("nan")
    delay_mean: float = float("nan")  # seconds from a truth switch until the new talker is shown
    delay_max: float = float("nan")
    missed: int = 0  # switches after which the new talker was never shown before the next switch
    switches: int = 0
    delays: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class TalkingResult:
    composite: dict
    scores: list[TalkingScore] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _variants() -> list[tuple[str, str]]:
    return [(CENTRE, "-")] + [(method, mode) for method in METHODS for mode in MODES]


def _format(method: str, mode: str) -> dict:
    if method == CENTRE:
        return {"output": "mp4", "aspect_ratio": RATIO, "smart_crop": 0}
    return {"output": "mp4", "aspect_ratio": RATIO, "smart_crop": 1, "smart_crop_method": method,
            "smart_crop_mode": mode}


def score_path(method: str, mode: str, truth: Composite, t: np.ndarray, windows: np.ndarray) -> TalkingScore:
    talker = truth.talker(t)
    left, right = truth.subject_x
    shows_left = metrics.shows_only(windows, left, [right])
    shows_right = metrics.shows_only(windows, right, [left])
    correct = np.where(talker == 0, shows_left, shows_right)
    wrong = np.where(talker == 0, shows_right, shows_left)
    delays = metrics.switch_delays(t, correct, truth.switches, end=truth.duration)
    values = np.array([d.delay for d in delays], float)
    return TalkingScore(method, mode, talker_shown=float(correct.mean()), other_shown=float(wrong.mean()),
                        neither=float((~correct & ~wrong).mean()),
                        delay_mean=float(values.mean()) if len(values) else float("nan"),
                        delay_max=float(values.max()) if len(values) else float("nan"),
                        missed=sum(d.missed for d in delays), switches=len(delays),
                        delays=[round(float(v), 3) for v in values])


def run(*, refresh: bool = False, echo=print) -> TalkingResult:
    started = time.perf_counter()
    truth = composite(refresh=refresh)
    result = TalkingResult(composite={"path": Path(truth.path).name, "sources": truth.sources,
                                      "subject_x": [round(x, 1) for x in truth.subject_x],
                                      "segments": truth.segments, "duration": truth.duration})
    result.seconds["composite"] = time.perf_counter() - started
    echo(f"  composite {Path(truth.path).name} ready in {result.seconds['composite']:.1f} s")
    chosen = _variants()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-talking-") as tmp:
            plans = plan_formats(Path(truth.path), [_format(m, mode) for m, mode in chosen], Path(tmp),
                                 job_id="bench-talking")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        result.error = describe(exc)
        echo(f"  talking FAILED: {result.error}")
        return result
    result.seconds.update(plans.seconds)
    for index, (method, mode) in enumerate(chosen):
        if index in plans.errors:
            result.scores.append(TalkingScore(method, mode, error=plans.errors[index]))
            continue
        path = plans.paths[index]
        result.scores.append(score_path(method, mode, truth, path.t, path.windows))
    for s in result.scores:
        echo(f"  {s.method}/{s.mode}: " + (f"failed: {s.error}" if s.error else
                                          f"talker shown {pct(s.talker_shown)} %, delay mean {num(s.delay_mean)} s "
                                          f"max {num(s.delay_max)} s, missed {s.missed}/{s.switches}"))
    return result


def report(result: TalkingResult) -> str:
    c = result.composite
    segments = ", ".join(f"{'L' if side == 0 else 'R'} {end - start:.1f}s" for start, end, side in c["segments"])
    lines = [
        f"Composite `{c['path']}` ({c['duration']:.1f} s, 1920x1080, 25 fps, in `benchmarks/.cache/talking/`): left "
        f"`{c['sources'][0]}`, right `{c['sources'][1]}` (people at x = {c['subject_x'][0]:.0f} and "
        f"{c['subject_x'][1]:.0f} px); who talks: {segments}; audio: both sources mixed throughout. Window 9:16 "
        "(606x1080). A switch delay is the time from a truth switch until the window first shows the new talker; a "
        "switch never caught before the next one counts as *missed* and adds the rest of its segment as its delay "
        "(so mean/max are then lower bounds).",
        "",
    ]
    if result.error:
        return "\n".join(lines + [f"**Failed**: {result.error}"])
    rows = []
    for s in result.scores:
        name = "centre crop" if s.method == CENTRE else s.method
        if s.error:
            rows.append([name, s.mode, "failed: " + s.error, "", "", "", "", ""])
            continue
        rows.append([name, s.mode, pct(s.talker_shown), pct(s.other_shown), pct(s.neither), num(s.delay_mean),
                     num(s.delay_max), f"{s.missed}/{s.switches}"])
    lines.append(table(["method", "mode", "talker shown %", "silent one shown %", "neither %", "switch delay mean s",
                        "max s", "missed switches"], rows, "llrrrrrr"))
    seconds = result.seconds
    lines += ["", "Time: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()) + "."]
    return "\n".join(lines)
