"""Faces, their five landmark points, and (on request) how open their mouths are.

YuNet (OpenCV's ``FaceDetectorYN``) finds the faces and their eye, nose and mouth-corner points, which place the
mouth patches that ``detector.mouths`` reads speech from. The lip-gap measure (MediaPipe's FaceLandmarker on a crop
of the face enlarged about 2x, since its own face detector is short-range) is optional: it fails on profile and
small faces, so speaker detection does not use it, and its model (``SMARTCROP_LANDMARK_MODEL``) is loaded only when
it is asked for. The face model is ``SMARTCROP_FACE_MODEL``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from smartcrop.core.errors import ModelError
from smartcrop.detector.models import model_file

log = logging.getLogger(__name__)

# MediaPipe and TFLite log to stderr from C++ unless told otherwise before they load; a CLI user wants one clear
# line, not a page of graph-engine notices.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FACE_MODEL_ENV = "SMARTCROP_FACE_MODEL"
LANDMARK_MODEL_ENV = "SMARTCROP_LANDMARK_MODEL"

CROP_SCALE = 2.0  # side of the landmarker's crop, in face-box sizes
CROP_SIZE = 256  # crops are resized to this (the landmark model's own input size)
MIN_FACE_PX = 24  # faces whose box is narrower or shorter than this (image pixels) get no mouth measure (NaN)
# Inner-lip gap (landmarks 13/14) over face height (landmarks 10/152), in 3D, that reads as a fully open mouth (1.0).
LIP_GAP_FULL = 0.25

_UPPER_LIP, _LOWER_LIP = 13, 14  # inner lips, middle
_FOREHEAD, _CHIN = 10, 152


@dataclass
class FaceDetections:
    """One image's faces, vectorised."""

    xyxy: np.ndarray  # (N, 4) float32, pixels of the image given
    score: np.ndarray  # (N,) float32
    mouth_open: np.ndarray  # (N,) float32 in [0, 1]: how open the mouth is (NaN if not measured)
    points: np.ndarray | None = None  # (N, 5, 2) float32: right eye, left eye, nose, right and left mouth corner

    def __post_init__(self):
        if self.points is None:
            self.points = np.zeros((len(self.score), 5, 2), np.float32)

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def empty(cls) -> "FaceDetections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 5, 2), np.float32))


