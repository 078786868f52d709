"""Part D: the services over real Kafka and MinIO: throughput, job latency, and the cost of going distributed.

- Throughput: a batch of short jobs (2 s of a real 720p talking head, scaled to 360p) published at once, first with
  one instance of every stage, then with two detectors and two encoders (the heavy stages); jobs per minute and
  p50/p95 latency from publish to the ``completed`` status. The two set-ups alternate, ``reps`` times each.
- Overhead: one job at a time through warm services against ``smartcrop.pipeline.run_job`` in this (warm) process,
  on the same clips, alternating, ``reps`` times each.

The services run as processes on the local stack (``smartcrop stack up``) under a topic prefix of their own, so
nothing else consumes their topics.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks import common
from tests.clips import cut_clip

SHORT_SOURCE = "A_man_talking_restaurant_720p_visualvoice.mp4"
OVERHEAD_CLIPS = ("short", SHORT_SOURCE)
STAGES = ("detector", "tracker", "planner", "encoder")


@dataclass
class BatchResult:
    instances: dict[str, int]
    jobs: int
    wall_seconds: float
    latencies: list[float]

    @property
    def jobs_per_minute(self) -> float:
        return 60 * self.jobs / self.wall_seconds


@dataclass
class ServicesResult:
    batch_size: int
    batches: list[BatchResult] = field(default_factory=list)
    overhead: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # clip -> {"services", "embedded"}


def short_clip() -> Path:
    """2 s at 360p, made once from a real clip (cached beside the other benchmark artefacts)."""
    target = common.CACHE / "services-short-360p.mp4"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part.mp4")
        cut_clip(common.clip_path(SHORT_SOURCE), partial)
        partial.rename(target)
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceFleet:
    """The four stages as processes, ``instances`` of each, on one topic prefix."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.processes: dict[str, tuple[subprocess.Popen, int]] = {}

    def start(self, instances: dict[str, int]) -> None:
        for stage in STAGES:
            for index in range(instances.get(stage, 1)):
                name, port = f"{stage}-{index}", _free_port()
                log = open(self.log_dir / f"{name}.log", "ab")
                env = {**self.env, "SMARTCROP_METRICS_PORT": str(port), "SMARTCROP_INSTANCE_ID": f"bench-{name}"}
                process = subprocess.Popen([sys.executable, "-m", "smartcrop", "serve", stage], env=env,
                                           stdout=log, stderr=subprocess.STDOUT)
                self.processes[name] = (process, port)
        deadline = time.monotonic() + 180
        for name, (process, port) in self.processes.items():
            while not self._ready(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become ready; see {self.log_dir / (name + '.log')}")
                time.sleep(0.5)

    @staticmethod
    def _ready(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        for process, _ in self.processes.values():
            process.terminate()
        for process, _ in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


def _run_batch(settings, source: str, count: int) -> tuple[float, list[float]]:
    """Publish ``count`` jobs at once; wall time until the last completes, and each job's latency."""
    from smartcrop.core.events import JobRequested, JobState, JobStatus
    from smartcrop.core.job import parse_job
    from smartcrop.runtime.kafka import EventPublisher
    publisher = EventPublisher(settings)
    jobs = [parse_job({"query": {"job_id": f"bench-{uuid.uuid4().hex[:10]}", "source": source, "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1}]}}) for _ in range(count)]
    started = time.time()
    for job in jobs:
        publisher.publish(JobStatus(job.job_id, JobState.QUEUED, "submit", 0.0))
        publisher.publish(JobRequested(job=job))
    publisher.flush()
    finals = _wait_for_finals(settings, {job.job_id for job in jobs}, timeout=1800)
    failed = [s for s in finals.values() if s.status is not JobState.COMPLETED]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not complete: {failed[0].to_json()}")
    ends = {job_id: s.updated_at.timestamp() for job_id, s in finals.items()}
    return max(ends.values()) - started, sorted(end - started for end in ends.values())


def _wait_for_finals(settings, job_ids: set[str], timeout: float) -> dict:
    """The final status of each job, read from the status topic as it arrives."""
    from smartcrop.core.events import JobStatus, decode_event
    from smartcrop.runtime.kafka import read_topic

    finals: dict = {}
    for message in read_topic(settings, "status", follow=True, timeout=timeout):
        if message.key().decode() in job_ids:
            event = decode_event(message.value())
            if isinstance(event, JobStatus) and event.status.is_final:
                finals[event.job_id] = event
                if len(finals) == len(job_ids):
                    return finals
    raise RuntimeError(f"{len(job_ids) - len(finals)} jobs did not finish in {timeout:.0f} s")


def run(*, reps: int = 2, batch_size: int = 12, echo=print) -> ServicesResult:
    from smartcrop import stack
    from smartcrop.core.job import parse_job
    from smartcrop.pipeline import run_job
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.kafka import admin_client, ensure_topics
    from smartcrop.runtime.storage import S3Storage

    stack.up(echo=lambda m: echo(f"  {m}"))
    stack_env = stack.stack_env()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env = {**os.environ, **stack_env, "SMARTCROP_TOPIC_PREFIX": prefix, "PYTHONUNBUFFERED": "1"}
    settings = replace(Settings.from_env(), kafka_bootstrap=stack_env["SMARTCROP_KAFKA_BOOTSTRAP"],
                       s3_endpoint=stack_env["SMARTCROP_S3_ENDPOINT"],
                       s3_access_key=stack_env["SMARTCROP_S3_ACCESS_KEY"],
                       s3_secret_key=stack_env["SMARTCROP_S3_SECRET_KEY"],
                       secret_key=stack_env["SMARTCROP_SECRET_KEY"], topic_prefix=prefix)
    ensure_topics(settings)
    storage = S3Storage.from_settings(settings)
    clips = {"short": short_clip(), SHORT_SOURCE: common.clip_path(SHORT_SOURCE)}
    sources = {name: storage.put_file(f"bench/{path.name}", path) for name, path in clips.items()}
    result = ServicesResult(batch_size=batch_size)
    log_dir = Path(tempfile.mkdtemp(prefix="smartcrop-bench-services-"))
    set_ups = ({}, {"detector": 2, "encoder": 2})
    try:
        for rep in range(reps):
            for instances in set_ups:
                fleet = ServiceFleet(env, log_dir)
                fleet.start(instances)
                try:
                    _run_batch(settings, sources["short"], 2)  # warm-up: first-job imports and model caches
                    wall, latencies = _run_batch(settings, sources["short"], batch_size)
                finally:
                    fleet.stop()
                batch = BatchResult({s: instances.get(s, 1) for s in STAGES}, batch_size, wall, latencies)
                result.batches.append(batch)
                echo(f"  rep {rep + 1}: {_label(batch.instances)}: {batch.jobs_per_minute:.1f} jobs/min, "
                     f"p50 {_percentile(latencies, 50):.1f} s, p95 {_percentile(latencies, 95):.1f} s")

        fleet = ServiceFleet(env, log_dir)
        fleet.start({})
        try:
            _run_batch(settings, sources["short"], 1)
            run_job(parse_job({"query": {"source": str(clips["short"]), "format": [{"output": "mp4"}]}}),
                    settings=settings, work_dir=Path(tempfile.mkdtemp()))  # warm this process
            for name in OVERHEAD_CLIPS:
                times = result.overhead.setdefault(name, {"services": [], "embedded": []})
                for _ in range(reps):
                    wall, _ = _run_batch(settings, sources[name], 1)
                    times["services"].append(wall)
                    started = time.perf_counter()
                    run_job(parse_job({"query": {"source": str(clips[name]), "format": [
                        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1}]}}),
                        settings=settings, work_dir=Path(tempfile.mkdtemp()))
                    times["embedded"].append(time.perf_counter() - started)
                echo(f"  {name}: services {statistics.mean(times['services']):.1f} s, "
                     f"embedded {statistics.mean(times['embedded']):.1f} s")
        finally:
            fleet.stop()
    finally:
        admin_client(settings).delete_topics([settings.topic(name) for name in
                                              ("jobs", "detections", "tracks", "plans", "status", "dlq")])
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _label(instances: dict[str, int]) -> str:
    return ", ".join(f"{stage}×{count}" for stage, count in instances.items() if count > 1) or "one of each"


def report(result: ServicesResult) -> str:
    from benchmarks.report import table

    rows = []
    for label in dict.fromkeys(_label(b.instances) for b in result.batches):
        batches = [b for b in result.batches if _label(b.instances) == label]
        latencies = [x for b in batches for x in b.latencies]
        rates = [b.jobs_per_minute for b in batches]
        rows.append([label, len(batches), f"{statistics.mean(rates):.1f} ({min(rates):.1f}–{max(rates):.1f})",
                     f"{_percentile(latencies, 50):.1f}", f"{_percentile(latencies, 95):.1f}"])
    throughput = table([f"instances ({result.batch_size} short jobs at once)", "batches", "jobs/min (range)",
                        "p50 latency s", "p95 latency s"], rows)
    rows = []
    for clip, times in result.overhead.items():
        services, embedded = statistics.mean(times["services"]), statistics.mean(times["embedded"])
        rows.append([clip if clip != "short" else "2 s 360p cut of A_man", len(times["services"]),
                     f"{services:.2f}", f"{embedded:.2f}", f"{services - embedded:+.2f}",
                     f"{services / embedded:.2f}×"])
    overhead = table(["clip", "reps", "services s", "embedded s", "difference s", "ratio"], rows)
    return throughput + "\n\n" + overhead
