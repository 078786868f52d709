"""``.pt`` models and official names: exported once with ultralytics, cached, then served by the lean path.

The hubs are unreachable here, so the weights are a YOLO11n built from its config (untrained): this shows the export,
the cache and the dynamic input shape, not accuracy (the parity test on real exports covers that).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import smartcrop.detector.models as models
from smartcrop.detector.models import ObjectDetector, resolve_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    YOLO("yolo11n.yaml", task="detect").save(str(path))  # built offline from the packaged config
    return path


def test_a_pt_file_is_exported_once_and_served_lean(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTCROP_HOME", str(tmp_path / "home"))
    served = resolve_model(str(weights))
    assert served.parent == tmp_path / "home" / "models"
    assert served.name.startswith("tiny-") and served.name.endswith("_openvino_model")
    assert {p.suffix for p in served.iterdir()} >= {".xml", ".bin", ".yaml"}
    assert not list(served.parent.glob(".export-*")), "the staging folder is cleaned up"

    detector = ObjectDetector(served)
    assert detector.runtime.dynamic and detector.runtime.batch_dynamic
    assert detector.input_shape((360, 640)) == (384, 640)  # a 16:9 frame runs at its own shape
    assert detector.input_shape((640, 480)) == (640, 480)
    found = detector([np.full((360, 640, 3), 90, np.uint8)] * 3)
    assert len(found) == 3 and all(f.xyxy.shape[1] == 4 for f in found)

    def no_second_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(models, "export", no_second_export)
    moved = tmp_path / "other" / "tiny.pt"  # the same weights in another place: the same cache entry
    moved.parent.mkdir()
    shutil.copyfile(weights, moved)
    assert resolve_model(str(weights)) == served
    assert resolve_model(str(moved)) == served


def test_an_official_name_is_exported_to_its_cached_name(weights, tmp_path, monkeypatch):
    """A name already downloaded into the cache (as ultralytics would have) is exported beside it, once."""
    cache = tmp_path / "home" / "models"
    cache.mkdir(parents=True)
    shutil.copyfile(weights, cache / "yolo11n.pt")
    monkeypatch.setenv("SMARTCROP_HOME", str(tmp_path / "home"))
    served = resolve_model("yolo11n.pt")
    assert served == cache / "yolo11n_openvino_model"
    assert ObjectDetector(served).info.names[0] == "0"  # the untrained config's class names
    monkeypatch.setattr(models, "export", lambda *a: pytest.fail("exported again"))
    assert resolve_model("yolo11n.pt") == served
