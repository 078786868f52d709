"""The object detector: YOLO exports (OpenVINO IR, ONNX) run directly by their runtimes, official names exported once.

Inference needs neither torch nor ultralytics: the letterbox, the YOLOv8/11 head decode and the class-aware NMS are
done here in numpy/OpenCV the way ultralytics does them, so boxes match its predictions on the same file. ultralytics
is imported only to download and export a ``.pt`` model (an official name such as ``yolo11n.pt`` or a file), once per
model: the export is cached in ``SMARTCROP_HOME/models``.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from smartcrop.core.errors import ModelError
from smartcrop.core.home import cache_home
from smartcrop.detector.refit import RefitError

log = logging.getLogger(__name__)

IOU = 0.7  # ultralytics' predict defaults
MAX_DET = 300
MAX_NMS = 30000
_CLASS_OFFSET = 7680.0  # ultralytics' max_wh: separates classes for class-aware NMS
PAD_VALUE = 114
COMPILED_SHAPES = 4  # frame shapes a fixed IR stays compiled for (16:9, 4:3, 9:16, 1:1 sources, say)


@dataclass
class FrameDetections:
    xyxy: np.ndarray  # (N, 4) float32 in the input image's pixels
    score: np.ndarray  # (N,)
    cls: np.ndarray  # (N,) int


@dataclass(frozen=True)
class ModelInfo:
    """What ultralytics records in an export (``metadata.yaml`` beside an IR, ``metadata_props`` in an ONNX file)."""

    imgsz: tuple[int, int] = (640, 640)  # (height, width) of a fixed input; the long side for a dynamic one
    names: dict[int, str] = field(default_factory=dict)
    stride: int = 32
    batch: int = 1
    dynamic: bool = False
    end2end: bool = False  # (B, N, 6) xyxy, score, class: NMS is in the graph

    @classmethod
    def from_metadata(cls, meta: dict, source: str) -> "ModelInfo":
        task = meta.get("task", "detect")
        if task != "detect":
            raise ModelError(f"detector model {source} is a '{task}' model; a detect model is needed "
                             f"(e.g. yolo11n.pt or its export)")
        args = _literal(meta.get("args", {}))
        imgsz = _literal(meta.get("imgsz", [640, 640]))
        imgsz = (int(imgsz), int(imgsz)) if isinstance(imgsz, (int, str)) else (int(imgsz[0]), int(imgsz[-1]))
        names = {int(k): str(v) for k, v in _literal(meta.get("names", {})).items()}
        end2end = str(meta.get("end2end", args.get("nms", False))).lower() == "true"
        return cls(imgsz=imgsz, names=names, stride=int(meta.get("stride", 32)), batch=int(meta.get("batch", 1)),
                   dynamic=bool(args.get("dynamic", meta.get("dynamic", False))), end2end=end2end)


def _literal(value):
    """ONNX metadata holds Python reprs (``"{0: 'person'}"``); YAML metadata is already parsed."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def thread_budget(threads: int = 0) -> int:
    """Threads the runtime may use: the setting, else every core this process may run on."""
    return threads if threads > 0 else len(os.sched_getaffinity(0))


# --- runtimes: each takes a uint8 BGR NHWC batch (the letterboxed images), returns the model's first output -----------

