"""The gateway's Prometheus metrics. Labels are endpoint names, HTTP statuses and Qencode codes: never caller data."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ENDPOINTS = ("access_token", "create_task", "start_encode2", "status", "task_status", "job_status", "healthz",
             "readyz", "metrics", "other")

REQUESTS = Counter("smartcrop_gateway_requests_total", "HTTP requests, by endpoint, HTTP status and Qencode error",
                   ["endpoint", "code", "error"])
LATENCY = Histogram("smartcrop_gateway_request_duration_seconds", "Time to answer a request", ["endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOBS_STARTED = Counter("smartcrop_gateway_jobs_started_total", "Jobs published through start_encode2", ["key"])
CALLBACKS = Counter("smartcrop_gateway_callbacks_total", "Callback deliveries, by outcome", ["outcome"])
VIEW_JOBS = Gauge("smartcrop_gateway_view_jobs", "Jobs in the status view")
VIEW_READY = Gauge("smartcrop_gateway_view_ready", "1 once the status view was rebuilt from the topic")


def initialise() -> None:
    for endpoint in ENDPOINTS:
        LATENCY.labels(endpoint)
    for endpoint in ("access_token", "create_task", "start_encode2", "status", "task_status", "job_status"):
        REQUESTS.labels(endpoint, "200", "0")
        REQUESTS.labels(endpoint, "503", "0")  # the 5xx panel and alert read 0, not "no data", until one happens
    for outcome in ("delivered", "failed", "refused", "blocked", "duplicate", "unsigned", "error"):
        CALLBACKS.labels(outcome)
