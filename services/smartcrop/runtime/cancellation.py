"""Cancelling a job, two ways that every stage checks before and while it works:

- a marker object beside the job's data (one S3 PUT), and
- a ``JobControl`` request on the control topic ``smartcrop.control.v1`` keyed by job id, for upstream systems that
  speak only Kafka; each stage instance follows that topic (:mod:`smartcrop.runtime.control`).

A job may sit in any stage's topic, behind other jobs, on a partition whose consumer is busy with another
job, so neither way goes through the job's own topic: both are state every instance can read at any time. The stage
that meets either stops (or does not start), reports ``cancelled`` and commits its input, so nothing runs downstream.
"""

from __future__ import annotations

import json
import logging
import time

from smartcrop.core.events import utcnow
from smartcrop.core.ports import StorageError

log = logging.getLogger(__name__)


def marker_key(job_id: str) -> str:
    return f"jobs/{job_id}/cancel.json"


def request_cancel(storage, job_id: str, reason: str = "cancelled on request") -> str:
    body = {"job_id": job_id, "requested_at": utcnow().isoformat(), "reason": reason}
    return storage.put_bytes(marker_key(job_id), json.dumps(body).encode(), "application/json")


class CancelWatch:
    """Has this job been cancelled? Asks the control listener (memory) every time and the store at most every
    ``interval`` seconds; once yes, always yes."""

    def __init__(self, storage, job_id: str, interval: float = 2.0, control=None):
        self.storage, self.job_id, self.interval, self.control = storage, job_id, interval, control
        self.checked_at = float("-inf")
        self.cancelled = False

    def __call__(self) -> bool:
        if not self.cancelled and self.control is not None and self.control.is_cancelled(self.job_id):
            self.cancelled = True
        if not self.cancelled and time.monotonic() - self.checked_at >= self.interval:
            self.checked_at = time.monotonic()
            try:
                self.cancelled = self.storage.exists(marker_key(self.job_id))
            except StorageError as exc:  # the store is down: the work goes on, and we ask again next time
                log.debug("cannot check for a cancel request: %s", exc)
        return self.cancelled
