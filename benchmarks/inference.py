"""Detector cost: the lean path (openvino / onnxruntime directly) against ``ultralytics.YOLO.predict``, and start-up.

    .venv/bin/python -m benchmarks.inference [--reps 5] [--frames 16]

Per-frame inference on real 1080p frames as the analysis hands them over (640 px long side, batches of 8),
alternating lean and ultralytics in one process, several repetitions; then cold start-up in fresh processes:
``smartcrop --help``, ``smartcrop run --help``, and import + load + first inference of each path. Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchmarks.common import REPO, media_dir, shared_dir

CLIPS_1080P = ("C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4", "A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4")
MODELS = ("yolo11n_int8_openvino_model", "yolov8n_int8.onnx")
BATCH = 8


def frames_1080p(count: int) -> list:
    """``count`` frames spread over the 1080p clips, BGR at the detector's long side."""
    from smartcrop.detector.analysis import DETECTOR_LONG_SIDE
    from smartcrop.media.decode import decode_video, display_size, to_display_array
    from smartcrop.media.probe import probe

    out = []
    per_clip = count // len(CLIPS_1080P)
    for name in CLIPS_1080P:
        path = media_dir() / name
        media = probe(path)
        size = display_size(media, DETECTOR_LONG_SIDE)
        step = max(1, media.frame_count // per_clip)
        taken = 0
        for item in decode_video(path):
            if item.index % step == 0:
                out.append(to_display_array(item.frame, media, size, "bgr24"))
                taken += 1
                if taken == per_clip:
                    break
    return out


def per_frame_ms(reps: int, count: int) -> list[tuple[str, str, list[float]]]:
    from ultralytics import YOLO

    from smartcrop.detector.models import ObjectDetector

    frames = frames_1080p(count)
    rows = []
    for name in MODELS:
        path = str(shared_dir() / "models" / name)
        lean = ObjectDetector(path)
        reference = YOLO(path, task="detect")
        runners = {"lean": lean}
        if lean.fits_input and not lean.runtime.dynamic:  # a fixed export refitted to the frame: also as exported
            runners["lean, letterboxed to the export's shape"] = ObjectDetector(path, fit_input=False)
        runners["ultralytics"] = lambda batch, model=reference: model.predict(batch, conf=0.25, verbose=False,
                                                                               device="cpu")
        for run in runners.values():  # warm-up: first-call allocations and lazy imports
            run(frames[:1])
        times: dict[str, list[float]] = {key: [] for key in runners}
        for _ in range(reps):
            for key, run in runners.items():  # alternating, so load drifts hit both alike
                started = time.perf_counter()
                for i in range(0, len(frames), BATCH):
                    run(frames[i:i + BATCH])
                times[key].append((time.perf_counter() - started) * 1000 / len(frames))
        rows += [(name, key, values) for key, values in times.items()]
    return rows


LOAD_SCRIPTS = {
    "lean": "from smartcrop.detector.models import load_detector; d = load_detector(M); d([img])",
    "ultralytics": "from ultralytics import YOLO; d = YOLO(M, task='detect'); d.predict([img], verbose=False)",
}


def cold_seconds(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def startup(reps: int) -> list[tuple[str, list[float]]]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}", "YOLO_OFFLINE": "1"}
    cases = {"smartcrop --help": [sys.executable, "-m", "smartcrop", "--help"],
             "smartcrop run --help": [sys.executable, "-m", "smartcrop", "run", "--help"]}
    clip = str(media_dir() / CLIPS_1080P[0])
    cases["smartcrop run's imports, probe, first decoded 1080p frame"] = [sys.executable, "-c", (
        "from smartcrop.pipeline import run_job; from smartcrop.stages import stages; stages(); "
        "from smartcrop.media.probe import probe; from smartcrop.media.decode import decode_video; "
        f"probe({clip!r}); next(iter(decode_video({clip!r})))")]
    for name in MODELS:
        model = str(shared_dir() / "models" / name)
        for key, body in LOAD_SCRIPTS.items():
            script = f"import numpy as np; M = {model!r}; img = np.zeros((360, 640, 3), np.uint8); {body}"
            cases[f"{name}: import, load, first inference ({key})"] = [sys.executable, "-c", script]
    times: dict[str, list[float]] = {key: [] for key in cases}
    for _ in range(reps):
        for key, argv in cases.items():
            times[key].append(cold_seconds(argv, env))
    return list(times.items())


def spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    rows = per_frame_ms(args.reps, args.frames)
    print(f"| model | path | ms per frame, median (min–max) of {args.reps} |\n|---|---|---|")
    for name, key, values in rows:
        print(f"| `{name}` | {key} | {spread(values, 1)} |")
    print(f"\n| cold start, fresh process | seconds, median (min–max) of {args.reps} |\n|---|---|")
    for key, values in startup(args.reps):
        print(f"| {key} | {spread(values, 2)} |")


if __name__ == "__main__":
    main()
