"""Structured JSON logs for services (one object per line, ``job_id`` when there is one)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "service": self.service, "logger": record.name,
                 "message": record.getMessage()}
        job_id = getattr(record, "job_id", None) or current_job.get()
        if job_id:
            entry["job_id"] = job_id
        for key in ("stage", "code", "topic", "partition", "offset", "attempt", "seconds"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RepeatLimiter(logging.Filter):
    """Lets one of each kind of message through per ``interval``: a broker that is down makes the Kafka client
    report the same refused connection many times a second, which would bury everything else in the log."""

    def __init__(self, interval: float = 30.0):
        super().__init__()
        self.interval = interval
        self.last_seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"\d+", "#", record.getMessage())[:160]
        now = time.monotonic()
        if now - self.last_seen.get(kind, float("-inf")) < self.interval:
            return False
        self.last_seen[kind] = now
        return True


def kafka_client_logger() -> logging.Logger:
    """Where the Kafka clients' own log lines go: into the JSON log, rate-limited, not raw onto stderr."""
    logger = logging.getLogger("smartcrop.kafka.client")
    if not any(isinstance(f, RepeatLimiter) for f in logger.filters):
        logger.addFilter(RepeatLimiter())
    return logger


def setup_service_logging(service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("SMARTCROP_LOG_LEVEL", "INFO").upper())
    for noisy in ("urllib3", "ultralytics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
