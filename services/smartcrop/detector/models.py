"""The object detector: any ultralytics YOLO model (``.pt``, ONNX, OpenVINO, TensorRT ...) by name or path."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install at runtime inside a service
os.environ.setdefault("YOLO_VERBOSE", "false")


class ModelError(RuntimeError):
    """The configured model cannot be loaded: a deployment problem, reported loudly, never skipped."""

    code = "model_unavailable"


@dataclass
class FrameDetections:
    xyxy: np.ndarray  # (N, 4) float32 in the input image's pixels
    score: np.ndarray  # (N,)
    cls: np.ndarray  # (N,) int


_OFFICIAL_PREFIXES = ("yolo",)


def _looks_like_path(name: str) -> bool:
    return os.sep in name or name.startswith(".") or not name.lower().startswith(_OFFICIAL_PREFIXES)


class ObjectDetector:
    """Batched YOLO inference on BGR images; the model is configuration (``SMARTCROP_DETECTOR_MODEL``)."""

    def __init__(self, model: str, device: str = "", image_size: int = 640, confidence: float = 0.25):
        if not model:
            raise ModelError("SMARTCROP_DETECTOR_MODEL is empty")
        if _looks_like_path(model) and not Path(model).exists():
            raise ModelError(f"detector model not found: {model} (set SMARTCROP_DETECTOR_MODEL to a YOLO model file "
                             f"or an official ultralytics name such as yolo11n.pt)")
        try:
            from ultralytics import YOLO

            self.model = YOLO(model, task="detect")
        except Exception as exc:  # ultralytics raises many types for missing/unreadable weights
            raise ModelError(f"cannot load detector model {model}: {type(exc).__name__}: {exc}") from exc
        self.name = model
        self.device = device or None
        self.image_size = image_size
        self.confidence = confidence
        self.inference_seconds = 0.0
        self._lock = threading.Lock()  # ultralytics predictors are not safe to share across threads

    def __call__(self, images_bgr: list[np.ndarray]) -> list[FrameDetections]:
        if not images_bgr:
            return []
        started = time.perf_counter()
        with self._lock:
            results = self.model.predict(images_bgr, imgsz=self.image_size, conf=self.confidence, device=self.device,
                                         verbose=False)
        self.inference_seconds += time.perf_counter() - started
        out = []
        for result in results:
            boxes = result.boxes
            out.append(FrameDetections(xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
                                       score=boxes.conf.cpu().numpy().astype(np.float32),
                                       cls=boxes.cls.cpu().numpy().astype(int)))
        return out


@lru_cache(maxsize=2)
def load_detector(model: str, device: str = "") -> ObjectDetector:
    """One loaded model per process: services keep it warm between jobs."""
    log.info("loading detector model %s", model)
    return ObjectDetector(model, device)
