"""The deployment tools, installed on first use (tests/tools.py); one that cannot be installed fails the tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .. import tools


def _tool(install) -> Path:
    try:
        return install()
    except tools.ToolError as exc:
        pytest.fail(f"deployment test tool unavailable: {exc}")


@pytest.fixture(scope="session")
def kustomize() -> Path:
    return _tool(tools.kustomize)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _tool(tools.promtool)


@pytest.fixture(scope="session")
def compose_schema() -> Path:
    return _tool(tools.compose_schema)


def run_tool(*command) -> str:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
