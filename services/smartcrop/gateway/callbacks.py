"""``callback_url``: the task's status POSTed to the caller on each change of its Qencode state, signed.

The body is what Qencode sends (form-encoded ``task_token``, ``event``, ``payload`` and ``status``, the status entry as
a JSON string). Headers:

- ``X-Smartcrop-Timestamp``: Unix seconds when the attempt was signed;
- ``X-Smartcrop-Signature``: ``sha256=`` and the hex HMAC-SHA256 of ``{timestamp}.{body}`` under the key's webhook
  secret; a receiver recomputes it over the raw body and compares in constant time, and refuses old timestamps;
- ``X-Smartcrop-Delivery``: ``{job_id}:{event}``, the same on every retry of one delivery.

Each (job, state) is claimed once in the object store (``gateway/callbacks/{job_id}/{state}``) before it is sent, so
replicas and restarts never send it twice; the attempts are retried with backoff while the receiver fails (5xx, 408,
429, no connection), and go through the same outbound guard as sources: no private address unless
``SMARTCROP_ALLOWED_NETWORKS`` allows it. A job's deliveries go out in order, one at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlencode, urlsplit

from smartcrop.core.events import JobStatus
from smartcrop.core.job import JobError
from smartcrop.gateway import metrics
from smartcrop.gateway.qencode import TaskStatus, qencode_state
from smartcrop.gateway.tasks import GATEWAY_PREFIX, Task, TaskStore
from smartcrop.runtime.netpolicy import NetworkPolicy, guarded_pool_manager
from smartcrop.runtime.retry import backoff

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Smartcrop-Signature"
TIMESTAMP_HEADER = "X-Smartcrop-Timestamp"
DELIVERY_HEADER = "X-Smartcrop-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, max_age: float = 300,
           now: float | None = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        fresh = abs((now or time.time()) - int(timestamp)) <= max_age
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def check_callback_url(url: str, policy: NetworkPolicy) -> None:
    """At ``start_encode2``: an http(s) URL to an address callbacks may reach (JobError otherwise)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError("callback_url", f"expected an http(s) URL, got {url[:200]!r}")
    if parts.username or parts.password:
        raise JobError("callback_url", "credentials do not belong in the URL")
    policy.check(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), "callback_url")


def callback_body(task: Task, status: JobStatus, status_url: str) -> bytes:
    entry = TaskStatus(task.task_token, task.job_id, status, status_url).to_json()
    return urlencode({"task_token": task.task_token, "event": entry["status"], "payload": task.payload or "",
                      "status": json.dumps(entry)}).encode()


@dataclass(frozen=True)
class _Delivery:
    job_id: str
    status: JobStatus


class CallbackDispatcher:
    def __init__(self, tasks: TaskStore, storage, policy: NetworkPolicy, secret_for: Callable[[str], str | None],
                 status_url: Callable[[Task], str], *, attempts: int = 8, workers: int = 4,
                 connect_timeout: float = 5.0, read_timeout: float = 10.0, max_age: float = 24 * 3600,
                 sleep=time.sleep):
        self.tasks, self.storage, self.secret_for, self.status_url = tasks, storage, secret_for, status_url
        self.attempts, self.sleep, self.max_age = attempts, sleep, max_age
        self.http = guarded_pool_manager(policy, "callback_url", connect_timeout=connect_timeout,
                                         read_timeout=read_timeout, maxsize=workers)
        self.queues = [queue.Queue() for _ in range(workers)]
        self.threads = [threading.Thread(target=self._work, args=(q,), name=f"callbacks-{i}", daemon=True)
                        for i, q in enumerate(self.queues)]
        self._stopping = threading.Event()

    def start(self) -> "CallbackDispatcher":
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for q in self.queues:
            q.put(None)

    def on_change(self, old: JobStatus | None, new: JobStatus) -> None:
        """The status view's listener: a change of Qencode state is queued for the job's worker."""
        if old is not None and qencode_state(old) == qencode_state(new):
            return
        if old is None and (datetime.now(timezone.utc) - new.updated_at).total_seconds() > self.max_age:
            return  # the rebuild on start meets every job of the topic's retention: only recent ones are news
        index = int(hashlib.sha256(new.job_id.encode()).hexdigest()[:8], 16) % len(self.queues)
        self.queues[index].put(_Delivery(new.job_id, new))

    def _work(self, deliveries: queue.Queue) -> None:
        while not self._stopping.is_set():
            item = deliveries.get()
            if item is None:
                return
            try:
                self.deliver(item.job_id, item.status)
            except Exception:
                log.exception("callback delivery failed", extra={"job_id": item.job_id})
                metrics.CALLBACKS.labels("error").inc()

    def deliver(self, job_id: str, status: JobStatus) -> str:
        """Claim and send one (job, state); returns the outcome (also counted in the metrics)."""
        task = self.tasks.by_job(job_id)
        if task is None or not task.callback_url:
            return "none"
        secret = self.secret_for(task.key_name)
        if not secret:
            log.warning("no webhook secret for key %s: callback not sent", task.key_name, extra={"job_id": job_id})
            metrics.CALLBACKS.labels("unsigned").inc()
            return "unsigned"
        state = qencode_state(status)
        claim = json.dumps({"job_id": job_id, "state": state, "at": time.time()}).encode()
        if not self.storage.create_once(f"{GATEWAY_PREFIX}callbacks/{job_id}/{state}.json", claim, "application/json"):
            metrics.CALLBACKS.labels("duplicate").inc()
            return "duplicate"
        outcome = self._send(task, status, state)
        metrics.CALLBACKS.labels(outcome).inc()
        return outcome

    def _send(self, task: Task, status: JobStatus, state: str) -> str:
        body = callback_body(task, status, self.status_url(task))
        secret = self.secret_for(task.key_name) or ""
        for attempt in range(self.attempts):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/x-www-form-urlencoded", TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: sign(secret, timestamp, body), DELIVERY_HEADER: f"{task.job_id}:{state}",
                       "User-Agent": "smartcrop-gateway"}
            try:
                response = self.http.request("POST", task.callback_url, body=body, headers=headers,
                                             redirect=False, preload_content=True)
                if 200 <= response.status < 300:
                    log.info("callback %s delivered", state, extra={"job_id": task.job_id, "attempt": attempt + 1})
                    return "delivered"
                if response.status < 500 and response.status not in (408, 429):
                    log.warning("callback %s refused with HTTP %d; not retried", state, response.status,
                                extra={"job_id": task.job_id})
                    return "refused"
                reason = f"HTTP {response.status}"
            except JobError as exc:  # the address is one callbacks may not reach (it changed since the start)
                log.warning("callback %s blocked: %s", state, exc, extra={"job_id": task.job_id})
                return "blocked"
            except Exception as exc:  # no connection, timeout ...
                reason = type(exc).__name__
            if attempt + 1 < self.attempts and not self._stopping.is_set():
                delay = backoff(attempt)
                log.info("callback %s failed (%s), retrying in %.1fs", state, reason, delay,
                         extra={"job_id": task.job_id, "attempt": attempt + 1})
                self.sleep(delay)
        log.warning("callback %s not delivered after %d attempts", state, self.attempts, extra={"job_id": task.job_id})
        return "failed"
