"""A fixed-shape YOLO IR made to take another input shape, so a 16:9 frame runs at 384x640, not letterboxed to 640x640.

An export with a fixed input (such as an NNCF-quantised int8 IR) cannot simply be reshaped: its graph holds the
export's spatial sizes as constants. YOLOv8/11 detect graphs hold them in two places only: the target shapes of a
few ``Reshape`` nodes (the attention block of YOLO11 flattens its 20x20 map; the head flattens every level) and the
head's anchor points and strides, computed at export time for the export's grid. Both follow from the input shape
and the strides, so they are recomputed here, and the anchors are checked against the graph's own before anything
is replaced: a graph that does not hold what this expects is refused (:class:`RefitError`) and served at its fixed
shape instead. Convolutions, pooling, upsampling and the int8 quantisation parameters do not depend on the size.

Why it pays: the padding of a 640x640 letterbox around a 640x360 frame is 44 % of the pixels, and the network's
cost is proportional to the pixels: about 33 ms against 21 ms per frame on 2 AVX2 cores. The boxes agree with the
letterboxed ones as ultralytics' own rectangular (``auto``) letterbox agrees with its square one: the same people,
the same classes, corners within a few pixels (``tests/e2e/test_detector_parity.py``).
"""

from __future__ import annotations

import numpy as np


class RefitError(ValueError):
    """The graph is not a YOLO detect graph whose spatial constants this module knows how to recompute."""


def anchor_grid(height: int, width: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The head's anchor points (1, 2, N) in grid units (cell centres, x then y) and strides (1, 1, N), level by
    level and row by row, as ultralytics' ``make_anchors``."""
    points, levels = [], []
    for stride in strides:
        gy, gx = np.meshgrid(np.arange(height // stride) + 0.5, np.arange(width // stride) + 0.5, indexing="ij")
        points.append(np.stack([gx.ravel(), gy.ravel()]))
        levels.append(np.full(gx.size, stride))
    return (np.concatenate(points, axis=1)[None].astype(np.float32),
            np.concatenate(levels)[None, None].astype(np.float32))


def refit(model, height: int, width: int, stride: int = 32):
    """``model`` (an ``openvino.Model`` as read, NCHW float input, not yet compiled) changed in place to take
    (N, C, height, width) images, N and C as exported; returns it. Raises :class:`RefitError` if it cannot be done
    safely."""
    import openvino as ov
    from openvino import opset13 as ops

    shape = model.input(0).get_partial_shape()
    if shape.rank.is_dynamic or len(shape) != 4 or shape[2].is_dynamic or shape[3].is_dynamic:
        raise RefitError("the input is not a fixed (N, C, H, W) shape")
    batch, channels = shape[0], shape[1]  # the batch may be free; it stays as exported
    old_h, old_w = shape[2].get_length(), shape[3].get_length()
    strides = (stride // 4, stride // 2, stride)
    if any(side % stride for side in (height, width, old_h, old_w)):
        raise RefitError(f"input sides must be multiples of the stride {stride}")
    old_anchors, old_strides = anchor_grid(old_h, old_w, strides)
    new_anchors, new_strides = anchor_grid(height, width, strides)
    old_count, new_count = old_anchors.shape[-1], new_anchors.shape[-1]
    old_cells = {(old_h // s) * (old_w // s): (height // s) * (width // s) for s in strides}
    old_grids = {(old_h // s, old_w // s): [height // s, width // s] for s in strides}

    anchors_found = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant" and op.get_element_type() == ov.Type.f32 and old_count in op.get_output_shape(0):
            value = op.get_data()
            if value.shape == old_anchors.shape and np.array_equal(value, old_anchors):
                replacement = new_anchors
            elif value.shape == old_strides.shape and np.array_equal(value, old_strides):
                replacement = new_strides
            else:
                raise RefitError(f"constant {op.get_friendly_name()} {list(value.shape)} depends on the input size "
                                 f"in a way this does not know")
            anchors_found += 1
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(ops.constant(replacement).output(0))
        elif kind == "Reshape" and op.input_value(1).get_node().get_type_name() == "Constant":
            target = [int(v) for v in op.input_value(1).get_node().get_vector()]
            fitted = list(target)
            if len(fitted) == 4 and tuple(fitted[2:]) in old_grids:  # (N, C, H, W): a feature map again
                fitted[2:] = old_grids[tuple(fitted[2:])]
            if fitted and fitted[-1] == old_count:  # (…, anchors): the head's flattened levels
                fitted[-1] = new_count
            elif fitted and fitted[-1] in old_cells and len(fitted) > 2:  # (…, H·W): one level flattened
                fitted[-1] = old_cells[fitted[-1]]
            if fitted != target:
                op.input(1).replace_source_output(ops.constant(np.array(fitted, np.int64)).output(0))
    if anchors_found != 2:
        raise RefitError("no anchor points and strides of a YOLO detect head found")
    model.get_parameters()[0].set_partial_shape(ov.PartialShape([batch, channels, ov.Dimension(height),
                                                                    ov.Dimension(width)]))
    try:
        model.validate_nodes_and_infer_types()
    except RuntimeError as exc:
        raise RefitError(str(exc).splitlines()[0]) from exc
    out = model.output(0).get_partial_shape()
    if out.rank.is_dynamic or out[-1].is_dynamic or out[-1].get_length() != new_count:
        raise RefitError(f"the refitted graph gives {out}, not {new_count} anchors")
    return model
