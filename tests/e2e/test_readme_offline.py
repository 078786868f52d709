"""The README's offline demo command, run as written on what a fresh machine has: no SMARTCROP_* variables but the
ones the command sets, an empty SMARTCROP_HOME (no downloaded models), and a fresh HOME."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from smartcrop.media.probe import probe
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def offline_command() -> tuple[dict[str, str], list[str]]:
    """The one ``sh`` block of the README that sets SMARTCROP_DETECTOR_MODEL for ``make demo``: its variables and
    its command."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "SMARTCROP_DETECTOR_MODEL=" in b and "make demo" in b]
    words = shlex.split(block.replace("\\\n", " "), comments=True)
    variables: dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, value = ASSIGNMENT.match(words.pop(0)).groups()
        variables[name] = value
    return variables, words


def test_the_makefile_demo_is_smartcrop_demo():
    """``make demo`` is ``smartcrop demo --out demo-output`` from the venv, which the test below runs directly."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.*)$", makefile, re.M)
    assert recipe is not None and recipe[1].startswith("$(BIN)/smartcrop demo ")
    assert re.search(r"^OUT\s+\?=\s+demo-output$", makefile, re.M)


def test_the_readmes_offline_demo_command_works(tmp_path):
    variables, command = offline_command()
    assert command == ["make", "demo"]
    assert variables and all(name.startswith("SMARTCROP_") for name in variables), variables
    for name, value in variables.items():
        if not (REPO / value).exists():
            pytest.fail(f"{name}={value} in README.md does not exist relative to {REPO}: the shared models belong in "
                        f"../shared beside the checkout")
    home = tmp_path / "smartcrop-home"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
           "PYTHONPATH": str(REPO / "services"), "SMARTCROP_HOME": str(home), **variables}
    out = tmp_path / "demo-output"
    result = subprocess.run([sys.executable, "-m", "smartcrop", "demo", "--out", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"output:  {out / 'demo-9x16.mp4'}" in result.stdout.splitlines()
    video = probe(out / "demo-9x16.mp4")
    assert abs(video.display_width / video.display_height - 9 / 16) < 0.01 and video.frame_count > 100
    assert (out / "preview.png").stat().st_size > 0
    assert len(json.loads((out / "crop-path.json").read_text())["frames"]) == video.frame_count
    assert not list(home.rglob("*.onnx")) and not list(home.rglob("*.task")), "a model was downloaded"
