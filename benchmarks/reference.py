"""The reference the quality metrics are scored against: person boxes on every 2nd frame of a clip.

It comes from the same detector the pipeline uses (``smartcrop.detector.analysis.analyse`` at half the frame rate,
so on frames the pipeline's own 5 fps analysis mostly never saw) and is cached per clip and model in
``benchmarks/.cache/reference/``. It is not ground truth: it measures framing against what the model sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE, model_tag
from benchmarks.metrics import MIN_SCORE

PERSON = 0
VERSION = 2  # bump when the cached content changes


@dataclass
class Reference:
    t: np.ndarray  # (F,) every decoded frame's time
    shot_start: np.ndarray  # (F,) bool: a cut before this frame
    analysed: np.ndarray  # (F,) bool: a reference frame
    frame: np.ndarray  # (B,) frame of each box
    xyxy: np.ndarray  # (B, 4) display pixels
    score: np.ndarray  # (B,)
    cls: np.ndarray  # (B,)
    seconds: float = 0.0  # time the analysis took (0 when read from the cache)

    def people(self, min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
        keep = (self.cls == PERSON) & (self.score >= min_score)
        return self.frame[keep], self.xyxy[keep]

    @property
    def frames(self) -> np.ndarray:
        return np.flatnonzero(self.analysed)


def _cache_file(clip: Path, model: str) -> Path:
    stat = clip.stat()
    return CACHE / "reference" / f"{clip.stem}--{model_tag(model)}--{stat.st_size}-v{VERSION}.npz"


def reference_for(clip: Path, media, model: str, *, refresh: bool = False) -> Reference:
    """The cached reference of ``clip``, computing it first if needed."""
    import time

    file = _cache_file(clip, model)
    if file.exists() and not refresh:
        with np.load(file) as data:
            return Reference(**{name: data[name] for name in ("t", "shot_start", "analysed", "frame", "xyxy", "score",
                                                              "cls")})
    from smartcrop.detector.analysis import analyse
    from smartcrop.detector.models import load_detector
    from smartcrop.runtime.config import Settings

    settings = Settings.from_env()
    detector = load_detector(model, settings.device)
    started = time.perf_counter()
    data = analyse(clip, media, detector, analysis_fps=media.fps / 2, batch_size=settings.detector_batch,
                    adapt_rate=False)
    seconds = time.perf_counter() - started
    timeline, boxes = data.timeline, data.boxes
    reference = Reference(t=np.asarray(timeline.t, float), shot_start=np.asarray(timeline.shot_start, bool),
                          analysed=np.asarray(timeline.analysed, bool), frame=np.asarray(boxes.frame, int),
                          xyxy=np.asarray(boxes.xyxy, np.float32), score=np.asarray(boxes.score, np.float32),
                          cls=np.asarray(boxes.cls, int), seconds=seconds)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(file, t=reference.t, shot_start=reference.shot_start, analysed=reference.analysed,
                        frame=reference.frame, xyxy=reference.xyxy, score=reference.score, cls=reference.cls)
    file.with_suffix(".json").write_text(json.dumps({"clip": clip.name, "model": model, "analysis_fps": media.fps / 2,
                                                     "seconds": round(seconds, 2)}))
    return reference


def align(t_path: np.ndarray, t_ref: np.ndarray) -> np.ndarray:
    """For each reference time, the index of the nearest path frame (identity when both come from the same decode)."""
    t_path = np.asarray(t_path, float)
    t_ref = np.asarray(t_ref, float)
    if len(t_path) == len(t_ref) and np.allclose(t_path, t_ref, atol=1e-4):
        return np.arange(len(t_ref))
    right = np.clip(np.searchsorted(t_path, t_ref), 1, len(t_path) - 1)
    left = right - 1
    return np.where(np.abs(t_path[left] - t_ref) <= np.abs(t_path[right] - t_ref), left, right)


def cuts_on(t_path: np.ndarray, reference: Reference) -> np.ndarray:
    """(F,) bool on the path's frames: a reference cut lies just before this frame."""
    cut_times = reference.t[np.flatnonzero(reference.shot_start)]
    cut_times = cut_times[cut_times > reference.t[0]]
    cuts = np.zeros(len(t_path), bool)
    if len(t_path) and len(cut_times):
        cuts[np.clip(np.searchsorted(t_path, cut_times - 1e-6), 0, len(t_path) - 1)] = True
    if len(cuts):
        cuts[0] = False
    return cuts