class _OpenVinoRuntime:
    """Compiled once per input shape, on first use (or ahead, by :meth:`ObjectDetector.prepare`).

    A fixed-shape export is refitted to each frame shape where its graph allows (:mod:`smartcrop.detector.refit`),
    else served at its own shape; a dynamic one compiles once for every shape."""

    def __init__(self, xml: Path, device: str, threads: int, stride: int = 32):
        try:
            import openvino as ov
        except ImportError:
            raise ModelError(f"detector model {xml.parent} is an OpenVINO IR but openvino is not installed "
                             f"(pip install openvino)") from None
        self.core = ov.Core()
        self.source = xml
        self.target = _openvino_device(device, self.core.available_devices, xml)
        # Throughput streams: the frames of a batch run side by side, one per stream, which on a few cores beats one
        # image at a time over all of them (about 30 ms against 45 ms per 640x640 frame on 2 cores).
        self.config: dict = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if self.target == "CPU":
            self.config["INFERENCE_NUM_THREADS"] = threads
        cache = openvino_cache()
        if cache is not None:  # the compiled model is kept, keyed by device, config and the model itself (a read
            self.config["CACHE_DIR"] = str(cache)  # model, not a path: new weights at the same path are not stale)
        try:
            self.model = self.core.read_model(str(xml))
        except RuntimeError as exc:
            raise ModelError(f"cannot load detector model {xml}: {exc}".splitlines()[0]) from exc
        shape = self.model.input(0).get_partial_shape()  # N, C, H, W as exported
        self.dynamic = shape[2].is_dynamic or shape[3].is_dynamic
        self.batch_dynamic = shape[0].is_dynamic
        self.fixed = None if self.dynamic else (shape[2].get_length(), shape[3].get_length())
        self.stride, self.refits = stride, False
        if not self.dynamic:
            from smartcrop.detector.refit import refit

            try:  # on a copy, at the export's own shape: does this graph hold what refitting expects?
                refit(self.model.clone(), *self.fixed, stride=stride)
                self.refits = True
            except RefitError as exc:
                log.info("detector model %s runs at its fixed input %s: %s", xml, self.fixed, exc)
        self._compiled: OrderedDict = OrderedDict()  # shape -> (compiled model, request queue), newest last
        self._compiling = threading.Lock()

    def compiled(self, shape: tuple[int, int]):
        """The compiled model and its request queue for (h, w) input (one for every shape if the model is dynamic);
        a service keeps the ``COMPILED_SHAPES`` most recently used."""
        import openvino as ov

        key = None if self.dynamic else tuple(shape)
        with self._compiling:
            if key in self._compiled:
                self._compiled.move_to_end(key)
            else:
                while len(self._compiled) >= COMPILED_SHAPES:
                    self._compiled.popitem(last=False)  # a caller still inferring on it holds its own reference
                model = self.model.clone()
                if key is not None and key != self.fixed:
                    from smartcrop.detector.refit import refit

                    refit(model, *key, stride=self.stride)
                try:
                    compiled = self.core.compile_model(_with_image_input(model), self.target, self.config)
                except RuntimeError as exc:
                    raise ModelError(f"cannot load detector model {self.source}: {exc}".splitlines()[0]) from exc
                self._compiled[key] = (compiled, ov.AsyncInferQueue(compiled))
            return self._compiled[key]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``batch``: (N, H, W, 3) uint8 BGR. One request where the batch size is free, else one request per image
        across the streams."""
        compiled, queue = self.compiled(batch.shape[1:3])
        output = compiled.output(0)
        parts = [batch] if self.batch_dynamic else [batch[i:i + 1] for i in range(len(batch))]
        out: list = [None] * len(parts)

        def done(request, index):
            out[index] = request.get_tensor(output).data.copy()

        queue.set_callback(done)
        for index, part in enumerate(parts):
            queue.start_async({0: part}, index)
        queue.wait_all()
        return np.concatenate(out)


def _with_image_input(model):
    """The model with its input taken as uint8 BGR images, (N, H, W, 3), as the letterbox makes them.

    The channel swap, the layout change and the scaling to 0-1 then run inside the compiled graph, fused into its
    first layer, instead of as numpy passes over a float copy of the batch: 2-3 ms less per 640x640 frame on
    2 cores, with the same outputs to the bit."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    image = ppp.input()
    image.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    image.model().set_layout(ov.Layout("NCHW"))
    image.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
    return ppp.build()


def openvino_cache() -> Path | None:
    """``SMARTCROP_HOME/openvino``, where OpenVINO keeps compiled models (a cold load takes about 0.4 s instead of
    0.7-1.1 s on 2 cores); None where it cannot be written, and models are then compiled on every load."""
    folder = cache_home() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _openvino_device(device: str, available: list[str], source: Path) -> str:
    if device in ("", "cpu", "CPU"):
        return "CPU"
    wanted = device.upper().replace(":", ".")
    if wanted.startswith("CUDA"):
        raise ModelError(f"SMARTCROP_DEVICE={device}: an OpenVINO IR ({source.parent}) runs on CPU or an Intel GPU "
                         f"(SMARTCROP_DEVICE=gpu); for CUDA use an ONNX file or an official name such as yolo11n.pt")
    if wanted not in available and not (wanted == "GPU" and any(d.startswith("GPU") for d in available)):
        raise ModelError(f"SMARTCROP_DEVICE={device}: OpenVINO device {wanted} is not available "
                         f"(found {', '.join(available)}); install the GPU driver or use cpu")
    return wanted


