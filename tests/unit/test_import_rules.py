"""The import rules of the README's code map hold, cover every package, and catch a change that breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ..conftest import REPO

PACKAGE = REPO / "services" / "smartcrop"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contracts, on the ``smartcrop`` package found under ``package_parent``."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)"
    return subprocess.run([str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def layered_modules() -> set[str]:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in contracts if contract["type"] == "layers"]
    return {name.strip() for layer in layers for name in layer.split("|")}


def test_the_package_keeps_every_import_rule():
    result = lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_every_module_of_the_package_sits_in_a_layer():
    top_level = {f"smartcrop.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    top_level |= {f"smartcrop.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    assert top_level == layered_modules()


@pytest.mark.parametrize("module, line, broken", [
    ("core/job.py", "from smartcrop.runtime import config", "Imports point down"),
    ("detector/stage.py", "from smartcrop.encoder import stage", "Imports point down"),
    ("planner/path.py", "import confluent_kafka", "know no transport"),
    ("core/framedata.py", "import av", "loads no media or model library"),
    ("core/errors.py", "from smartcrop.core import events", "No import cycles"),
])
def test_a_change_that_breaks_a_rule_fails(tmp_path, module, line, broken):
    shutil.copytree(PACKAGE, tmp_path / "smartcrop", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "smartcrop" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout.split("Broken contracts", 1)[1]
