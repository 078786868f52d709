"""The real local stack (Kafka in KRaft mode + MinIO), started once per test session, and the four services.

Each session uses its own topic prefix and consumer groups, so it never shares work with services started by
``smartcrop stack up --with-services`` or by another checkout.
"""

from __future__ import annotations

import contextlib
import json
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

from smartcrop import stack
from smartcrop.core.events import TracksReady
from smartcrop.core.job import parse_job
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.gateway.keys import hash_key
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
    from smartcrop.core.events import JobRequested, JobState, JobStatus, encode_event
    from smartcrop.core.job import parse_job
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


def wait_until_ready(url: str, process: subprocess.Popen, log_path: Path, what: str, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail with the tail of the log when the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} not ready: {log_path.read_text()[-3000:]}"
        time.sleep(0.3)


MEDIA = MediaInfo(width=1280, height=720, display_width=1280, display_height=720, rotation=0, sample_aspect=1.0,
                  fps=25.0, duration=9.0, frame_count=225, video_codec="h264", has_audio=True, audio_codec="aac")


def tracks_ready(job_id: str) -> TracksReady:
    """A planner input that no stage can act on: for runtimes whose handler only reports back."""
    job = parse_job({"query": {"source": "s3://127.0.0.1:1/none/clip.mp4", "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1}]}}, job_id=job_id)
    return TracksReady(job=job, media=MEDIA, source_uri="s3://127.0.0.1:1/none/src.mp4", tracks_uri="s3://x/t.avro")


def a_job(source: str, job_id: str, **fmt) -> dict:
    """A job document with one 9:16 smart-crop MP4 format; ``fmt`` adds or overrides format fields."""
    return {"query": {"job_id": job_id, "source": source, "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1, **fmt}]}}


def smartcrop_cli(settings: Settings, stack_env: dict[str, str], *args: str,
                  timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartcrop", *args], env=service_env(settings, stack_env),
                          capture_output=True, text=True, timeout=timeout)


def final_status(settings: Settings, job_id: str, timeout: float = 300):
    """The job's last status, which must be final (completed, failed or cancelled) within ``timeout``."""
    from smartcrop.runtime.kafka import follow_status

    statuses = list(follow_status(settings, job_id, wait=True, timeout=timeout))
    assert statuses and statuses[-1].status.is_final, f"job {job_id} did not finish in {timeout}s"
    return statuses[-1]


def committed_messages(settings: Settings, topic: str, job_id: str | None = None, timeout: float = 120) -> list:
    """Every committed message of a topic (optionally one job's), raw, oldest first, read to the topic's end."""
    from smartcrop.runtime.kafka import read_topic

    started = time.monotonic()
    messages = list(read_topic(settings, topic, follow=False, key=job_id, timeout=timeout))
    assert time.monotonic() - started < timeout, f"could not read {settings.topic(topic)} to its end"
    return messages


def committed_events(settings: Settings, topic: str, job_id: str | None = None) -> list:
    """Every committed event on a topic (optionally one job's), as a read_committed consumer sees them; raw messages
    for the dead-letter topic."""
    from smartcrop.core.avro import SerdeError
    from smartcrop.core.events import decode_event

    messages = committed_messages(settings, topic, job_id)
    if topic == "dlq":
        return messages
    events = []
    for message in messages:
        try:
            events.append(decode_event(message.value()))
        except SerdeError:  # a poison message some test put there: not an event of ours
            pass
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


def submit(settings: Settings, stack_env: dict[str, str], job: dict, tmp_path: Path,
           timeout: float = 300) -> tuple[dict, dict]:
    """``smartcrop submit --wait`` as a user runs it: its first and last printed lines, the last with the exit code."""
    path = tmp_path / f"job-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(job))
    result = subprocess.run([sys.executable, "-m", "smartcrop", "submit", str(path), "--wait", "--timeout",
                             str(timeout)], env=service_env(settings, stack_env), capture_output=True, text=True,
                            timeout=timeout + 60)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no output from submit: {result.stderr[-2000:]}"
    return lines[0], {**lines[-1], "exit_code": result.returncode}


# The gateway's keys: a client's API key, an operator key, and the client's webhook secret.
API_KEY = "test-" + uuid.uuid4().hex
OPERATOR_KEY = "ops-" + uuid.uuid4().hex
WEBHOOK_SECRET = uuid.uuid4().hex


@pytest.fixture(scope="module")
def gateway(settings, stack_env, services, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    env = {**service_env(settings, stack_env), "SMARTCROP_GATEWAY_HOST": "127.0.0.1",
           "SMARTCROP_GATEWAY_PORT": str(port), "SMARTCROP_GATEWAY_API_KEYS": f"tests:{hash_key(API_KEY)}:"
           f"{WEBHOOK_SECRET},ops:{hash_key(OPERATOR_KEY)}::operator",
           "SMARTCROP_ALLOWED_NETWORKS": "127.0.0.1/32", "SMARTCROP_GATEWAY_RATE_LIMIT": "200",
           "SMARTCROP_GATEWAY_RATE_BURST": "400", "SMARTCROP_GATEWAY_MAX_BODY_BYTES": "65536"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "smartcrop", "serve", "gateway"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{url}/readyz", process, log_path, "gateway")
    yield type("Gateway", (), {"url": url, "log": log_path, "process": process})
    process.terminate()
    process.wait(30)
