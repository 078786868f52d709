"""Prometheus metrics and the health endpoints every service serves on one port.

``/metrics`` for Prometheus, ``/healthz`` (the process loop is alive) and ``/readyz`` (Kafka and object storage are
reachable) for Kubernetes probes. Label values are stage names, outcomes and error codes only: never job data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from smartcrop.runtime.outcome import Outcome

log = logging.getLogger(__name__)

MESSAGES = Counter("smartcrop_messages_total", "Input messages handled, by outcome", ["stage", "outcome"])
STAGE_SECONDS = Histogram("smartcrop_stage_duration_seconds", "Wall time of one job in one stage", ["stage"],
                          buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600))
FRAMES = Counter("smartcrop_frames_processed_total", "Video frames decoded by a stage", ["stage"])
INFERENCE_SECONDS = Counter("smartcrop_inference_seconds_total", "Seconds spent in model inference", ["stage"])
IN_FLIGHT = Gauge("smartcrop_jobs_in_flight", "Jobs being worked on now", ["stage"])
FAILURES = Counter("smartcrop_job_failures_total", "Jobs failed, by stable error code", ["stage", "code"])
RETRIES = Counter("smartcrop_retries_total", "Transient faults retried", ["stage"])
CONSUMER_LAG = Gauge("smartcrop_consumer_lag", "Messages behind the end of the partition", ["stage", "topic",
                                                                                              "partition"])
JOBS_COMPLETED = Counter("smartcrop_jobs_completed_total", "Jobs this stage completed (encoder: whole jobs)",
                         ["stage"])
LAST_PROGRESS = Gauge("smartcrop_last_progress_timestamp_seconds", "Unix time of the last progress report",
                      ["stage"])


OUTCOMES = tuple(outcome.value for outcome in Outcome)


def initialise(stage: str, failure_codes: tuple[str, ...]) -> None:
    """Create every known label set at zero, so dashboards and alerts see a series before the first event."""
    for outcome in OUTCOMES:
        MESSAGES.labels(stage, outcome)
    for code in failure_codes:
        FAILURES.labels(stage, code)
    for metric in (STAGE_SECONDS, FRAMES, INFERENCE_SECONDS, IN_FLIGHT, RETRIES, JOBS_COMPLETED):
        metric.labels(stage)
    LAST_PROGRESS.labels(stage).set(time.time())


class HealthServer:
    """A small HTTP server in a daemon thread; ``ready`` is asked on every ``/readyz``."""

    def __init__(self, port: int, *, live: Callable[[], bool], ready: Callable[[], bool], host: str = "0.0.0.0"):
        self.live, self.ready = live, ready
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = server.live()
                    self._send(200 if ok else 503, json.dumps({"live": ok}).encode(), "application/json")
                elif path == "/readyz":
                    ok = server._safe_ready()
                    self._send(200 if ok else 503, json.dumps({"ready": ok}).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the prober gave up waiting; nothing to do
                    pass

            def log_message(self, *args):  # keep scrapes out of the service log
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    def _safe_ready(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # a probe must answer, whatever the dependency does
            log.debug("readiness check failed", exc_info=True)
            return False

    def start(self) -> "HealthServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Throttle:
    """At most one call per ``interval`` seconds, except the ones forced through."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last = 0.0

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False
