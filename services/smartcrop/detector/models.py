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


# Where the face models come from when configured by their official names (users with internet access).
MODEL_DOWNLOADS = {
    "face_detection_yunet_2023mar.onnx":
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    "face_landmarker.task": "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
                            "float16/latest/face_landmarker.task",
}


def model_file(value: str, what: str, env: str) -> Path:
    """A model file from configuration: a path, an http(s) URL, or an official name downloaded once to the cache.

    Like ultralytics does for YOLO names, so a fresh install works without hand-fetched weights; offline
    deployments point the variable at a file.
    """
    if not value:
        raise ModelError(f"{env} is empty: set it to the {what} model file")
    url = value if value.startswith(("http://", "https://")) else MODEL_DOWNLOADS.get(value)
    path = Path(value)
    if path.is_file():
        return path
    if url is None:
        raise ModelError(f"{what} model not found: {value} (set {env} to the model file)")
    from smartcrop.runtime.config import cache_home

    target = cache_home() / "models" / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    import requests

    log.info("downloading %s model from %s", what, url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with requests.get(url, timeout=(10, 60), stream=True) as response:
            response.raise_for_status()
            partial = target.with_suffix(target.suffix + ".part")
            with partial.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
        partial.replace(target)
    except (requests.RequestException, OSError) as exc:
        raise ModelError(f"{what} model {value} is not a file and could not be downloaded ({type(exc).__name__}); "
                         f"set {env} to the model file") from None
    return target


@lru_cache(maxsize=2)
def load_detector(model: str, device: str = "") -> ObjectDetector:
    """One loaded model per process: services keep it warm between jobs."""
    log.info("loading detector model %s", model)
    return ObjectDetector(model, device)
