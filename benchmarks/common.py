"""What every part of the benchmark shares: where clips and models are, the machine, and the stages run in process.

Media and models are read from ``../shared`` beside the checkout (``SMARTCROP_SHARED`` overrides); nothing is copied
into the repository. The stages are called through their public handlers exactly as ``smartcrop.pipeline`` calls
them, so the benchmark follows the code as it changes.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
README = BENCH / "README.md"
DEFAULT_MODEL_NAME = "yolo11n_int8_openvino_model"


def shared_dir() -> Path:
    return Path(os.environ.get("SMARTCROP_SHARED") or REPO.parent / "shared").resolve()


def media_dir() -> Path:
    return shared_dir() / "media"


def resolve_model(choice: str | None) -> str:
    """``--model``, else ``SMARTCROP_DETECTOR_MODEL``, else the shared int8 YOLO11n IR; paths are made absolute (tried
    against the working directory, then the repository root) so child processes see the same file."""
    value = choice or os.environ.get("SMARTCROP_DETECTOR_MODEL") or str(shared_dir() / "models" / DEFAULT_MODEL_NAME)
    for base in (Path.cwd(), REPO):
        candidate = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
        if candidate.exists():
            return str(candidate)
    return value  # an official ultralytics name, or missing: the detector reports it


def configure_environment(model_choice: str | None) -> str:
    """Point this process and its children at the shared models; returns the detector model in use."""
    model = resolve_model(model_choice)
    os.environ["SMARTCROP_DETECTOR_MODEL"] = model
    models = shared_dir() / "models"
    defaults = {"SMARTCROP_FACE_MODEL": models / "face_detection_yunet_2026may.onnx",
                "SMARTCROP_LANDMARK_MODEL": models / "face_landmarker.task"}
    for name, path in defaults.items():
        if not os.environ.get(name) and path.exists():
            os.environ[name] = str(path)
    quiet = {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "false", "TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2",
             "OPENCV_LOG_LEVEL": "ERROR"}
    for name, value in quiet.items():
        os.environ.setdefault(name, value)
    return model


def model_tag(model: str) -> str:
    """A short file-name-safe name of the model (for cache keys and tables)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model.rstrip("/")).name) or "model"


# ---------------------------------------------------------------------------------------------------------------------
# clips


ANIMATED = ("megamind",)  # no real people: reported, marked, left out of the means


@dataclass(frozen=True)
class Clip:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def short(self) -> str:
        return self.path.stem

    @property
    def animated(self) -> bool:
        return any(word in self.name.lower() for word in ANIMATED)


def all_clips() -> list[Clip]:
    folder = media_dir()
    if not folder.is_dir():
        raise SystemExit(f"no media folder at {folder} (set SMARTCROP_SHARED to the folder holding media/ and models/)")
    return [Clip(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in (".mp4", ".avi", ".mov",
                                                                                               ".mkv", ".webm")]


def select(clips: list[Clip], patterns: str | None) -> list[Clip]:
    """``--clips a,b``: the clips whose file name contains any of the comma-separated words (case-insensitive)."""
    if not patterns:
        return clips
    words = [w.strip().lower() for w in patterns.split(",") if w.strip()]
    return [c for c in clips if any(w in c.name.lower() for w in words)]


def clip_path(name: str) -> Path:
    return media_dir() / name


# ---------------------------------------------------------------------------------------------------------------------
# the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    packages = {name: _version(name) for name in ("av", "numpy", "ultralytics", "torch", "onnxruntime", "openvino",
                                                  "mediapipe", "opencv-contrib-python", "scipy")}
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": usable, "memory_gib": round(_memory_gib(), 1),
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
            "device": os.environ.get("SMARTCROP_DEVICE") or "auto", "commit": commit + (" + uncommitted changes"
                                                                                      if dirty else ""),
            "packages": packages}


def machine_line(info: dict[str, Any]) -> str:
    return (f"{info['cores']} cores ({info['usable_cores']} usable), {info['cpu']}, {info['memory_gib']} GiB RAM, "
            f"Python {info['python']}, {info['system']}; smartcrop at {info['commit']}")


