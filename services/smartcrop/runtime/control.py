"""The control topic (``smartcrop.control.v1``): cancel requests from upstream systems that speak only Kafka.

Every stage instance reads the whole topic, outside any consumer group (each must see every request, not a share),
from its beginning at start (a job may wait in a topic for a long time after it was cancelled) and then as requests
arrive. The topic is compacted by job id, so its size follows the number of jobs cancelled, not of requests sent.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from smartcrop.core.avro import SerdeError
from smartcrop.core.events import ControlAction, JobControl, decode_event
from smartcrop.runtime.config import Settings
from smartcrop.runtime.kafka import client_config
from smartcrop.runtime.serde import RegistryUnavailable

log = logging.getLogger(__name__)


class ControlListener:
    """Follows the control topic on a daemon thread and answers "was this job cancelled?" from memory."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = settings.topic("control")
        self._cancelled: dict[str, str | None] = {}  # job id -> reason
        self._caught_up = threading.Event()
        self._partitions: set[int] = set()
        self._at_end: set[int] = set()  # partitions read to their end at least once
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait: float = 30.0) -> "ControlListener":
        """Start following; waits (up to ``wait`` s) until every request already on the topic is read, so a job
        cancelled before this instance started is not run."""
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._thread.start()
        if not self._caught_up.wait(wait):
            log.warning("control topic %s not read to its end in %.0f s; going on", self.topic, wait)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled

    def reason(self, job_id: str) -> str | None:
        return self._cancelled.get(job_id)

    def apply(self, request: JobControl) -> None:
        if request.action is ControlAction.CANCEL:
            self._cancelled[request.job_id] = request.reason

    def _run(self) -> None:
        consumer = None
        while not self._stopping.is_set():
            try:
                consumer = consumer or self._assign()
                self._poll(consumer)
            except KafkaException as exc:  # the topic is missing or the broker away: try again shortly
                log.warning("cannot follow the control topic %s: %s", self.topic, exc)
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stopping.wait(5)
        if consumer is not None:
            consumer.close()

    def _assign(self) -> Consumer:
        consumer = Consumer(client_config(self.settings, **{
            "group.id": f"{self.settings.topic_prefix}smartcrop-control-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "enable.partition.eof": True}))
        metadata = consumer.list_topics(self.topic, timeout=10)
        if metadata.topics[self.topic].error is not None:
            consumer.close()
            raise KafkaException(metadata.topics[self.topic].error)
        self._partitions = set(metadata.topics[self.topic].partitions)
        self._at_end = set()
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self._partitions])
        return consumer

    def _poll(self, consumer: Consumer) -> None:
        message = consumer.poll(0.5)
        if message is None:
            return
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                self._at_end.add(message.partition())
                if self._at_end >= self._partitions:
                    self._caught_up.set()
            elif message.error().fatal():
                raise KafkaException(message.error())
            return
        try:
            request = decode_event(message.value(), self.settings.codec)
        except SerdeError as exc:
            log.warning("ignoring an unreadable control message at %s[%d]@%d: %s", message.topic(),
                        message.partition(), message.offset(), exc)
            return
        except RegistryUnavailable as exc:  # read it again once the registry answers
            log.warning("%s; re-reading the control message", exc)
            consumer.seek(TopicPartition(message.topic(), message.partition(), message.offset()))
            time.sleep(2)
            return
        if isinstance(request, JobControl):
            self.apply(request)
            log.info("control request %s for job %s", request.action.value, request.job_id)