class _OnnxRuntime:
    def __init__(self, path: Path, device: str, threads: int):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(f"detector model {path} is an ONNX file but onnxruntime is not installed "
                             f"(pip install onnxruntime, or onnxruntime-gpu for CUDA)") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = onnx_providers(device, ort.get_available_providers(), path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise ModelError(f"cannot load detector model {path}: {type(exc).__name__}: {exc}") from exc
        self.input = self.session.get_inputs()[0]
        shape = self.input.shape
        self.dynamic = not all(isinstance(d, int) for d in shape[2:])
        self.batch_dynamic = not isinstance(shape[0], int)
        self.refits = False  # a fixed-shape ONNX graph runs at its own shape, letterboxed
        self.meta = self.session.get_modelmeta().custom_metadata_map

    def compiled(self, shape: tuple[int, int]) -> None:
        """Nothing to do ahead: the session serves every shape it takes."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``batch``: (N, H, W, 3) uint8 BGR, converted here to the float RGB NCHW in 0-1 that the export expects."""
        batch = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)
        if self.batch_dynamic:
            return self.session.run(None, {self.input.name: batch})[0]
        return np.concatenate([self.session.run(None, {self.input.name: batch[i:i + 1]})[0]
                               for i in range(len(batch))])


def onnx_providers(device: str, available: list[str], source: Path) -> list:
    """Execution providers for ``SMARTCROP_DEVICE``: CPU by default; ``cuda:N`` needs onnxruntime-gpu's CUDA provider
    (TensorRT first where the build has it, its engines cached in ``SMARTCROP_HOME/models/trt``)."""
    if device in ("", "cpu", "CPU"):
        return ["CPUExecutionProvider"]
    match = re.fullmatch(r"cuda(?::(\d+))?", device.lower())
    if not match:
        raise ModelError(f"SMARTCROP_DEVICE={device}: an ONNX model runs on cpu or cuda:N")
    if "CUDAExecutionProvider" not in available:
        raise ModelError(f"SMARTCROP_DEVICE={device}: onnxruntime has no CUDAExecutionProvider (available: "
                         f"{', '.join(available)}); install onnxruntime-gpu with CUDA, or unset SMARTCROP_DEVICE "
                         f"to run {source.name} on the CPU")
    device_id = int(match.group(1) or 0)
    providers: list = []
    if "TensorrtExecutionProvider" in available:

        engines = cache_home() / "models" / "trt"
        engines.mkdir(parents=True, exist_ok=True)
        providers.append(("TensorrtExecutionProvider", {"device_id": device_id, "trt_fp16_enable": True,
                                                        "trt_engine_cache_enable": True,
                                                        "trt_engine_cache_path": str(engines)}))
    providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
    return providers + ["CPUExecutionProvider"]


# --- the detector ----------------------------------------------------------------------------------------------------

