"""``smartcrop stack``: status as JSON, env lines, and idempotent ``up`` against the running stack."""

import json
import subprocess
import sys

import pytest

from smartcrop import stack

pytestmark = pytest.mark.integration


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartcrop", *args], capture_output=True, text=True, timeout=300)


def test_status_json_names_every_component_with_up_and_pid(stack_env):
    result = run_cli("stack", "status", "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert set(state) >= {"kafka", "minio", "detector", "tracker", "planner", "encoder"}
    for name in ("kafka", "minio"):
        assert state[name]["up"] is True and isinstance(state[name]["pid"], int)
    for entry in state.values():
        assert set(entry) == {"up", "pid"}
        assert entry["up"] == (entry["pid"] is not None)


def test_up_is_idempotent_and_keeps_the_running_processes(stack_env):
    before = stack.status()
    result = run_cli("stack", "up")
    assert result.returncode == 0, result.stderr
    after = stack.status()
    assert after["kafka"]["pid"] == before["kafka"]["pid"]
    assert after["minio"]["pid"] == before["minio"]["pid"]


def test_env_prints_export_lines_for_the_endpoints_and_credentials(stack_env):
    result = run_cli("stack", "env")
    lines = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert lines["SMARTCROP_KAFKA_BOOTSTRAP"] == stack_env["SMARTCROP_KAFKA_BOOTSTRAP"]
    assert lines["SMARTCROP_S3_ENDPOINT"].startswith("http://127.0.0.1:")
    assert lines["SMARTCROP_S3_ACCESS_KEY"] and lines["SMARTCROP_S3_SECRET_KEY"]
