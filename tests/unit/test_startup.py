"""Start-up stays light: the everyday commands never import a model runtime, inference never imports torch, and
models load in the background."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from smartcrop.core.errors import ModelError
from smartcrop.detector.stage import Preloaded, preloaded
from tests.conftest import REPO

HEAVY = ("torch", "ultralytics", "openvino", "onnxruntime", "mediapipe", "cv2", "torchvision")

PROBE = """
import json, sys
from smartcrop.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("\\nLOADED " + json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded_after(*argv: str, **env: str) -> list[str]:
    """Runs ``smartcrop argv`` in a fresh interpreter and lists the heavy modules it imported."""
    environment = {**os.environ, "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}", **env}
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                            timeout=120, env=environment)
    line = [row for row in result.stdout.splitlines() if row.startswith("LOADED ")]
    assert line, (result.stdout, result.stderr)
    return json.loads(line[-1][len("LOADED "):])


def test_help_imports_no_model_runtime():
    for argv in (["--help"], ["run", "--help"], ["status", "--help"], ["submit", "--help"], ["serve", "--help"]):
        assert loaded_after(*argv) == [], argv


def test_status_imports_no_model_runtime():
    """A real status query (here against a closed port, so it fails after reaching Kafka's client)."""
    assert loaded_after("status", "job-0", SMARTCROP_KAFKA_BOOTSTRAP="127.0.0.1:9") == []


def test_the_probe_sees_a_heavy_import():
    """The check above can fail: importing the detector's runtime shows up."""
    environment = {**os.environ, "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}"}
    script = PROBE.format(heavy=HEAVY).replace("from smartcrop.cli import main",
                                               "from smartcrop.cli import main\nimport onnxruntime")
    result = subprocess.run([sys.executable, "-c", script, "--help"], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert '"onnxruntime"' in result.stdout


def test_inference_imports_neither_torch_nor_ultralytics(detector_model):
    """The lean path: loading the shared export and detecting on a frame leaves torch and ultralytics unloaded."""
    environment = {**os.environ, "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}"}
    script = ("import sys, json, numpy as np\n"
              "from smartcrop.detector.models import load_detector\n"
              f"found = load_detector({detector_model!r})([np.full((360, 640, 3), 120, np.uint8)])\n"
              "assert len(found) == 1\n"
              "print(json.dumps(sorted(m for m in ('torch', 'torchvision', 'ultralytics') if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_tracking_imports_neither_torch_nor_ultralytics():
    """The run path's modules plus a tracked two-shot timeline leave torch and ultralytics unloaded."""
    environment = {**os.environ, "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}"}
    script = ("import sys, json\n"
              "import smartcrop.pipeline\n"
              "from smartcrop.tracker.stage import track_objects, add_features\n"
              "from tests.unit.scenes import Scene, Subject, person\n"
              "scene = Scene([Subject(1, lambda f: person(300 + 8 * f)), Subject(2, person(1500))], frames=20, "
              "cuts=[10])\n"
              "tracked = add_features(track_objects(scene.tracks(), scene.fps))\n"
              "ids = tracked.boxes.track_id\n"
              "assert len(set(ids.tolist())) == 4, ids  # two people in each of two shots\n"
              "print(json.dumps(sorted(m for m in ('torch', 'torchvision', 'ultralytics') if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_models_load_in_the_background_and_errors_reach_the_first_call():
    started, release = threading.Event(), threading.Event()

    def load():
        started.set()
        release.wait(30)
        return lambda value: value * 2

    model = Preloaded(load)
    assert started.wait(30), "loading began before the model was first used"
    release.set()
    assert model(3) == 6 and model(4) == 8

    def broken():
        raise ModelError("detector model not found: x.onnx")

    with pytest.raises(ModelError, match="x.onnx"):
        Preloaded(broken)(1)


def test_a_model_is_prepared_for_the_frame_size_once_loaded_without_the_caller_waiting():
    release, prepared = threading.Event(), threading.Event()

    class Model:
        shapes: list = []

        def prepare(self, shape):
            self.shapes.append(shape)
            prepared.set()

        def __call__(self, value):
            return value

    def load():
        release.wait(30)
        return Model()

    model = Preloaded(load)
    model.prepare((384, 640))  # returns at once, while the load still runs
    assert not prepared.is_set()
    release.set()
    assert prepared.wait(30) and Model.shapes == [(384, 640)]
    assert model(7) == 7

    def broken():
        raise ModelError("detector model not found: y.onnx")

    failing = Preloaded(broken)
    failing.prepare((384, 640))  # a failed load is the first call's to report, not the preparation's
    with pytest.raises(ModelError, match="y.onnx"):
        failing(1)


def test_a_process_loads_each_model_once_and_retries_a_failed_load():
    """The embedded run starts the load before the detector stage asks for it: both get the same load; a load that
    failed is started again by the next caller."""
    loads = []

    def load():
        loads.append(1)
        return lambda value: value + len(loads)

    key = ("test model", object())
    first, second = preloaded(key, load), preloaded(key, load)
    assert first is second and first(1) == 2 and len(loads) == 1

    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ModelError("download failed")
        return lambda value: -value

    key = ("flaky model", object())
    with pytest.raises(ModelError, match="download failed"):
        preloaded(key, flaky)(1)
    assert preloaded(key, flaky)(5) == -5 and len(attempts) == 2


def test_a_shared_model_counts_inference_from_its_load_on():
    """Jobs share the process's model: each counts the difference of ``inference_seconds`` over its own run, and a
    model that had already inferred before it was handed over starts from zero."""
    class Model:
        inference_seconds = 5.0  # spent before this load (an lru-cached detector used elsewhere)

        def __call__(self, images):
            return []

    model = Model()
    shared = preloaded(("counted model", object()), lambda: model)
    assert shared([]) == []  # waits for the load
    assert shared.inference_seconds() == 0.0
    start = shared.inference_seconds()
    model.inference_seconds += 1.5  # one job's inference
    assert shared.inference_seconds() - start == 1.5


def test_the_stages_import_without_scipy_s_solvers():
    """``scipy.optimize`` alone takes about half a second to import, ``scipy.ndimage`` 0.2 s: the path solver, the
    track assignment and the planner's smoothing import them when they first run, so a run starts decoding (and its
    model loading) without waiting for them."""
    environment = {**os.environ, "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}"}
    script = ("import json, sys\n"
              "import smartcrop.pipeline, smartcrop.detector.stage, smartcrop.tracker.stage, smartcrop.planner.stage\n"
              "import smartcrop.encoder.stage\n"
              "heavy = ('scipy.optimize', 'scipy.sparse', 'scipy.ndimage', 'torch')\n"
              "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