# ---------------------------------------------------------------------------------------------------------------------
# the stages, in process


@dataclass
class PlanPath:
    """One format's crop plan as read back from the planner's Avro file."""

    t: np.ndarray  # (F,) seconds
    windows: np.ndarray  # (F, 4) x, y, w, h in display pixels
    cut: np.ndarray  # (F,) bool: the path breaks before this frame (a shot cut, or a cut to another subject)


@dataclass
class Plans:
    """Every format's crop path for one source, from one detector + tracker run."""

    media: Any  # smartcrop.media.probe.MediaInfo
    paths: dict[int, PlanPath] = field(default_factory=dict)  # format index -> its path
    errors: dict[int, str] = field(default_factory=dict)  # format -> why the planner gave it no path
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _only(events: list, kind: type):
    found = [e for e in events if isinstance(e, kind)]
    if len(found) != 1:
        raise RuntimeError(f"expected one {kind.__name__}, got {[type(e).__name__ for e in events]}")
    return found[0]


def plan_formats(source: Path, formats: list[dict[str, Any]], work_dir: Path, *, job_id: str) -> Plans:
    """Detector, tracker and planner on ``source`` for every format (Qencode format dicts), without encoding.

    One planner call plans all formats, as in a real job. If it fails, each format is planned on its own, so one
    broken method costs its own rows only.
    """
    from smartcrop.core.events import CropPlanned, DetectionsReady, JobRequested, TracksReady
    from smartcrop.core.framedata import CropPath
    from smartcrop.core.job import parse_job
    from smartcrop.core.ports import StageContext
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.edge import DeploymentEdge
    from smartcrop.runtime.storage import LocalStorage
    from smartcrop.stages import stages

    # an embedded run on our own clips, and one job carries every format measured (above the deployment's limit)
    settings = Settings.from_env()
    settings = replace(settings, embedded=True, limits=replace(settings.limits, max_formats=max(
        len(formats), settings.limits.max_formats)))
    job = parse_job({"query": {"source": str(source), "format": formats}}, job_id=job_id, limits=settings.limits)
    storage = LocalStorage(work_dir)
    ctx = StageContext(settings=settings, storage=storage, edge=DeploymentEdge(settings, storage))
    table = stages()
    seconds: dict[str, float] = {}

    def timed(name: str, call):
        started = time.perf_counter()
        try:
            return call()
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

    detections = _only(timed("detector", lambda: table["detector"].handler(JobRequested(job=job), ctx)),
                       DetectionsReady)
    tracks = _only(timed("tracker", lambda: table["tracker"].handler(detections, ctx)), TracksReady)
    plans = Plans(media=tracks.media, seconds=seconds)

    def read(planned: CropPlanned, index: int) -> None:
        path = CropPath.from_avro(storage.get_bytes(planned.plan_uri))
        cut = getattr(path, "cut", None)
        plans.paths[index] = PlanPath(np.asarray(path.t, float), np.asarray(path.windows, float),
                                      np.zeros(len(path.t), bool) if cut is None else np.asarray(cut, bool))

    try:
        planned_all = timed("planner", lambda: table["planner"].handler(tracks, ctx))
        for planned in planned_all:
            if isinstance(planned, CropPlanned):
                read(planned, planned.format_index)
    except Exception as exc:  # noqa: BLE001 - isolate the failing formats below
        whole = describe(exc)
        for index, fmt in enumerate(job.formats):
            single = dataclasses.replace(tracks, job=dataclasses.replace(job, formats=(fmt,)))
            try:
                (planned,) = [e for e in timed("planner", lambda single=single: table["planner"].handler(single, ctx))
                              if isinstance(e, CropPlanned)]
                read(planned, index)
            except Exception as single_exc:  # noqa: BLE001
                plans.errors[index] = describe(single_exc) or whole
    for index in range(len(job.formats)):
        if index not in plans.paths and index not in plans.errors:
            plans.errors[index] = "the planner returned no plan for this format"
    return plans


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "clip"


def python() -> str:
    return sys.executable
