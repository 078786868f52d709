"""The real local stack (Kafka in KRaft mode + MinIO), started once per test session, and the four services.

Each session uses its own topic prefix and consumer groups, so it never shares work with services started by
``smartcrop stack up --with-services`` or by another checkout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator

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


@pytest.fixture(scope="session")
def uploaded_clip(storage) -> str:
    """A real 9 s 720p talking-head clip in the session's object store."""
    from ..conftest import shared_media

    name = "A_man_talking_restaurant_720p_visualvoice.mp4"
    return storage.put_file(f"inputs/{name}", shared_media(name))


def service_env(settings: Settings, stack_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **stack_env, "SMARTCROP_TOPIC_PREFIX": settings.topic_prefix, "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Services:
    """Service processes of one test session (or one fault-test stack), each with its own metrics port and log."""

    def __init__(self, settings: Settings, stack_env: dict[str, str], log_dir: Path,
                 extra_env: dict[str, str] | None = None):
        self.settings, self.stack_env, self.log_dir = settings, stack_env, log_dir
        self.extra_env = extra_env or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, stage: str | None = None) -> None:
        """Start (or restart, as a new instance with a new id) the service called ``name``."""
        stage = stage or name.split("-")[0]
        port = free_port()
        log = open(self.log_dir / f"{name}.log", "ab")
        env = {**service_env(self.settings, self.stack_env), **self.extra_env, "SMARTCROP_METRICS_PORT": str(port),
               "SMARTCROP_INSTANCE_ID": f"{name}-{uuid.uuid4().hex[:6]}"}
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "smartcrop", "serve", stage], env=env,
                                                stdout=log, stderr=subprocess.STDOUT)
        self.ports[name] = port

    def kill(self, name: str) -> None:
        """``kill -9``: no shutdown code runs, nothing is flushed or committed."""
        self.processes[name].kill()
        self.processes[name].wait(10)

    def ready(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for name in names or list(self.ports):
            while True:
                if self.processes[name].poll() is not None:
                    raise AssertionError(f"{name} exited: {self.log(name)[-3000:]}")
                if self.ready(name):
                    break
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


def publish_job(settings: Settings, document: dict, partition: int | None = None):
    """What an upstream system does: a ``queued`` status and a JobRequested keyed by job id."""
    from smartcrop.events import JobRequested, JobState, JobStatus, encode_event
    from smartcrop.job import parse_job
    from smartcrop.runtime.kafka import EventPublisher

    job = parse_job(document)
    publisher = EventPublisher(settings)
    publisher.publish(JobStatus(job.job_id, JobState.QUEUED, "submit", 0.0))
    if partition is None:
        publisher.publish(JobRequested(job=job))
    else:
        publisher.producer.produce(settings.topic("jobs"), key=job.job_id.encode(), partition=partition,
                                   value=encode_event(JobRequested(job=job), publisher.box))
    publisher.flush()
    return job


def committed_events(settings: Settings, topic: str, job_id: str | None = None) -> list:
    """Every committed event on a topic (optionally one job's), as a read_committed consumer sees them; raw messages
    for the dead-letter topic."""
    from smartcrop.events import decode_event
    from smartcrop.runtime.kafka import read_topic
    from smartcrop.runtime.serde import SerdeError

    events, started = [], time.monotonic()
    for message in read_topic(settings, topic, follow=False, key=job_id, timeout=60):
        if topic == "dlq":
            events.append(message)
            continue
        try:
            events.append(decode_event(message.value()))
        except SerdeError:  # a poison message some test put there: not an event of ours
            pass
    assert time.monotonic() - started < 60, f"could not read {settings.topic(topic)} to its end"
    return events


def cancelled_count(services: Services, stage: str = "detector") -> float:
    """Jobs the stage has reported cancelled so far (the session's services count across tests)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(services.metrics(stage)):
        for sample in family.samples:
            if sample.name == "smartcrop_messages_total" and sample.labels == {"stage": stage,
                                                                              "outcome": "cancelled"}:
                return sample.value
    return 0.0


@contextlib.contextmanager
def four_services(settings: Settings, stack_env: dict[str, str], log_dir: Path,
                  extra_env: dict[str, str] | None = None) -> Iterator[Services]:
    running = Services(settings, stack_env, log_dir, extra_env)
    for name in ("detector", "tracker", "planner", "encoder"):
        running.start(name)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def services(settings, stack_env, detector_model, tmp_path_factory):
    with four_services(settings, stack_env, tmp_path_factory.mktemp("service-logs")) as running:
        yield running