def _close_quietly(landmarker) -> None:
    """Close MediaPipe's graph; at interpreter exit its executor is already shut down, so its own ``close`` (and
    ``__del__``, later) would print a traceback: forget the handle instead, the process is ending anyway."""
    try:
        landmarker.close()
    except Exception:  # noqa: BLE001
        landmarker._handle = None


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for a moment: C++ libraries write there past Python's logging."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # no real stderr (captured): nothing to silence
        yield
        return
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class FaceAnalyzer:
    """YuNet faces and points on BGR images, plus the optional lip gap. Safe to share between threads."""

    def __init__(self, face_model: str, landmark_model: str, *, min_score: float = 0.7):
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # YuNet's backend notices are noise
        face_file = model_file(face_model, "face detector (YuNet ONNX)", FACE_MODEL_ENV)
        self._size = (320, 320)
        try:
            self._detector = cv2.FaceDetectorYN.create(str(face_file), "", self._size, float(min_score))
        except cv2.error as exc:
            raise ModelError(f"cannot load face detector model {face_model} ({FACE_MODEL_ENV}): "
                             f"{str(exc).strip().splitlines()[-1]}") from exc
        self._landmark_model = landmark_model
        self._landmarker = None
        self._finalizer = None
        self.min_score = min_score
        self._cv2 = cv2
        self._lock = threading.Lock()  # neither model object is documented as thread-safe

    def _load_landmarker(self):
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        landmark_model = self._landmark_model
        landmark_file = model_file(landmark_model, "face landmarker (MediaPipe .task)", LANDMARK_MODEL_ENV)
        try:
            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(landmark_file)),
                running_mode=vision.RunningMode.IMAGE, num_faces=2, output_face_blendshapes=True,
                min_face_detection_confidence=0.3, min_face_presence_confidence=0.3)
            with native_stderr_silenced():  # MediaPipe/TFLite print set-up notices from C++
                landmarker = vision.FaceLandmarker.create_from_options(options)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError with the C++ status text
            raise ModelError(f"cannot load face landmarker model {landmark_model} ({LANDMARK_MODEL_ENV}): "
                             f"{type(exc).__name__}: {exc}") from exc
        self._landmarker = landmarker
        self._finalizer = weakref.finalize(self, _close_quietly, landmarker)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """YuNet alone: (N, 4) xyxy boxes (not clipped to the image) and (N,) scores."""
        xyxy, score, _ = self.detect_points(image_bgr)
        return xyxy, score

    def detect_points(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """YuNet alone: (N, 4) xyxy boxes (not clipped), (N,) scores and (N, 5, 2) landmark points."""
        height, width = image_bgr.shape[:2]
        with self._lock:
            if (width, height) != self._size:
                self._detector.setInputSize((width, height))
                self._size = (width, height)
            _, found = self._detector.detect(np.ascontiguousarray(image_bgr))
        if found is None or len(found) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        found = np.asarray(found, np.float32)
        xyxy = np.concatenate([found[:, 0:2], found[:, 0:2] + found[:, 2:4]], axis=1)
        return xyxy, found[:, 14].copy(), found[:, 4:14].reshape(-1, 5, 2).copy()

    def landmarks(self, image_bgr: np.ndarray, box: np.ndarray):
        """MediaPipe's landmarks and blendshapes of the face in ``box`` (xyxy), from a square crop ``CROP_SCALE``
        times the box, centred on it; None for a face under ``MIN_FACE_PX`` or when the landmarker finds none.
        Landmarks are normalised to the (square) crop."""
        import mediapipe as mp

        cv2 = self._cv2
        x0, y0, x1, y1 = (float(v) for v in box)
        if min(x1 - x0, y1 - y0) < MIN_FACE_PX:
            return None
        size = int(round(CROP_SCALE * max(x1 - x0, y1 - y0)))
        left, top = int(round((x0 + x1 - size) / 2)), int(round((y0 + y1 - size) / 2))
        height, width = image_bgr.shape[:2]
        crop = image_bgr[max(0, top):max(0, min(height, top + size)), max(0, left):max(0, min(width, left + size))]
        if crop.size == 0:
            return None
        pad = (max(0, -top), max(0, top + size - height), max(0, -left), max(0, left + size - width))
        if any(pad):  # keep the face centred: black where the crop leaves the image
            crop = cv2.copyMakeBorder(crop, *pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        interpolation = cv2.INTER_AREA if size > CROP_SIZE else cv2.INTER_LINEAR
        rgb = np.ascontiguousarray(cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=interpolation)[:, :, ::-1])
        with self._lock:
            if self._landmarker is None:
                self._load_landmarker()
            result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        if not result.face_landmarks:
            return None
        # the face nearest the crop's centre is the one YuNet found
        offsets = [np.hypot(np.mean([p.x for p in marks]) - 0.5, np.mean([p.y for p in marks]) - 0.5)
                   for marks in result.face_landmarks]
        best = int(np.argmin(offsets))
        blendshapes = result.face_blendshapes[best] if result.face_blendshapes else []
        return result.face_landmarks[best], blendshapes

    def mouth_open(self, image_bgr: np.ndarray, box: np.ndarray) -> float:
        """How open the mouth of the face in ``box`` is, in [0, 1]; NaN when it cannot be measured.

        The inner-lip gap (landmarks 13/14) over the face height (forehead 10 to chin 152), both in MediaPipe's 3D
        landmark space, scaled so that a gap of ``LIP_GAP_FULL`` face heights reads 1. On the real clips its 1-second
        variability separates talking from silent faces better than the ``jawOpen`` blendshape does.
        """
        found = self.landmarks(image_bgr, box)
        if found is None:
            return float("nan")
        marks = found[0]
        point = lambda i: np.array([marks[i].x, marks[i].y, marks[i].z])  # noqa: E731 (square crop: one scale)
        face_height = float(np.linalg.norm(point(_CHIN) - point(_FOREHEAD)))
        if not face_height > 0:
            return float("nan")
        gap = float(np.linalg.norm(point(_LOWER_LIP) - point(_UPPER_LIP)))
        return float(np.clip(gap / face_height / LIP_GAP_FULL, 0.0, 1.0))

    def __call__(self, image_bgr: np.ndarray, *, lips: bool = False) -> FaceDetections:
        """The faces of one image; with ``lips``, each mouth's lip gap too (NaN otherwise)."""
        xyxy, score, points = self.detect_points(image_bgr)
        if lips:
            mouth_open = np.array([self.mouth_open(image_bgr, box) for box in xyxy], np.float32).reshape(-1)
        else:
            mouth_open = np.full(len(score), np.nan, np.float32)
        height, width = image_bgr.shape[:2]
        xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0, width)
        xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0, height)
        return FaceDetections(xyxy=xyxy, score=score, mouth_open=mouth_open, points=points)


@lru_cache(maxsize=2)
def load_face_analyzer(face_model: str, landmark_model: str) -> FaceAnalyzer:
    """One loaded pair of models per process: services keep them warm between jobs."""
    log.info("loading face models %s, %s", face_model, landmark_model)
    return FaceAnalyzer(face_model, landmark_model)
