"""Warm timings in one fresh process, as a service runs: the models load once (timed), one ``run_job`` warms the
process up, then each clip alternates ``smartcrop.pipeline.run_job`` (default job) with the in-process centre-crop
transcode of :mod:`benchmarks.baseline`, ``--reps`` times.

Run by :mod:`benchmarks.speed` as a child process, so model loading is timed cold and nothing the parent loaded
helps:

    .venv/bin/python -m benchmarks.speed_worker --json OUT.json [--reps 3] [--once-over 90] CLIP...

Each run's peak RSS is its own: the process's high-water mark is reset before it (``/proc/self/clear_refs``) and
read after it (``VmHWM``); where the kernel refuses the reset, the value is the process's peak so far.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _timed(call) -> tuple[object, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measured(call) -> tuple[object, dict]:
    """``call()``'s value, wall seconds and its own peak RSS."""
    reset = reset_peak_rss()
    value, seconds = _timed(call)
    return value, {"seconds": seconds, "max_rss_mb": peak_rss_mb(), "rss_reset": reset}


def load_models(settings) -> dict:
    import numpy as np

    load: dict = {}
    _, load["import stage modules"] = _timed(lambda: __import__("smartcrop.stages", fromlist=["stages"]).stages())
    from smartcrop.detector.models import load_detector

    detector, load["detector model load"] = _timed(lambda: load_detector(settings.detector_model, settings.device))
    blank = [np.zeros((360, 640, 3), np.uint8)]
    _, load["detector first inference (warm-up)"] = _timed(lambda: detector(blank))
    _, load["detector next inference (1 image)"] = _timed(lambda: detector(blank))
    try:
        from smartcrop.detector.faces import load_face_analyzer

        faces, load["face models load (YuNet + FaceLandmarker)"] = _timed(
            lambda: load_face_analyzer(settings.face_model, settings.landmark_model))
        _, load["face analysis first call"] = _timed(lambda: faces(blank[0]))
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        load["face models load (YuNet + FaceLandmarker)"] = f"failed: {type(exc).__name__}: {exc}"
    return load


def smartcrop_once(clip: Path, settings) -> dict:
    from smartcrop.core.job import job_from_options
    from smartcrop.pipeline import run_job

    job = job_from_options(str(clip))  # the defaults: 9:16, adaptive, responsive, veryfast
    result, run = measured(lambda: run_job(job, settings=settings))
    run["stages"] = dict(result.seconds)
    if result.ahead is not None:  # how much of the clip was planned, and rendered, while the analysis ran
        run["ahead_frames"] = result.ahead.frames if result.ahead.reused else 0
    if result.status.error is not None:
        run["error"] = f"[{result.status.error.code}] {result.status.error.message}"
    return run


def baseline_once(clip: Path, out: Path) -> dict:
    from benchmarks.baseline import centre_crop_transcode

    try:
        _, run = measured(lambda: centre_crop_transcode(clip, out))
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}
    return run


def measure(clips: list[Path], *, reps: int = 3, once_over: float = 90.0) -> dict:
    from smartcrop.media.probe import probe
    from smartcrop.runtime.config import Settings

    settings = Settings.from_env()
    out: dict = {"load": load_models(settings), "runs": []}
    if clips:  # the first job in a process still pays lazy imports and first-call set-up: not what a service pays
        first = smartcrop_once(clips[0], settings)
        out["load"][f"first `run_job` in the process ({clips[0].name}, not counted)"] = first["seconds"]
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        for clip in clips:
            run: dict = {"clip": clip.name, "smartcrop": [], "in_turn": [], "baseline": []}
            try:
                media = probe(clip)
                run.update(duration=media.duration, frames=media.frame_count,
                           size=f"{media.display_width}x{media.display_height}", fps=media.fps)
                for _ in range(1 if media.duration > once_over else reps):
                    run["smartcrop"].append(smartcrop_once(clip, settings))
                    run["baseline"].append(baseline_once(clip, Path(tmp) / "baseline.mp4"))
                    # the same job with the stages strictly in turn (no render during the analysis), as the
                    # services run it
                    run["in_turn"].append(smartcrop_once(clip, replace(settings, render_ahead=False)))
            except Exception as exc:  # noqa: BLE001
                run["error"] = f"{type(exc).__name__}: {exc}"
            out["runs"].append(run)
            print(json.dumps({"clip": clip.name, "smartcrop": [r.get("seconds") for r in run["smartcrop"]],
                              "baseline": [r.get("seconds") for r in run["baseline"]]}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_worker")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--once-over", type=float, default=90.0, help="clips longer than this (s) run once")
    parser.add_argument("clips", type=Path, nargs="*")
    args = parser.parse_args(argv)
    args.json.write_text(json.dumps(measure(args.clips, reps=max(1, args.reps), once_over=args.once_over)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
