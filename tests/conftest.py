"""Where the real test data lives: ``../shared`` beside the checkout (override with SMARTCROP_SHARED).

Tests that need a clip or a model fail loudly when it is missing; nothing is skipped quietly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMARTCROP_SHARED", REPO.parent / "shared")).resolve()
DEFAULT_TEST_MODEL = SHARED / "models" / "yolo11n_int8_openvino_model"

# The tests run offline: point the models at the shared files unless the caller chose others.
os.environ.setdefault("SMARTCROP_DETECTOR_MODEL", str(DEFAULT_TEST_MODEL))
os.environ.setdefault("SMARTCROP_FACE_MODEL", str(SHARED / "models" / "face_detection_yunet_2026may.onnx"))
os.environ.setdefault("SMARTCROP_LANDMARK_MODEL", str(SHARED / "models" / "face_landmarker.task"))
os.environ.setdefault("YOLO_OFFLINE", "1")


def shared_media(name: str) -> Path:
    path = SHARED / "media" / name
    if not path.is_file():
        pytest.fail(f"test clip missing: {path} (set SMARTCROP_SHARED to the folder holding media/ and models/)")
    return path


def shared_speakers(name: str) -> Path:
    """A labelled conversation (``<name>.mp4`` or its ``<name>.json`` labels) from ``../shared/speakers``."""
    path = SHARED / "speakers" / name
    if not path.is_file():
        pytest.fail(f"labelled clip missing: {path} (set SMARTCROP_SHARED to the folder holding speakers/)")
    return path


@pytest.fixture(scope="session")
def detector_model() -> str:
    model = os.environ["SMARTCROP_DETECTOR_MODEL"]
    if not Path(model).exists():
        pytest.fail(f"detector model missing: {model} (set SMARTCROP_DETECTOR_MODEL or SMARTCROP_SHARED)")
    return model


@pytest.fixture
def clip():
    return shared_media
