"""Refitting a fixed-shape YOLO IR to the frame's shape: the anchors it recomputes, the graphs it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from smartcrop.detector.models import ObjectDetector
from smartcrop.detector.refit import RefitError, anchor_grid, refit
from tests.conftest import SHARED

OPENVINO = SHARED / "models" / "yolo11n_int8_openvino_model"


def shared_ir():
    xml = sorted(OPENVINO.glob("*.xml"))
    if not xml:
        pytest.fail(f"model missing: {OPENVINO} (set SMARTCROP_SHARED)")
    import openvino as ov

    return ov.Core().read_model(str(xml[0]))


def test_anchor_grid_is_cell_centres_level_by_level_row_by_row():
    points, strides = anchor_grid(64, 96, (8, 16, 32))
    assert points.shape == (1, 2, 8 * 12 + 4 * 6 + 2 * 3) and strides.shape == (1, 1, 126)
    assert points[0, :, 0].tolist() == [0.5, 0.5] and points[0, :, 1].tolist() == [1.5, 0.5]
    assert points[0, :, 12].tolist() == [0.5, 1.5]  # the second row of the stride-8 level
    assert points[0, :, 96].tolist() == [0.5, 0.5] and strides[0, 0, 95:97].tolist() == [8, 16]
    assert points[0, :, -1].tolist() == [2.5, 1.5] and strides[0, 0, -1] == 32


def test_the_grid_of_the_export_shape_is_the_one_in_the_shared_ir():
    model = shared_ir()
    points, strides = anchor_grid(640, 640, (8, 16, 32))
    found = [op.get_data() for op in model.get_ordered_ops()
             if op.get_type_name() == "Constant" and 8400 in op.get_output_shape(0)]
    assert any(np.array_equal(value, points) for value in found)
    assert any(np.array_equal(value, strides) for value in found)


def test_the_shared_ir_refits_to_a_16_9_frame():
    model = refit(shared_ir(), 384, 640)
    assert list(model.input(0).get_shape()) == [1, 3, 384, 640]
    assert list(model.output(0).get_shape()) == [1, 84, 80 * 48 + 40 * 24 + 20 * 12]


def test_a_free_batch_stays_free():
    import openvino as ov

    model = shared_ir()
    model.reshape({model.input(0): ov.PartialShape([-1, 3, 640, 640])})
    fitted = refit(model, 480, 640)
    assert fitted.input(0).get_partial_shape()[0].is_dynamic
    assert fitted.output(0).get_partial_shape()[-1].get_length() == 80 * 60 + 40 * 30 + 20 * 15


def test_sides_off_the_stride_and_graphs_without_a_yolo_head_are_refused():
    with pytest.raises(RefitError, match="multiples of the stride"):
        refit(shared_ir(), 360, 640)
    import openvino as ov
    from openvino import opset13 as ops

    image = ops.parameter([1, 3, 64, 64], ov.Type.f32)
    plain = ov.Model([ops.relu(image)], [image])
    with pytest.raises(RefitError, match="no anchor points"):
        refit(plain, 32, 64)


def test_a_graph_that_cannot_be_refitted_is_served_at_its_own_shape(monkeypatch):
    import smartcrop.detector.refit as module

    def refuse(model, height, width, stride=32):
        raise RefitError("not a graph this knows")

    monkeypatch.setattr(module, "refit", refuse)
    detector = ObjectDetector(OPENVINO)
    assert not detector.fits_input and detector.input_shape((360, 640)) == (640, 640)
    assert detector([np.zeros((360, 640, 3), np.uint8)])[0].score.shape == (0,)


def test_a_shape_the_graph_refuses_at_first_use_falls_back_to_the_letterbox(monkeypatch):
    """The check at load passed, but one frame shape fails to refit: that job still runs, letterboxed."""
    import smartcrop.detector.refit as module

    detector = ObjectDetector(OPENVINO)
    assert detector.fits_input
    real = module.refit

    def refuse_wide(model, height, width, stride=32):
        if (height, width) != (640, 640):
            raise RefitError("this shape fails shape inference")
        return real(model, height, width, stride=stride)

    monkeypatch.setattr(module, "refit", refuse_wide)
    image = np.zeros((360, 640, 3), np.uint8)
    assert detector([image])[0].score.shape == (0,)
    assert not detector.fits_input and detector.input_shape((360, 640)) == (640, 640)


def test_a_service_keeps_the_most_recent_frame_shapes_compiled():
    from smartcrop.detector.models import COMPILED_SHAPES

    detector = ObjectDetector(OPENVINO)
    shapes = [(360, 640), (480, 640), (640, 360), (640, 640), (272, 640)]
    for height, width in shapes:
        assert detector([np.zeros((height, width, 3), np.uint8)])[0].score.shape == (0,)
    kept = list(detector.runtime._compiled)
    assert len(kept) == COMPILED_SHAPES
    assert kept[-1] == detector.input_shape(shapes[-1]) and detector.input_shape(shapes[0]) not in kept