class ObjectDetector:
    """Batched YOLO inference on BGR images through an exported model (``SMARTCROP_DETECTOR_MODEL``)."""

    def __init__(self, model: str | Path, device: str = "", threads: int = 0, confidence: float = 0.25,
                 iou: float = IOU, max_det: int = MAX_DET, fit_input: bool = True):
        path = Path(model)
        self.name = str(model)
        self.confidence, self.iou, self.max_det = confidence, iou, max_det
        self.inference_seconds = 0.0
        threads = thread_budget(threads)
        if path.is_dir():
            xml = sorted(path.glob("*.xml"))
            if not xml:
                raise ModelError(f"detector model {path} is a folder without an OpenVINO .xml file")
            self.info = ModelInfo.from_metadata(_read_yaml(path / "metadata.yaml"), str(path))
            self.runtime = _OpenVinoRuntime(xml[0], device, threads, self.info.stride)
        elif path.suffix.lower() == ".xml":
            self.info = ModelInfo.from_metadata(_read_yaml(path.parent / "metadata.yaml"), str(path))
            self.runtime = _OpenVinoRuntime(path, device, threads, self.info.stride)
        elif path.suffix.lower() == ".onnx":
            self.runtime = _OnnxRuntime(path, device, threads)
            self.info = ModelInfo.from_metadata(self.runtime.meta, str(path))
        else:
            raise ModelError(f"detector model {path}: expected an OpenVINO model folder, an .xml or an .onnx file")
        # frames at their own aspect ratio where the model takes it; ``fit_input=False`` keeps the export's shape
        self.fits_input = self.runtime.dynamic or (fit_input and self.runtime.refits)
        self._lock = threading.Lock()  # one infer request / session call at a time; callers batch instead

    def __call__(self, images_bgr: list[np.ndarray]) -> list[FrameDetections]:
        if not images_bgr:
            return []
        started = time.perf_counter()
        shape = self._compiled_shape(images_bgr[0].shape[:2])
        batch = np.stack([letterbox(image, shape) for image in images_bgr])  # uint8 BGR; each runtime converts
        with self._lock:
            raw = self.runtime(batch)
        out = [self._decode(pred, shape, image.shape[:2]) for pred, image in zip(raw, images_bgr)]
        self.inference_seconds += time.perf_counter() - started
        return out

    def prepare(self, image_hw: tuple[int, int]) -> None:
        """Compile the model for images of this (h, w) now (a job calls it, in the background, once it knows its
        frame size), so the first batch does not wait for it."""
        self._compiled_shape(image_hw)

    def _compiled_shape(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The network input for images of this (h, w), compiled; a shape the graph refuses after all (it passed the
        check at load) makes this detector letterbox to the export's shape from then on, instead of failing."""
        shape = self.input_shape(image_hw)
        try:
            self.runtime.compiled(shape)
        except RefitError as exc:
            log.warning("detector model %s cannot be refitted to %s (%s); frames are letterboxed to %s", self.name,
                        shape, exc, self.info.imgsz)
            self.fits_input = False
            shape = self.input_shape(image_hw)
            self.runtime.compiled(shape)
        return shape

    def input_shape(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The network input (h, w): where the model takes other shapes (a dynamic export, or a fixed one that
        :mod:`smartcrop.detector.refit` fits), the frame's shape at the export's long side, each side rounded up to
        the stride (ultralytics' ``auto`` letterbox), so a 16:9 frame runs at 384x640; else the export's shape."""
        if not self.fits_input:
            return self.info.imgsz
        side = max(self.info.imgsz)
        r = min(side / image_hw[0], side / image_hw[1])
        s = self.info.stride
        return tuple(int(np.ceil(max(round(d * r), 1) / s) * s) for d in image_hw)

    def _decode(self, pred: np.ndarray, input_hw: tuple[int, int], image_hw: tuple[int, int]) -> FrameDetections:
        if self.info.end2end:  # (N, 6): x1, y1, x2, y2, score, class
            keep = pred[:, 4] > self.confidence
            xyxy, score, cls = pred[keep, :4].copy(), pred[keep, 4], pred[keep, 5].astype(int)
        else:  # (4 + nc, N): cx, cy, w, h, class scores
            scores = pred[4:]
            cls = scores.argmax(0)
            score = scores[cls, np.arange(scores.shape[1])]
            keep = np.flatnonzero(score > self.confidence)
            keep = keep[np.argsort(-score[keep], kind="stable")[:MAX_NMS]]
            cxcywh, score, cls = pred[:4, keep].T, score[keep], cls[keep]
            xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
            kept = nms(xyxy + cls[:, None] * _CLASS_OFFSET, score, self.iou)[:self.max_det]
            xyxy, score, cls = xyxy[kept], score[kept], cls[kept]
        xyxy = scale_boxes(xyxy, input_hw, image_hw)
        return FrameDetections(xyxy=xyxy.astype(np.float32), score=score.astype(np.float32), cls=cls.astype(int))


def letterbox(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize keeping the aspect ratio and pad centred with grey 114 to ``shape`` (h, w), as ultralytics' LetterBox."""
    import cv2

    h, w = image.shape[:2]
    r = min(shape[0] / h, shape[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (shape[1] - new_w) / 2, (shape[0] - new_h) / 2
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)


def scale_boxes(xyxy: np.ndarray, input_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """Letterboxed-input boxes back to the image's pixels, clipped to it (ultralytics' ``scale_boxes``)."""
    gain = min(input_hw[0] / image_hw[0], input_hw[1] / image_hw[1])
    new_h, new_w = (max(round(d * gain), 1) for d in image_hw)
    pad_x, pad_y = round((input_hw[1] - new_w) / 2 - 0.1), round((input_hw[0] - new_h) / 2 - 0.1)
    out = (xyxy - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / np.array(
        [new_w / image_hw[1], new_h / image_hw[0]] * 2, np.float32)
    return np.clip(out, 0, np.array([image_hw[1], image_hw[0]] * 2, np.float32))


def nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS over boxes sorted by descending score; returns kept indices, best first."""
    if not len(xyxy):
        return np.zeros(0, int)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        lt = np.maximum(xyxy[i, :2], xyxy[rest, :2])
        rb = np.minimum(xyxy[i, 2:], xyxy[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) <= iou]
    return np.asarray(keep, int)


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        meta = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"detector model {path.parent} has no metadata.yaml (export it with ultralytics, which "
                         f"writes the class names and input size there)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"cannot read {path}: expected a mapping of export metadata")
    return meta


# --- official names and .pt files: exported once, cached -------------------------------------------------------------

def export_format(device: str) -> str:
    """The fastest export this machine serves: OpenVINO on CPUs, ONNX (CUDA/TensorRT providers) for ``cuda:N``."""
    return "onnx" if device.lower().startswith("cuda") else "openvino"


def _is_official_name(value: str) -> bool:
    return os.sep not in value and not value.startswith(".") and value.lower().startswith("yolo") \
        and value.endswith(".pt")


def resolve_model(model: str, device: str = "") -> Path:
    """The exported file to serve for ``SMARTCROP_DETECTOR_MODEL``: an export as given, or the cached export of an
    official name / ``.pt`` file, made on first use: ``SMARTCROP_HOME/models/yolo11n_openvino_model`` for a name,
    ``<stem>-<sha256 prefix>_openvino_model`` (or ``.onnx``) for a file."""
    if not model:
        raise ModelError("SMARTCROP_DETECTOR_MODEL is empty: set it to a YOLO export (OpenVINO folder, .onnx) or "
                         "an official ultralytics name such as yolo11n.pt")
    path = Path(model)
    official = _is_official_name(model) and not path.exists()
    if not official and not path.exists():
        raise ModelError(f"detector model not found: {model} (set SMARTCROP_DETECTOR_MODEL to a YOLO export, a .pt "
                         f"file or an official ultralytics name such as yolo11n.pt)")
    if not official and path.suffix.lower() != ".pt":
        return path

    fmt = export_format(device)
    cache = cache_home() / "models"
    if official:
        key = path.stem
    else:
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        except OSError as exc:
            raise ModelError(f"cannot read detector model {model}: {exc}") from exc
        key = f"{path.stem}-{digest}"
    target = cache / (f"{key}_openvino_model" if fmt == "openvino" else f"{key}.onnx")  # names ultralytics reads too
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / f".{target.name}.lock"):
        if not target.exists():
            weights = cache / path.name if official else path
            export(weights, fmt, target)
    return target


def export(weights: Path, fmt: str, target: Path) -> Path:
    """Export a ``.pt`` detector with ultralytics (downloading an official name first) to ``target``.

    Dynamic input shape, so frames run at their own aspect ratio; float weights (int8 would need calibration data).
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install at runtime inside a service
    os.environ.setdefault("YOLO_VERBOSE", "false")
    log.info("exporting detector %s to %s (once; cached at %s)", weights, fmt, target)
    try:
        from ultralytics import YOLO
    except ImportError:
        raise ModelError(f"detector model {weights} is a .pt file: exporting it needs ultralytics "
                         f"(pip install ultralytics), or set SMARTCROP_DETECTOR_MODEL to an export") from None
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        staged = Path(work) / weights.name  # ultralytics writes the export beside the weights
        try:
            if not weights.exists():
                YOLO(str(weights), task="detect")  # an official name: ultralytics downloads it to this path
            shutil.copyfile(weights, staged)
            yolo = YOLO(str(staged), task="detect")
        except Exception as exc:  # ultralytics raises many types for missing/unreadable weights
            raise ModelError(f"cannot load detector model {weights.name}: {type(exc).__name__}: {exc}") from exc
        if yolo.task != "detect":
            raise ModelError(f"detector model {weights.name} is a '{yolo.task}' model; a detect model is needed")
        try:
            made = Path(yolo.export(format=fmt, dynamic=True, imgsz=640, device="cpu", verbose=False))
        except Exception as exc:
            raise ModelError(f"cannot export detector model {weights.name} to {fmt}: {type(exc).__name__}: "
                             f"{exc}") from exc
        made.replace(target)
    return target


class _file_lock:
    """An exclusive lock file, so two processes sharing a cache export a model once."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import fcntl

        self.handle = self.path.open("w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.handle.close()


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
def load_detector(model: str, device: str = "", threads: int = 0) -> ObjectDetector:
    """One loaded model per process: services keep it warm between jobs."""
    log.info("loading detector model %s", model)
    return ObjectDetector(resolve_model(model, device), device, threads)
