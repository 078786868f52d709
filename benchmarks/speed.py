"""Part C: how long smartcrop takes, and what it costs beside a plain centre-crop transcode.

- Clips: every clip in ../shared/media whose displayed short side is 1080 px, every one at 720 px (by
  :func:`smartcrop.media.probe.probe`), the 79 s crowd clip, and clips built from real footage by
  :mod:`benchmarks.longclip` (10 s and 60 s always, 600 s with ``--long``) for the time-vs-length curve.
- Cold: wall time and peak memory (via :mod:`benchmarks.peakmem`) of ``smartcrop run INPUT -o OUT.mp4 --quiet``
  (defaults: 9:16, adaptive, responsive, x264 veryfast) against :mod:`benchmarks.baseline` (the same encoder, a
  static centre window), each a fresh process, alternating A, B, A, B ...
- Warm: :mod:`benchmarks.speed_worker`, one fresh process that loads the models once (timed) and then alternates
  ``smartcrop.pipeline.run_job`` with the in-process centre-crop transcode on every clip, as a service would; its
  ``.seconds`` give the stage times and each run's own peak RSS.
- Start-up: a bare interpreter, ``smartcrop --help`` and importing every stage, as processes.

Clips longer than ``ONCE_OVER`` seconds (the 600 s one) run once per mode, the rest ``--reps`` times.
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

from benchmarks.common import REPO, Clip, all_clips, python, select
from benchmarks.report import num, table

CROWD_CLIP = "C_pedestrians_vtest_opencvdoc.avi"
LENGTHS = (10.0, 60.0)  # built clips measured on every run; LONG_LENGTH with --long
LONG_LENGTH = 600.0
ONCE_OVER = 90.0  # seconds of video; longer clips run once per mode
GROUPS = ("1080p", "720p", "crowd", "length")
TIMEOUT = 1800  # seconds for one command, plus WARM_SLACK per second of video for the warm worker
WARM_SLACK = 6.0
TARGETS = {"cold_1080p": 2.0, "warm": 1.5, "every_clip": 3.0, "rss_1080p_mb": 1024.0, "flatness": 0.10}


@dataclass
class BenchClip:
    path: Path
    group: str  # one of GROUPS
    duration: float
    size: str
    built: str | None = None  # how a built clip was made

    @property
    def name(self) -> str:
        return self.path.name


def group_of(width: int, height: int, name: str) -> str | None:
    """The clip set a media clip belongs to: by the displayed short side, the crowd clip by name."""
    if name == CROWD_CLIP:
        return "crowd"
    return {1080: "1080p", 720: "720p"}.get(min(width, height))


def select_clips(clip_filter: str | None, *, long: bool = False, echo=print) -> list[BenchClip]:
    """Every 1080p and 720p clip, the crowd clip, then the built clips (``--clips`` filters all of them by name;
    a built clip is named ``long_<seconds>s_...``)."""
    from benchmarks.longclip import Recipe, long_clip
    from smartcrop.media.probe import probe

    chosen: list[BenchClip] = []
    for clip in select(all_clips(), clip_filter):
        media = probe(clip.path)
        group = group_of(media.display_width, media.display_height, clip.name)
        if group is not None:
            chosen.append(BenchClip(clip.path, group, media.duration, f"{media.display_width}x{media.display_height}"))
    chosen.sort(key=lambda c: (GROUPS.index(c.group), c.name))
    for seconds in LENGTHS + ((LONG_LENGTH,) if long else ()):
        if clip_filter and not select([Clip(Path(f"long_{seconds:g}s"))], clip_filter):
            continue
        path = long_clip(seconds, echo=echo)
        recipe = Recipe(seconds)
        media = probe(path)
        chosen.append(BenchClip(path, "length", media.duration, f"{media.display_width}x{media.display_height}",
                                built=recipe.describe()))
    return chosen


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
    group: str
    duration: float
    size: str
    smartcrop: list[Timed] = field(default_factory=list)
    baseline: list[Timed] = field(default_factory=list)


@dataclass
class SpeedResult:
    clips: list[BenchClip] = field(default_factory=list)
    ab: list[ABResult] = field(default_factory=list)  # cold, one fresh process per run
    startup: dict[str, list[float]] = field(default_factory=dict)
    warm: dict = field(default_factory=dict)  # benchmarks.speed_worker's report
    seconds: dict[str, float] = field(default_factory=dict)


def reps_for(clip: BenchClip, reps: int) -> int:
    return 1 if clip.duration > ONCE_OVER else reps


def ab_runs(clips: list[BenchClip], reps: int, echo=print) -> list[ABResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        for clip in clips:
            result = ABResult(clip.name, clip.group, clip.duration, clip.size)
            timeout = TIMEOUT + WARM_SLACK * clip.duration
            for rep in range(reps_for(clip, reps)):
                a = run_timed(smartcrop_command() + ["run", str(clip.path), "-o", f"{tmp}/smartcrop.mp4", "--quiet"],
                              timeout=timeout)
                b = run_timed([python(), "-m", "benchmarks.baseline", str(clip.path), f"{tmp}/baseline.mp4"],
                              timeout=timeout)
                result.smartcrop.append(a)
                result.baseline.append(b)
                echo(f"  cold {clip.name} rep {rep + 1}: smartcrop {a.seconds:.1f} s {a.max_rss_mb:.0f} MB"
                     f"{' FAILED ' + a.error if a.error else ''}, centre crop {b.seconds:.1f} s"
                     f"{' FAILED ' + b.error if b.error else ''}")
            results.append(result)
    return results


def startup_times(reps: int) -> dict[str, list[float]]:
    commands = {
        "bare interpreter (`python -c pass`)": [python(), "-c", "pass"],
        "`smartcrop --help`": smartcrop_command() + ["--help"],
        "import every stage (torch, ultralytics, ...)": [python(), "-c",
                                                         "from smartcrop.core.stage import stages; stages()"],
    }
    return {name: [run_timed(command).seconds for _ in range(reps)] for name, command in commands.items()}


def warm_runs(clips: list[BenchClip], reps: int, echo=print) -> dict:
    """One worker process for every clip, models loaded once: what a running service pays per job."""
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        out = Path(tmp) / "times.json"
        budget = TIMEOUT + WARM_SLACK * sum(c.duration * reps_for(c, reps) for c in clips)
        timed = run_timed([python(), "-m", "benchmarks.speed_worker", "--json", str(out), "--reps", str(reps),
                           "--once-over", str(ONCE_OVER), *(str(c.path) for c in clips)], timeout=budget)
        if timed.error or not out.exists():
            return {"error": timed.error or "no result", "max_rss_mb": timed.max_rss_mb}
        data = json.loads(out.read_text())
        data["max_rss_mb"] = timed.max_rss_mb
        data["process_seconds"] = timed.seconds
    for run_ in data.get("runs", []):
        a = _ok_seconds(run_.get("smartcrop", []))
        b = _ok_seconds(run_.get("baseline", []))
        echo(f"  warm {run_['clip']}: " + (run_.get("error") or f"run_job {_mean_sd(a)} s, centre crop "
                                                                 f"{_mean_sd(b)} s"))
    return data


def run(*, reps: int = 3, clip_filter: str | None = None, long: bool = False, echo=print) -> SpeedResult:
    result = SpeedResult()
    started = time.perf_counter()
    result.clips = select_clips(clip_filter, long=long, echo=echo)
    result.seconds["clips"] = time.perf_counter() - started
    echo("  clips: " + ", ".join(f"{c.name} ({c.group}, {c.duration:.0f} s)" for c in result.clips))
    started = time.perf_counter()
    result.startup = startup_times(reps)
    result.seconds["start-up"] = time.perf_counter() - started
    echo("  start-up: " + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in result.startup.items()))
    started = time.perf_counter()
    result.ab = ab_runs(result.clips, reps, echo)
    result.seconds["cold"] = time.perf_counter() - started
    started = time.perf_counter()
    result.warm = warm_runs(result.clips, reps, echo)
    result.seconds["warm"] = time.perf_counter() - started
    return result


def load(payload: dict) -> SpeedResult:
    """A :class:`SpeedResult` back from ``results/speed.json`` (``payload["result"]``), to re-render or compare."""
    timed = lambda runs: [Timed(**t) for t in runs]  # noqa: E731
    return SpeedResult(clips=[BenchClip(Path(c["path"]), c["group"], c["duration"], c["size"], c.get("built"))
                              for c in payload.get("clips", [])],
                       ab=[ABResult(r["clip"], r["group"], r["duration"], r["size"], timed(r["smartcrop"]),
                                    timed(r["baseline"])) for r in payload.get("ab", [])],
                       startup=payload.get("startup", {}), warm=payload.get("warm", {}),
                       seconds=payload.get("seconds", {}))


# ---------------------------------------------------------------------------------------------------------------------
# numbers


def _ok_seconds(runs: list) -> list[float]:
    """Seconds of the runs that succeeded (``Timed`` or the worker's dicts)."""
    out = []
    for r in runs:
        error, seconds = (r.error, r.seconds) if isinstance(r, Timed) else (r.get("error"), r.get("seconds"))
        if error is None and seconds is not None:
            out.append(seconds)
    return out


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.mean(a) / statistics.mean(b) if a and b else float("nan")


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def cold_ratios(result: SpeedResult) -> dict[str, float]:
    return {r.clip: _ratio(_ok_seconds(r.smartcrop), _ok_seconds(r.baseline)) for r in result.ab}


def warm_ratios(result: SpeedResult) -> dict[str, float]:
    return {r["clip"]: _ratio(_ok_seconds(r.get("smartcrop", [])), _ok_seconds(r.get("baseline", [])))
            for r in result.warm.get("runs", [])}


def per_second(result: SpeedResult) -> list[dict]:
    """Seconds of work per second of video for each built clip, shortest first, warm and cold."""
    cold = {r.clip: r for r in result.ab}
    rows = []
    for run_ in result.warm.get("runs", []):
        clip = next((c for c in result.clips if c.name == run_["clip"]), None)
        if clip is None or clip.group != "length":
            continue
        duration = clip.duration
        c = cold.get(clip.name)
        a, b = _ok_seconds(run_.get("smartcrop", [])), _ok_seconds(run_.get("baseline", []))
        rows.append({"clip": clip.name, "duration": duration, "warm": _mean(a) / duration,
                     "warm_baseline": _mean(b) / duration, "warm_ratio": _ratio(a, b),
                     "cold": _mean(_ok_seconds(c.smartcrop)) / duration if c else float("nan"),
                     "cold_baseline": _mean(_ok_seconds(c.baseline)) / duration if c else float("nan"),
                     "runs": len(_ok_seconds(run_.get("smartcrop", [])))})
    rows.sort(key=lambda r: r["duration"])
    return rows


def targets(result: SpeedResult) -> list[list[str]]:
    groups = {c.name: c.group for c in result.clips}
    cold, warm = cold_ratios(result), warm_ratios(result)
    hd = [name for name, group in groups.items() if group == "1080p"]

    def worst(ratios: dict[str, float], names) -> tuple[float, str]:
        values = [(ratios[n], n) for n in names if n in ratios and ratios[n] == ratios[n]]
        return max(values) if values else (float("nan"), "-")

    def verdict(value: float, limit: float) -> str:
        return "-" if value != value else ("yes" if value <= limit else "no")

    def listing(ratios: dict[str, float], names) -> str:
        return ", ".join(f"{ratios[n]:.2f}×" for n in names if n in ratios) or "-"

    rows = []
    value, _ = worst(cold, hd)
    rows.append([f"cold `smartcrop run` ≤ {TARGETS['cold_1080p']:.1f}× on 1080p", listing(cold, hd),
                 verdict(value, TARGETS["cold_1080p"])])
    value, _ = worst(warm, hd)
    every_warm, clip_w = worst(warm, groups)
    rows.append([f"warm ≤ {TARGETS['warm']:.1f}× (1080p; worst of all clips)",
                 f"{listing(warm, hd)}; worst {every_warm:.2f}× ({clip_w})", verdict(value, TARGETS["warm"])])
    every_cold, clip_c = worst(cold, groups)
    rows.append([f"≤ {TARGETS['every_clip']:.0f}× on every clip (cold; warm)",
                 f"worst cold {every_cold:.2f}× ({clip_c}); worst warm {every_warm:.2f}×",
                 verdict(max(every_cold, every_warm), TARGETS["every_clip"])])
    rss = [t.max_rss_mb for r in result.ab if r.group == "1080p" for t in r.smartcrop if t.error is None]
    rows.append([f"peak RSS < {TARGETS['rss_1080p_mb'] / 1024:.0f} GB for a 1080p run (cold process)",
                 f"{min(rss):.0f}–{max(rss):.0f} MB" if rss else "-",
                 "-" if not rss else ("yes" if max(rss) < TARGETS["rss_1080p_mb"] else "no")])
    curve = per_second(result)
    if len(curve) >= 2:
        first, last = curve[0], curve[-1]
        change = last["warm"] / first["warm"] - 1
        relative = last["warm_ratio"] / first["warm_ratio"] - 1
        rows.append([f"time per second of video flat within {TARGETS['flatness']:.0%} from "
                     f"{first['duration']:.0f} s to {last['duration']:.0f} s (warm; judged against the centre crop "
                     "timed alongside, which cancels the machine's changing load)",
                     f"{first['warm']:.3f} → {last['warm']:.3f} s/s ({change:+.1%}); {first['warm_ratio']:.2f}× → "
                     f"{last['warm_ratio']:.2f}× the centre crop ({relative:+.1%})",
                     verdict(abs(relative), TARGETS["flatness"])
                     + ("" if last["duration"] >= LONG_LENGTH - 1 else f" (to {last['duration']:.0f} s only)")])
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# tables


def ab_table(results: list[ABResult]) -> str:
    rows = []
    for r in results:
        a, b = _ok_seconds(r.smartcrop), _ok_seconds(r.baseline)
        failures = sum(t.error is not None for t in r.smartcrop + r.baseline)
        rows.append([r.group, r.clip, r.size, num(r.duration, 1), _mean_sd(a), _mean_sd(b), num(_ratio(a, b), 2),
                     num(max((t.max_rss_mb for t in r.smartcrop), default=float("nan")), 0),
                     num(max((t.max_rss_mb for t in r.baseline), default=float("nan")), 0),
                     f"{len(a)}/{len(r.smartcrop)}" + (f" ({failures} failed)" if failures else "")])
    return table(["set", "clip", "size", "duration s", "`smartcrop run` s", "centre-crop transcode s", "ratio",
                  "smartcrop peak RSS MB", "centre-crop peak RSS MB", "runs"], rows, "ll" + "r" * 8)


def startup_table(result: SpeedResult) -> str:
    rows = [[name, f"{statistics.median(values):.2f}", "process, median of " + str(len(values))]
            for name, values in result.startup.items()]
    for name, value in result.warm.get("load", {}).items():
        rows.append([name, f"{value:.2f}" if isinstance(value, (int, float)) else value, "in process, once"])
    return table(["step", "seconds", "how"], rows, "lrl")


def warm_table(result: SpeedResult) -> str:
    if "error" in result.warm:
        return f"warm run failed: {result.warm['error']}"
    groups = {c.name: c.group for c in result.clips}
    rows = []
    for run_ in result.warm.get("runs", []):
        a, b = _ok_seconds(run_.get("smartcrop", [])), _ok_seconds(run_.get("baseline", []))
        ok = [r for r in run_.get("smartcrop", []) if r.get("error") is None]

        def stage(name: str, ok: list[dict] = ok) -> str:
            return num(_mean([r["stages"].get(name, 0.0) for r in ok]), 2)

        duration = run_.get("duration") or float("nan")
        errors = [r["error"] for r in run_.get("smartcrop", []) + run_.get("baseline", []) if r.get("error")]
        if run_.get("error"):
            errors.append(run_["error"])
        in_turn = _ok_seconds(run_.get("in_turn", []))
        frames = run_.get("frames") or 0
        ahead = _mean([r.get("ahead_frames", 0) / frames for r in ok]) if frames and ok else float("nan")
        rows.append([groups.get(run_["clip"], ""), run_["clip"] + (f" (failed: {errors[0]})" if errors else ""),
                     run_.get("size", ""), num(duration, 1), _mean_sd(a), _mean_sd(b), num(_ratio(a, b), 2),
                     _mean_sd(in_turn) if in_turn else "–", num(_ratio(in_turn, b), 2) if in_turn else "–",
                     f"{ahead:.0%}" if ahead == ahead else "–",
                     stage("detector"), stage("tracker"), stage("planner"), stage("encoder"),
                     num(_mean(a) / duration, 3),
                     num(max((r["max_rss_mb"] for r in ok), default=float("nan")), 0),
                     num(max((r["max_rss_mb"] for r in run_.get("baseline", []) if "max_rss_mb" in r),
                             default=float("nan")), 0),
                     f"{len(a)}/{len(run_.get('smartcrop', []))}"])
    return table(["set", "clip", "size", "duration s", "`run_job` s", "centre-crop transcode s", "ratio",
                  "stages in turn s", "ratio in turn", "frames rendered ahead",
                  "detector s", "tracker s", "planner s", "encoder s", "s per s of video",
                  "process peak RSS MB during `run_job`", "during centre crop", "runs"], rows, "ll" + "r" * 16)


def length_table(result: SpeedResult) -> str:
    curve = per_second(result)
    if not curve:
        return "no built clips measured"
    first, first_ratio = curve[0]["warm"], curve[0]["warm_ratio"]
    rows = [[r["clip"], num(r["duration"], 0), num(r["warm"], 3), f"{r['warm'] / first - 1:+.1%}",
             num(r["warm_baseline"], 3), num(r["warm_ratio"], 2), f"{r['warm_ratio'] / first_ratio - 1:+.1%}",
             num(r["cold"], 3), num(r["cold_baseline"], 3), num(r["cold"] / r["cold_baseline"], 2), r["runs"]]
            for r in curve]
    return table(["clip", "length s", "warm `run_job` s per s", "vs shortest", "warm centre crop s per s",
                  "warm ratio", "ratio vs shortest", "cold `smartcrop run` s per s", "cold centre crop s per s",
                  "cold ratio", "warm runs"], rows)


def report(result: SpeedResult) -> str:
    warm = result.warm
    built = next((c.built for c in result.clips if c.built), None)
    lines = [
        "**Targets** (ratios = mean `smartcrop` time / mean centre-crop transcode time on the same clip in the same "
        "run):",
        "",
        table(["target", "measured", "met?"], targets(result), "lll"),
        "",
        "**Cold: `smartcrop run` vs a plain centre-crop transcode** (each a fresh process, alternating A/B; mean ± "
        "stdev; both encode with x264 `veryfast`, CRF 23, AAC 128 kb/s through `smartcrop.media.render.render`; "
        "peak RSS = the command's own `ru_maxrss`, via the fork-and-exec launcher `benchmarks/peakmem.py`; "
        f"clips over {ONCE_OVER:.0f} s run once):",
        "",
        ab_table(result.ab),
        "",
        "**Warm: models loaded once, as in a service** (one process, `benchmarks/speed_worker.py`: after the model "
        "loads and one discarded `run_job`, `smartcrop.pipeline.run_job` with the default job alternates with the "
        "same centre-crop transcode called in process and with the same job with its stages strictly in turn "
        "(`render_ahead` off: no encoding during the analysis, as the services run it); *frames rendered ahead* = "
        "share of the clip planned and encoded while the analysis ran; stage columns are `PipelineResult.seconds` "
        "(with rendering ahead the detector column includes the encode that ran beside it), means; peak RSS per "
        "run: the process high-water mark reset before it, so it includes the resident models; the whole process "
        "peaked at "
        f"{num(warm.get('max_rss_mb', float('nan')), 0)} MB):",
        "",
        warm_table(result),
        "",
        "**Time per second of video against clip length** (the built clips"
        + (f": {built}; cut at the given length, so a shorter clip is the start of a longer one" if built else "")
        + "):",
        "",
        length_table(result),
        "",
        "**Start-up and model load** (the warm times above exclude these):",
        "",
        startup_table(result),
        "",
        "Time: " + ", ".join(f"{name} {value:.0f} s" for name, value in result.seconds.items()) + ".",
    ]
    return "\n".join(lines)
