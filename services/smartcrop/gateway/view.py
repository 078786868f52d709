"""The latest status of every job, kept from the compacted status topic: how the gateway answers ``status``.

A consumer reads the topic from the beginning on start (``read_committed``, no consumer group: every replica keeps
the whole view) and then follows it, so a request is a dictionary lookup, never a topic scan. ``ready`` turns true
once every partition was read to its end. Listeners hear each change as ``(old, new)``; during the rebuild they hear
only the latest status of each job, once the end is reached.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from smartcrop.core.avro import SerdeError
from smartcrop.core.events import JobState, JobStatus, decode_event
from smartcrop.runtime.config import Settings
from smartcrop.runtime.kafka import client_config

log = logging.getLogger(__name__)

Listener = Callable[[JobStatus | None, JobStatus], None]


def supersedes(old: JobStatus | None, new: JobStatus) -> bool:
    """Whether ``new`` replaces ``old`` as the job's status: a final status stays final (a late progress event
    from another producer does not reopen a job), and a replayed ``queued`` from a submit never covers a stage's."""
    if old is None:
        return True
    if old.status.is_final and not new.status.is_final:
        return False
    if new.status is JobState.QUEUED and new.stage == "submit" and old.stage != "submit":
        return False
    return True


class StatusView:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = settings.topic("status")
        self._latest: dict[str, JobStatus] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-view", daemon=True)
        self._alive_at = time.monotonic()
        self.error: str | None = None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self) -> "StatusView":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def live(self) -> bool:
        return self._thread.is_alive() and time.monotonic() - self._alive_at < 60

    def get(self, job_id: str) -> JobStatus | None:
        with self._lock:
            return self._latest.get(job_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._latest)

    def apply(self, status: JobStatus, notify: bool = True) -> None:
        """Take one status event (the consumer's thread; tests call it directly)."""
        with self._lock:
            old = self._latest.get(status.job_id)
            if not supersedes(old, status):
                return
            self._latest[status.job_id] = status
        if notify:
            self._notify(old, status)

    def _notify(self, old: JobStatus | None, new: JobStatus) -> None:
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:  # a listener's fault must not stop the view
                log.exception("status listener failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume()
            except Exception as exc:  # the broker went away for longer than the client rides out: start over
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("status view interrupted (%s); reading the topic again", self.error)
                time.sleep(2)

    def _consume(self) -> None:
        consumer = Consumer(client_config(self.settings, **{
            "group.id": f"{self.settings.topic_prefix}smartcrop-gateway-view-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "enable.partition.eof": True, "fetch.wait.max.ms": 100}))
        try:
            metadata = consumer.list_topics(self.topic, timeout=10)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None:
                raise RuntimeError(f"topic {self.topic} unavailable: {topic.error if topic else 'missing'}")
            partitions = set(topic.partitions)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            at_end: set[int] = set()
            rebuilding = True  # on a restart of the consumer too: listeners hear each job's latest once
            rebuilt: dict[str, JobStatus | None] = {}  # job -> its status before the rebuild (to notify once)
            while not self._stopping.is_set():
                self._alive_at = time.monotonic()
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        if rebuilding and at_end >= partitions:
                            rebuilding = False
                            for job_id, before in rebuilt.items():
                                now = self.get(job_id)
                                if now is not None and now is not before:
                                    self._notify(before, now)
                            rebuilt.clear()
                            self._ready.set()
                            log.info("status view rebuilt: %d jobs", len(self))
                    elif message.error().fatal():
                        raise RuntimeError(message.error().str())
                    continue
                try:
                    event = decode_event(message.value())
                except SerdeError:
                    continue
                if not isinstance(event, JobStatus):
                    continue
                if rebuilding:
                    rebuilt.setdefault(event.job_id, self.get(event.job_id))
                self.apply(event, notify=not rebuilding)
        finally:
            consumer.close()
