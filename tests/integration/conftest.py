"""The real local stack (Kafka in KRaft mode + MinIO), started once per test session, and the four services.

Each session uses its own topic prefix and consumer groups, so it never shares work with services started by
``smartcrop stack up --with-services`` or by another checkout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from smartcrop.runtime import stack
from smartcrop.runtime.config import TOPICS, Settings
from smartcrop.runtime.kafka import admin_client, ensure_topics
from smartcrop.runtime.storage import S3Storage


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    stack.up(echo=lambda message: print(message, file=sys.stderr))
    return stack.stack_env()


@pytest.fixture(scope="session")
def settings(stack_env) -> Settings:
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    settings = replace(Settings.from_env(), kafka_bootstrap=stack_env["SMARTCROP_KAFKA_BOOTSTRAP"],
                       s3_endpoint=stack_env["SMARTCROP_S3_ENDPOINT"],
                       s3_access_key=stack_env["SMARTCROP_S3_ACCESS_KEY"],
                       s3_secret_key=stack_env["SMARTCROP_S3_SECRET_KEY"],
                       secret_key=stack_env["SMARTCROP_SECRET_KEY"], topic_prefix=prefix)
    ensure_topics(settings, partitions=3)
    yield settings
    admin_client(settings).delete_topics([settings.topic(name) for name in TOPICS])


@pytest.fixture(scope="session")
def storage(settings) -> S3Storage:
    store = S3Storage.from_settings(settings)
    store.ensure_bucket()
    return store


def service_env(settings: Settings, stack_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **stack_env, "SMARTCROP_TOPIC_PREFIX": settings.topic_prefix, "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Services:
    def __init__(self, settings: Settings, stack_env: dict[str, str], log_dir: Path):
        self.settings, self.stack_env, self.log_dir = settings, stack_env, log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, stage: str | None = None) -> None:
        stage = stage or name
        port = _free_port()
        log = open(self.log_dir / f"{name}.log", "ab")
        env = {**service_env(self.settings, self.stack_env), "SMARTCROP_METRICS_PORT": str(port),
               "SMARTCROP_INSTANCE_ID": f"{name}-{uuid.uuid4().hex[:6]}"}
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "smartcrop", "serve", stage], env=env,
                                                stdout=log, stderr=subprocess.STDOUT)
        self.ports[name] = port

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            while True:
                if self.processes[name].poll() is not None:
                    raise AssertionError(f"{name} exited: {self.log(name)[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not ready after {timeout}s: {self.log(name)[-3000:]}")
                time.sleep(0.5)

    def metrics(self, name: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/metrics", timeout=5) as response:
            return response.read().decode()

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def services(settings, stack_env, detector_model, tmp_path_factory):
    running = Services(settings, stack_env, tmp_path_factory.mktemp("service-logs"))
    for name in ("detector", "tracker", "planner", "encoder"):
        running.start(name)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
