"""Per-stage times in a fresh process: model loads first, then ``smartcrop.pipeline.run_job`` on each clip.

Run by :mod:`benchmarks.speed` as a child process, so model loading is timed cold and nothing the parent loaded
helps:

    .venv/bin/python -m benchmarks.speed_worker --json OUT.json CLIP...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _timed(call) -> tuple[object, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def measure(clips: list[Path]) -> dict:
    import numpy as np

    from smartcrop.runtime.config import Settings

    out: dict = {"load": {}, "runs": []}
    _, out["load"]["import stage modules"] = _timed(lambda: __import__("smartcrop.stage", fromlist=["stages"]).stages())
    settings = Settings.from_env()
    from smartcrop.detector.models import load_detector

    detector, out["load"]["detector model load"] = _timed(lambda: load_detector(settings.detector_model,
                                                                               settings.device))
    blank = [np.zeros((360, 640, 3), np.uint8)]
    _, out["load"]["detector first inference (warm-up)"] = _timed(lambda: detector(blank))
    _, out["load"]["detector next inference (1 image)"] = _timed(lambda: detector(blank))
    try:
        from smartcrop.detector.faces import load_face_analyzer

        faces, out["load"]["face models load (YuNet + FaceLandmarker)"] = _timed(
            lambda: load_face_analyzer(settings.face_model, settings.landmark_model))
        _, out["load"]["face analysis first call"] = _timed(lambda: faces(blank[0]))
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        out["load"]["face models load (YuNet + FaceLandmarker)"] = f"failed: {type(exc).__name__}: {exc}"

    from smartcrop.job import job_from_options
    from smartcrop.media.probe import probe
    from smartcrop.pipeline import run_job

    for clip in clips:
        run: dict = {"clip": clip.name}
        try:
            media = probe(clip)
            run.update(duration=media.duration, frames=media.frame_count,
                       size=f"{media.display_width}x{media.display_height}", fps=media.fps)
            job = job_from_options(str(clip))  # the defaults: 9:16, adaptive, responsive, veryfast
            result, run["wall"] = _timed(lambda job=job: run_job(job, settings=settings))
            run["seconds"] = dict(result.seconds)
            run["status"] = result.status.status.value
            if result.status.error is not None:
                run["error"] = f"[{result.status.error.code}] {result.status.error.message}"
        except Exception as exc:  # noqa: BLE001
            run["error"] = f"{type(exc).__name__}: {exc}"
        out["runs"].append(run)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_worker")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("clips", type=Path, nargs="*")
    args = parser.parse_args(argv)
    args.json.write_text(json.dumps(measure(args.clips)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
