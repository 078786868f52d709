"""Where a cold ``smartcrop run`` spends its time: import time by package and a sampled wall-clock profile by cost.

    .venv/bin/python -m benchmarks.coldprofile CLIP [CLIP...] [--rate 50] [--keep DIR]

Two fresh runs of ``smartcrop run CLIP -o OUT.mp4 --quiet`` per clip (default job):

- ``python -X importtime``: each module's own import time, summed by top-level package. Imports on the
  background model-load thread are included, so the sum can exceed what the main thread waits for.
- ``py-spy record --idle`` (``pip install py-spy``; a sampling profiler, so threads and native calls count): every
  sample's stack is put in one cost class (import, model load, decode, detector inference, faces, render, ...), by
  the deepest smartcrop frame. The main thread's samples add up to the run's wall time; the inference thread's
  show what the main thread waits for. OpenVINO's own worker threads run no Python and are not sampled: their
  time shows as the inference thread waiting in ``detector inference``.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import configure_environment, python
from benchmarks.report import table

# (substring of a frame, class) checked over the whole stack, first match wins
WHOLE_STACK = (("_find_and_load", "import"),
               ("_OpenVinoRuntime.__init__", "model load"), ("load_detector", "model load"),
               ("load_face_analyzer", "model load"), ("FaceAnalyzer.__init__", "model load"))
# file of the deepest smartcrop frame -> class
BY_FILE = (("smartcrop/detector/faces.py", "faces (YuNet, FaceLandmarker)"),
           ("smartcrop/detector/mouths.py", "faces (mouth motion)"),
           ("smartcrop/detector/models.py", "detector inference"),
           ("smartcrop/detector/shots.py", "shot cues"),
           ("smartcrop/media/decode.py", "decode (and scaling)"),
           ("smartcrop/media/probe.py", "probe"),
           ("smartcrop/media/voice.py", "voice activity"),
           ("smartcrop/media/render.py", "render (crop, x264, audio)"),
           ("smartcrop/encoder/", "render (crop, x264, audio)"),
           ("smartcrop/overlap.py", "render (crop, x264, audio)"),  # waiting for the render thread's output
           ("smartcrop/tracker/", "tracker"),
           ("smartcrop/planner/", "planner"),
           ("smartcrop/detector/analysis.py", "analysis loop (queueing, waiting)"),
           ("smartcrop/detector/stage.py", "waiting for the model load"))  # Preloaded.__call__ joining the loader


def cost_class(frames: list[str]) -> str:
    for needle, name in WHOLE_STACK:
        if any(needle in frame for frame in frames):
            return name
    ours = [frame for frame in frames if "smartcrop/" in frame]
    if ours:
        for needle, name in BY_FILE:
            if needle in ours[-1]:
                return name
        return "other smartcrop"
    if any("concurrent/futures/thread.py" in frame for frame in frames):
        return "idle worker thread"
    return "other"


def thread_role(frames: list[str]) -> str:
    if frames and "_run_module_as_main" in frames[0]:
        return "main"
    if any("analyse.<locals>.infer" in frame for frame in frames):
        return "inference"
    if any("Preloaded._load" in frame for frame in frames):
        return "model-load"
    return "other threads"


def parse_pyspy(text: str) -> dict[str, collections.Counter]:
    """``py-spy -f raw`` lines (``frame;frame;... COUNT``) -> samples per cost class, per thread role."""
    roles: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        roles[thread_role(frames)][cost_class(frames)] += int(count)
    return roles


def parse_importtime(text: str) -> collections.Counter:
    """``-X importtime`` lines -> own import microseconds per top-level package."""
    own: collections.Counter = collections.Counter()
    for line in text.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            own[match[2].split(".")[0]] += int(match[1])
    return own


def _run(command: list[str], stderr_to: Path | None = None) -> float:
    started = time.perf_counter()
    with open(stderr_to, "w") if stderr_to else open(os.devnull, "w") as err:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=err)
    return time.perf_counter() - started


def profile(clip: Path, folder: Path, rate: int) -> dict:
    spy = shutil.which("py-spy") or str(Path(python()).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/python -m pip install py-spy")
    run = [python(), "-m", "smartcrop", "run", str(clip), "-o", str(folder / "out.mp4"), "--quiet"]
    imports = folder / f"{clip.stem}.importtime.txt"
    import_wall = _run([python(), "-X", "importtime", *run[1:]], stderr_to=imports)
    raw = folder / f"{clip.stem}.pyspy.txt"
    spy_wall = _run([spy, "record", "--idle", "-r", str(rate), "-f", "raw", "-o", str(raw), "--", *run])
    return {"clip": clip.name, "importtime_wall": import_wall, "pyspy_wall": spy_wall, "rate": rate,
            "imports": parse_importtime(imports.read_text()), "samples": parse_pyspy(raw.read_text())}


def report(result: dict, top: int = 8) -> str:
    rate = result["rate"]
    main = result["samples"].get("main", collections.Counter())
    infer = result["samples"].get("inference", collections.Counter())
    loader = result["samples"].get("model-load", collections.Counter())
    total = sum(main.values()) or 1
    names = sorted(set(main) | set(infer), key=lambda n: -(main[n] + infer[n]))
    rows = [[name, f"{main[name] / rate:.1f}", f"{100 * main[name] / total:.0f} %",
             f"{infer[name] / rate:.1f}" if infer[name] else "-"] for name in names if main[name] + infer[name]]
    imports = result["imports"]
    import_rows = [[package, f"{us / 1e6:.2f}"] for package, us in imports.most_common(top)]
    return "\n".join([
        f"`{result['clip']}`: cold run {result['pyspy_wall']:.1f} s under py-spy ({rate} Hz, `--idle`), "
        f"{result['importtime_wall']:.1f} s under `-X importtime`; model-load thread busy "
        f"{sum(loader.values()) / rate:.1f} s (import {loader['import'] / rate:.1f} s).",
        "",
        table(["cost", "main thread s", "share of the run", "inference thread s"], rows),
        "",
        "Import time by package (own time of each module, all threads; total "
        f"{sum(imports.values()) / 1e6:.2f} s):",
        "",
        table(["package", "s"], import_rows),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coldprofile", description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", type=Path, nargs="+")
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second (default 50)")
    parser.add_argument("--keep", type=Path, help="keep the raw profiles in this folder")
    args = parser.parse_args(argv)
    configure_environment(None)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for clip in args.clips:
            print(report(profile(clip.resolve(), folder, args.rate)))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
