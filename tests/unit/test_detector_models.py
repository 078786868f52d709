"""Loading detector exports: clear ``model_unavailable`` errors, metadata, letterbox and NMS helpers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from smartcrop.core.errors import ModelError
from smartcrop.detector.models import ObjectDetector, letterbox, load_detector, nms, resolve_model, scale_boxes
from tests.conftest import SHARED

OPENVINO = SHARED / "models" / "yolo11n_int8_openvino_model"
ONNX = SHARED / "models" / "yolov8n_int8.onnx"


def shared(path):
    if not path.exists():
        pytest.fail(f"model missing: {path} (set SMARTCROP_SHARED)")
    return path


def error_of(call) -> str:
    with pytest.raises(ModelError) as caught:
        call()
    assert caught.value.code == "model_unavailable"
    return str(caught.value)


def test_missing_file_is_named(tmp_path):
    message = error_of(lambda: resolve_model(str(tmp_path / "nope.onnx")))
    assert "nope.onnx" in message and "not found" in message
    assert "empty" in error_of(lambda: resolve_model(""))


def test_unreadable_onnx_is_named(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a graph")
    assert "broken.onnx" in error_of(lambda: ObjectDetector(bad))


def test_openvino_folder_problems_are_named(tmp_path):
    assert "without an OpenVINO .xml" in error_of(lambda: ObjectDetector(tmp_path))
    copy = tmp_path / "ir"
    shutil.copytree(shared(OPENVINO), copy)
    (copy / "metadata.yaml").unlink()
    assert "metadata.yaml" in error_of(lambda: ObjectDetector(copy))
    (copy / "yolo11n.bin").write_bytes(b"\0" * 16)
    (copy / "metadata.yaml").write_text("task: detect\n")
    assert "yolo11n.xml" in error_of(lambda: ObjectDetector(copy))


def test_a_segmentation_model_is_refused(tmp_path):
    copy = tmp_path / "seg_openvino_model"
    shutil.copytree(shared(OPENVINO), copy)
    meta = copy / "metadata.yaml"
    meta.write_text(meta.read_text().replace("task: detect", "task: segment"))
    message = error_of(lambda: ObjectDetector(copy))
    assert "'segment' model" in message and "seg_openvino_model" in message


def test_an_unavailable_device_is_named():
    assert "CUDAExecutionProvider" in error_of(lambda: ObjectDetector(shared(ONNX), device="cuda:0"))
    assert "ONNX file" in error_of(lambda: ObjectDetector(shared(OPENVINO), device="cuda:0"))
    assert "GPU" in error_of(lambda: ObjectDetector(shared(OPENVINO), device="gpu"))
    assert "cpu or cuda" in error_of(lambda: ObjectDetector(shared(ONNX), device="tpu"))


def test_metadata_of_both_exports():
    for path in (shared(ONNX), shared(OPENVINO)):
        detector = load_detector(str(path))
        assert detector.info.imgsz == (640, 640) and detector.info.stride == 32
        assert len(detector.info.names) == 80 and detector.info.names[0] == "person"
        assert not detector.runtime.dynamic  # exported at a fixed 640x640
        assert detector([]) == []
    # the IR's graph is refitted to each frame's shape (smartcrop.detector.refit); the fixed ONNX graph letterboxes
    onnx, ir = load_detector(str(ONNX)), load_detector(str(OPENVINO))
    assert not onnx.fits_input and onnx.input_shape((360, 640)) == (640, 640)
    assert ir.fits_input and ir.input_shape((360, 640)) == (384, 640) and ir.input_shape((576, 768)) == (480, 640)
    assert ir.input_shape((640, 360)) == (640, 384)  # an upright (rotated) phone clip
    square = ObjectDetector(OPENVINO, fit_input=False)
    assert not square.fits_input and square.input_shape((360, 640)) == (640, 640)


def test_letterbox_centres_and_scale_boxes_inverts_it():
    image = np.zeros((360, 640, 3), np.uint8)
    image[:] = 7
    boxed = letterbox(image, (640, 640))
    assert boxed.shape == (640, 640, 3)
    assert (boxed[:140] == 114).all() and (boxed[500:] == 114).all() and (boxed[140:500] == 7).all()
    box = np.array([[10, 140 + 20, 100, 140 + 200]], np.float32)
    assert np.allclose(scale_boxes(box, (640, 640), (360, 640)), [[10, 20, 100, 200]])
    small = letterbox(np.zeros((180, 320, 3), np.uint8), (384, 640))  # upscaled, then 12 px above and below
    assert small.shape == (384, 640, 3) and (small[:12] == 114).all() and (small[12:372] == 0).all()


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    score = np.array([0.5, 0.9, 0.4, 0.3], np.float32)
    assert nms(boxes, score, 0.7).tolist() == [1, 2]
    assert nms(boxes, score, 0.95).tolist() == [1, 0, 2]
    assert nms(boxes[:0], score[:0], 0.7).tolist() == []


def test_cuda_asks_for_tensorrt_then_cuda_on_the_chosen_gpu(tmp_path, monkeypatch):
    from smartcrop.detector.models import onnx_providers

    monkeypatch.setenv("SMARTCROP_HOME", str(tmp_path))
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = onnx_providers("cuda:1", gpu_build, ONNX)
    assert [p[0] if isinstance(p, tuple) else p for p in providers] == gpu_build
    assert providers[0][1]["device_id"] == 1 and providers[1][1] == {"device_id": 1}
    assert providers[0][1]["trt_engine_cache_path"] == str(tmp_path / "models" / "trt")
    assert onnx_providers("cuda", gpu_build[1:], ONNX) == [("CUDAExecutionProvider", {"device_id": 0}),
                                                          "CPUExecutionProvider"]
    assert onnx_providers("", gpu_build, ONNX) == ["CPUExecutionProvider"]


def test_openvino_devices():
    from smartcrop.detector.models import _openvino_device

    assert _openvino_device("", ["CPU"], OPENVINO / "yolo11n.xml") == "CPU"
    assert _openvino_device("gpu", ["CPU", "GPU.0"], OPENVINO / "yolo11n.xml") == "GPU"
    assert _openvino_device("gpu:0", ["CPU", "GPU.0"], OPENVINO / "yolo11n.xml") == "GPU.0"
    with pytest.raises(ModelError, match="GPU.1 is not available"):
        _openvino_device("gpu:1", ["CPU", "GPU.0"], OPENVINO / "yolo11n.xml")


def test_an_openvino_model_is_compiled_once_into_smartcrop_home_and_loads_from_there_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTCROP_HOME", str(tmp_path))
    image = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    first = ObjectDetector(shared(OPENVINO))
    a = first([image])[0]  # compiled on first use, for this frame shape
    blobs = sorted((tmp_path / "openvino").glob("*.blob"))
    assert blobs, "the compiled model is kept"
    again = ObjectDetector(OPENVINO)
    again.prepare(image.shape[:2])
    assert sorted((tmp_path / "openvino").glob("*.blob")) == blobs, "the second load reads it instead of adding one"
    b = again([image])[0]
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.score, b.score)


def test_a_home_that_cannot_be_written_only_costs_the_cache(tmp_path, monkeypatch):
    from smartcrop.detector.models import openvino_cache

    home = tmp_path / "home"
    home.write_text("a file where the folder would be")
    monkeypatch.setenv("SMARTCROP_HOME", str(home))
    assert openvino_cache() is None
    assert ObjectDetector(shared(OPENVINO))([np.zeros((360, 640, 3), np.uint8)])[0].score.shape == (0,)
